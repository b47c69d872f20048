// The validators of services:* input (STYLE.md §6): a service's type and name, and the
// alias that names the config var a link sets (`DATABASE` → DATABASE_URL).
import { InvalidArgument, InvalidServiceName } from '../errors/index.ts';

export type ServiceType = 'postgres' | 'redis';
export type ServiceName = string & { readonly __brand: 'ServiceName' };
/** A config-var prefix: `<ALIAS>_URL` is what a link sets. */
export type Alias = string & { readonly __brand: 'Alias' };

export const SERVICE_TYPES: readonly ServiceType[] = ['postgres', 'redis'];

// The app-name rule (a DNS label, at most 30): a name is a hostname and a directory name.
const NAME = /^[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?$/;
const ALIAS = /^[A-Z][A-Z0-9_]{0,39}$/;

export function parseServiceType(raw: unknown): ServiceType {
  if (typeof raw !== 'string' || !(SERVICE_TYPES as readonly string[]).includes(raw))
    throw new InvalidServiceName(
      `unknown service type "${String(raw).slice(0, 40)}": use one of ${SERVICE_TYPES.join(', ')}`,
      { type: String(raw).slice(0, 40) },
    );
  return raw as ServiceType;
}

export function parseServiceName(raw: unknown): ServiceName {
  if (typeof raw !== 'string' || !NAME.test(raw))
    throw new InvalidServiceName(
      `service name "${String(raw).slice(0, 40)}" is invalid: lowercase letters, digits and '-', starting with a letter, at most 30`,
      { name: String(raw).slice(0, 40) },
    );
  return raw as ServiceName;
}

export function parseAlias(raw: unknown): Alias {
  if (typeof raw !== 'string' || !ALIAS.test(raw))
    throw new InvalidArgument(
      `alias "${String(raw).slice(0, 40)}" is invalid: upper-case letters, digits and '_', starting with a letter (DATABASE → DATABASE_URL)`,
      { alias: String(raw).slice(0, 40) },
    );
  return raw as Alias;
}
