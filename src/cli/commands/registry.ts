// registry:login HOST -u USER --password-stdin | registry:logout HOST, as `docker login`:
// the password is read from stdin only (never argv, which `ps` shows), and the daemon checks
// it against the registry before keeping it.
import { parseCommand } from './args.ts';
import { call, printJson } from './client.ts';
import type { RegistryLogin, RegistryLogout } from '../../api/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { parseRegistryHost } from '../../registry/index.ts';

async function readStdin(limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new InvalidArgument('registry:login: the password on stdin is too long');
    chunks.push(c);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    username: { type: 'string', short: 'u' },
    'password-stdin': { type: 'boolean' },
  });
  const host = parseRegistryHost(positionals[0]);
  if (name === 'registry:logout') {
    const r = await call<RegistryLogout>('POST', '/api/registry/logout', {
      host,
    });
    if (values.json === true) printJson(r);
    else
      process.stdout.write(
        r.removed ? `Removed login credentials for ${host}\n` : `Not logged in to ${host}\n`,
      );
    return 0;
  }
  if (values.username === undefined || values.username === '')
    throw new InvalidArgument('registry:login: -u USER is required');
  if (values['password-stdin'] !== true)
    throw new InvalidArgument(
      'registry:login: give the password on stdin with --password-stdin (never on the command line)',
    );
  const password = await readStdin();
  if (password === '') throw new InvalidArgument('registry:login: the password on stdin is empty');
  const r = await call<RegistryLogin>('POST', '/api/registry/login', {
    host,
    username: values.username,
    password,
  });
  if (values.json === true) printJson(r);
  else process.stdout.write(`${r.message}\n`);
  return 0;
}
