// Host names the platform answers on itself, which no app may claim as a domain. Browsers
// scope cookies by host name and ignore the port (RFC 6265 §8.5), so an app served by the
// router on the dashboard's host name would receive the dashboard's session cookie from
// every admin's browser. The dashboard is reached on the API port under the box's own names:
// the platform domain, names like `paas.<domain>`, the machine's host name, or an IP address.
import { ReservedDomain } from '../errors/index.ts';
import type { Domain } from './validate.ts';

/**
 * Labels under the platform domain that name the platform, not an app. The same words are
 * reserved app names (name.ts), so `<app>.<domain>` cannot produce them either.
 */
const PLATFORM_LABELS = ['paas', 'api', 'dashboard', 'admin', 'registry', 'git'] as const;

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/** The platform's own host names: the domain, `<label>.<domain>`, and any extra names given. */
export function platformHosts(domain: string, extra: readonly string[] = []): string[] {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const out = new Set([d, ...PLATFORM_LABELS.map((l) => `${l}.${d}`)]);
  for (const e of extra) if (e !== '') out.add(e.toLowerCase().replace(/\.$/, ''));
  return [...out];
}

/**
 * Refuses a domain that is, or (as `*.parent`) covers, one of the platform's host names, and
 * any IPv4 literal: an address that reaches this box reaches the dashboard at `http://<ip>:7070/`.
 */
export function refuseReservedDomain(domain: Domain, reserved: readonly string[]): void {
  const d: string = domain;
  if (IPV4.test(d))
    throw new ReservedDomain(
      `domain "${d}" is an IP address: it reaches the platform itself (the dashboard), so an app cannot claim it`,
      { domain: d },
    );
  // A wildcard covers every name below its parent, at any depth (router/table.ts HostIndex).
  const hit = d.startsWith('*.')
    ? reserved.find((h) => h.endsWith(`.${d.slice(2)}`))
    : reserved.find((h) => h === d);
  if (hit !== undefined)
    throw new ReservedDomain(
      hit === d
        ? `domain "${d}" is a host name of the platform itself (the dashboard is served there); an app cannot claim it`
        : `domain "${d}" covers "${hit}", a host name of the platform itself (the dashboard is served there); an app cannot claim it`,
      { domain: d, reserved: hit },
    );
}
