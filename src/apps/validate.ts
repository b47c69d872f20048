// Validators for the other names that cross a border into app state (STYLE.md §6): config
// keys, process types, host names and domains. Each parses a raw value once into a branded type.
import { InvalidArgument, InvalidConfigKey } from '../errors/index.ts';

export type ConfigKey = string & { readonly __brand: 'ConfigKey' };
export type ProcessType = string & { readonly __brand: 'ProcessType' };
export type Domain = string & { readonly __brand: 'Domain' };

// POSIX environment names (IEEE 1003.1 §8.1): a letter or '_', then letters, digits, '_'.
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_VALUE = 32 * 1024;

export function parseConfigKey(raw: unknown): ConfigKey {
  if (typeof raw !== 'string' || raw.length === 0)
    throw new InvalidConfigKey('config key is required', { key: raw ?? null });
  if (raw.length > 255 || !ENV_KEY.test(raw)) {
    throw new InvalidConfigKey(
      `config key "${raw.slice(0, 80)}" is invalid: use a letter or '_' first, then letters, digits or '_'`,
      { key: raw.slice(0, 80) },
    );
  }
  return raw as ConfigKey;
}

/** A value becomes an environment string: no NUL byte (it would cut the string), bounded size. */
export function parseConfigValue(key: ConfigKey, raw: unknown): string {
  if (typeof raw !== 'string')
    throw new InvalidArgument(`config value of ${key} must be a string`, { key });
  if (raw.includes('\0'))
    throw new InvalidArgument(`config value of ${key} contains a NUL byte`, { key });
  if (Buffer.byteLength(raw) > MAX_VALUE)
    throw new InvalidArgument(`config value of ${key} is larger than ${MAX_VALUE} bytes`, { key });
  return raw;
}

/** `K=V` pairs from the command line or an API body, all validated before any is applied. */
export function parseConfigPairs(raw: unknown): Map<ConfigKey, string> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new InvalidArgument('config must be an object of KEY: value');
  const out = new Map<ConfigKey, string>();
  for (const [k, v] of Object.entries(raw)) {
    const key = parseConfigKey(k);
    out.set(key, parseConfigValue(key, v));
  }
  if (out.size === 0) throw new InvalidArgument('no config vars given');
  return out;
}

// A process type becomes part of a hostname (`<app>.<type>.<n>`), so it is a DNS label too.
const TYPE = /^[a-z][a-z0-9-]{0,29}$/;

export function parseProcessType(raw: unknown): ProcessType {
  if (typeof raw !== 'string' || !TYPE.test(raw)) {
    throw new InvalidArgument(
      `process type "${String(raw).slice(0, 40)}" is invalid: lowercase letters, digits and '-', at most 30`,
      { type: String(raw).slice(0, 40) },
    );
  }
  return raw as ProcessType;
}

/** A TCP port an app listens on (`ports:set`, the PORT config var): 1–65535, digits only. */
export function parsePort(raw: unknown): number {
  const s = typeof raw === 'number' ? String(raw) : raw;
  if (typeof s !== 'string' || !/^[0-9]{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535)
    throw new InvalidArgument(
      `port "${String(raw).slice(0, 20)}" must be a number from 1 to 65535`,
      {
        port: String(raw).slice(0, 20),
      },
    );
  return Number(s);
}

/** The most processes of one type `ps:scale` or app.json `formation` may ask for. */
export const MAX_PROCESSES_PER_TYPE = 100;

/** One `TYPE=COUNT` of a formation (ps:scale, app.json `formation`). */
export function parseFormationEntry(type: unknown, count: unknown): [ProcessType, number] {
  const t = parseProcessType(type);
  if (t === 'release')
    throw new InvalidArgument(
      'the release process type runs once per deploy; it cannot be scaled',
      {
        type: t,
      },
    );
  if (
    typeof count !== 'number' ||
    !Number.isInteger(count) ||
    count < 0 ||
    count > MAX_PROCESSES_PER_TYPE
  )
    throw new InvalidArgument(
      `${t}=${String(count)}: the count must be a whole number from 0 to ${MAX_PROCESSES_PER_TYPE}`,
      { type: t },
    );
  return [t, count];
}

// RFC 1123 §2.1 host names: labels of letters, digits and '-', not starting or ending with
// '-', each at most 63 and at most 253 in all; case does not matter (RFC 4343).
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** The one host-name grammar: custom domains, the route table, Host headers, container hostnames. */
export function isHostname(s: string): boolean {
  return HOSTNAME.test(s);
}

/**
 * A custom domain: an exact host name (`www.example.com`) or a wildcard over every name
 * below one (`*.example.com` also covers `a.b.example.com`, as nginx's `server_name`
 * suffix match does). Lower-cased, without a trailing dot; at least two labels, so a
 * wildcard can never claim a whole top-level domain.
 */
export function parseDomain(raw: unknown): Domain {
  if (typeof raw !== 'string' || raw.length === 0) throw new InvalidArgument('domain is required');
  const d = raw.toLowerCase().replace(/\.$/, '');
  const bare = d.startsWith('*.') ? d.slice(2) : d;
  if (!isHostname(bare) || !bare.includes('.')) {
    throw new InvalidArgument(
      `domain "${raw.slice(0, 80)}" is not a valid host name (use www.example.com or *.example.com)`,
      { domain: raw.slice(0, 80) },
    );
  }
  return d as Domain;
}
