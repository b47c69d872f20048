// tokens:create --scope deploy|read|admin [--app NAME]… [--expires 30d] [--label L] | tokens |
// tokens:revoke ID | tokens:rotate-admin. A new token is printed once (stdout, alone on its
// line with --quiet for scripts); the daemon keeps only its hash.
import { parse as parseArgs } from './args.ts';
import { call, enc, printJson, table } from './client.ts';
import type { TokenCreated, TokenInfo } from '../../api/index.ts';
import { InvalidArgument } from '../../errors/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      scope: { type: 'string' },
      app: { type: 'string', multiple: true, default: [] },
      expires: { type: 'string' },
      label: { type: 'string' },
    },
  });
  if (name === 'tokens') {
    const list = await call<TokenInfo[]>('GET', '/api/tokens');
    if (values.json === true) return (printJson(list), 0);
    const rows = [['ID', 'SCOPE', 'APPS', 'EXPIRES', 'LAST USED', 'LABEL']];
    for (const t of list)
      rows.push([
        t.id,
        t.scope,
        t.apps === null ? '*' : t.apps.join(','),
        t.expiresAt ?? 'never',
        t.lastUsedAt ?? '-',
        t.label ?? '',
      ]);
    process.stdout.write(
      list.length === 0 ? 'No tokens (the admin token file is not listed).\n' : table(rows),
    );
    return 0;
  }
  if (name === 'tokens:revoke') {
    const id = positionals[0];
    if (id === undefined) throw new InvalidArgument('tokens:revoke ID');
    await call('DELETE', `/api/tokens/${enc(id)}`);
    process.stdout.write(`Revoked token ${id}\n`);
    return 0;
  }
  const created =
    name === 'tokens:rotate-admin'
      ? await call<TokenCreated>('POST', '/api/tokens/rotate-admin', {})
      : await (async () => {
          if (values.scope === undefined)
            throw new InvalidArgument('tokens:create: --scope deploy|read|admin is required');
          return call<TokenCreated>('POST', '/api/tokens', {
            scope: values.scope,
            apps: values.app,
            expires: values.expires,
            label: values.label,
          });
        })();
  if (values.json === true) return (printJson(created), 0);
  if (values.quiet === true) {
    process.stdout.write(`${created.token}\n`);
    return 0;
  }
  const i = created.info;
  const what =
    name === 'tokens:rotate-admin'
      ? 'New admin token (the admin-token file has it; the old one no longer works)'
      : `Token ${i.id}: scope ${i.scope}, ${i.apps === null ? 'every app' : `apps ${i.apps.join(', ')}`}, ${i.expiresAt === null ? 'no expiry' : `expires ${i.expiresAt}`}`;
  process.stdout.write(`${what}. It is shown once:\n${created.token}\n`);
  return 0;
}
