// certs | certs:add | certs:remove | domains:redirect-https (issue 18)
import { readFileSync } from 'node:fs';
import { parseCommand } from './args.ts';
import { parseAppName, parseDomain } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson, table } from './client.ts';
import type { CertAdded, CertsInfo, RedirectHttpsInfo } from '../../api/index.ts';

function readPem(flag: string, path: string | undefined): string {
  if (path === undefined) throw new InvalidArgument(`certs:add: --${flag} FILE is required`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new InvalidArgument(`certs:add: cannot read --${flag} ${path}: ${(e as Error).message}`);
  }
}

/** `2026-03-01 (in 89 days)` or `2026-03-01 (expired)`. */
function expiry(notAfter: string): string {
  const days = Math.floor((Date.parse(notAfter) - Date.now()) / 86_400_000);
  return `${notAfter.slice(0, 10)} (${days < 0 ? 'expired' : `in ${days} days`})`;
}

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    cert: { type: 'string' },
    key: { type: 'string' },
    default: { type: 'boolean' },
    hsts: { type: 'boolean' },
  });
  switch (name) {
    case 'certs': {
      const app = parseAppName(positionals[0]);
      const c = await call<CertsInfo>('GET', `/api/apps/${enc(app)}/certs`);
      if (values.json === true) return (printJson(c), 0);
      const rows = [['HOST', 'CERTIFICATE', 'EXPIRES', 'ISSUER', 'AUTO', 'LAST ERROR']];
      for (const h of c.hosts)
        rows.push([
          h.host,
          h.servedBy === 'none'
            ? 'none'
            : `${h.servedBy === 'default' ? 'default' : h.cert!.source}`,
          h.cert ? expiry(h.cert.notAfter) : '-',
          h.cert?.issuer ?? '-',
          h.auto ?? '-',
          h.lastError ?? '-',
        ]);
      process.stdout.write(table(rows));
      process.stdout.write(
        `redirect to https: ${c.redirectHttps ? 'on' : 'off'}${c.hsts ? ' (with HSTS)' : ''}\n`,
      );
      return 0;
    }
    case 'certs:add': {
      const pem = { cert: readPem('cert', values.cert), key: readPem('key', values.key) };
      const isDefault = values.default === true;
      if (isDefault && positionals.length > 0)
        throw new InvalidArgument('certs:add --default takes no app name');
      const app = isDefault ? null : parseAppName(positionals[0]);
      const r = await call<CertAdded>(
        'POST',
        app === null ? '/api/certs/default' : `/api/apps/${enc(app)}/certs`,
        pem,
      );
      if (values.json === true) return (printJson(r), 0);
      process.stdout.write(
        `${app === null ? 'default certificate' : `added a certificate to ${app}`} for ${r.hosts.join(', ')}, ` +
          `issued by ${r.cert.issuer}, expires ${expiry(r.cert.notAfter)}\n`,
      );
      return 0;
    }
    case 'certs:remove': {
      const app = parseAppName(positionals[0]);
      const host = parseDomain(positionals[1]);
      await call('DELETE', `/api/apps/${enc(app)}/certs/${enc(host)}`);
      process.stdout.write(`removed the certificate for ${host} from ${app}\n`);
      return 0;
    }
    case 'domains:redirect-https': {
      const app = parseAppName(positionals[0]);
      const onOff = positionals[1];
      if (onOff !== 'on' && onOff !== 'off')
        throw new InvalidArgument('domains:redirect-https APP on|off [--hsts]');
      const r = await call<RedirectHttpsInfo>('PUT', `/api/apps/${enc(app)}/redirect-https`, {
        on: onOff === 'on',
        hsts: values.hsts === true,
      });
      if (values.json === true) return (printJson(r), 0);
      process.stdout.write(
        r.redirectHttps
          ? `${app}: HTTP redirects to HTTPS (308) for each host with a certificate${r.hsts ? ', with HSTS' : ''}\n`
          : `${app}: HTTP is served as HTTP\n`,
      );
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown certs command ${name}`);
  }
}
