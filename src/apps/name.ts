// The one validator for app names (STYLE.md §6): every border parses a raw string into an
// AppName once; nothing past the border handles a raw name. An app name becomes a DNS label
// (`<app>.<domain>`, RFC 1035 §2.3.1), a path segment, a cgroup and a hostname, so it is held
// to the strictest of those: a lowercase letter first, then [a-z0-9-], at most 63 characters,
// no trailing hyphen.
import { InvalidAppName } from '../errors/index.ts';

export type AppName = string & { readonly __brand: 'AppName' };

const LABEL = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Names that would shadow platform routes, hosts or registry namespaces. */
export const RESERVED_APP_NAMES: ReadonlySet<string> = new Set([
  'paas',
  'api',
  'www',
  'admin',
  'dashboard',
  'registry',
  'v2',
  'library',
  'git',
  'localhost',
  'root',
  'system',
  'router',
  'build',
  'default',
  'static',
]);

export function parseAppName(raw: unknown): AppName {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new InvalidAppName('app name is required', { name: raw ?? null });
  }
  if (raw.length > 63) {
    throw new InvalidAppName(`app name "${raw.slice(0, 70)}…" is longer than 63 characters`, {
      name: raw,
    });
  }
  if (!LABEL.test(raw)) {
    throw new InvalidAppName(
      `app name "${raw}" is invalid: use a lowercase letter first, then lowercase letters, digits or '-', not ending in '-'`,
      { name: raw },
    );
  }
  if (RESERVED_APP_NAMES.has(raw)) {
    throw new InvalidAppName(`app name "${raw}" is reserved`, { name: raw });
  }
  return raw as AppName;
}

export function isAppName(raw: unknown): raw is AppName {
  try {
    parseAppName(raw);
    return true;
  } catch {
    return false;
  }
}
