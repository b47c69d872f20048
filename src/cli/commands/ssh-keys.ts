// ssh-keys | ssh-keys:add | ssh-keys:remove | ssh-keys:host: the keys that may push over SSH
// and the host key clients should expect. Keys are parsed here first, so a private key
// pasted by mistake is refused before it leaves this machine.
import { readFileSync } from 'node:fs';
import { parse as parseArgs } from './args.ts';
import { apiBase, call, enc, printJson, table } from './client.ts';
import type { SshHostKeyInfo, SshKeyInfo } from '../../api/index.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { parseSshKeyName, parseSshPublicKey } from '../../ssh/index.ts';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY === true)
    throw new InvalidArgument(
      'ssh-keys:add: pipe the public key in (paas ssh-keys:add NAME < ~/.ssh/id_ed25519.pub) or name its file',
    );
  let s = '';
  for await (const chunk of process.stdin) {
    s += String(chunk);
    if (s.length > 64 * 1024) break; // the validator refuses it as too long
  }
  return s;
}

const label = (type: string) =>
  type === 'ssh-ed25519' ? 'ED25519' : type === 'ssh-rsa' ? 'RSA' : 'ECDSA';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, app: { type: 'string', multiple: true, default: [] } },
  });
  switch (name) {
    case 'ssh-keys': {
      const keys = await call<SshKeyInfo[]>('GET', '/api/ssh-keys');
      if (values.json === true) printJson(keys);
      else
        process.stdout.write(
          table([
            ['NAME', 'TYPE', 'FINGERPRINT', 'APPS', 'CREATED'],
            ...keys.map((k) => [
              k.name,
              `${label(k.type)} ${k.bits}`,
              k.fingerprint,
              k.apps.length === 0 ? '(all)' : k.apps.join(','),
              k.createdAt,
            ]),
          ]),
        );
      return 0;
    }
    case 'ssh-keys:add': {
      const keyName = parseSshKeyName(positionals[0]);
      if (positionals.length > 2)
        throw new InvalidArgument('ssh-keys:add NAME [FILE]: one key per command');
      const file = positionals[1];
      const text =
        file === undefined || file === '-' ? await readStdin() : readFileSync(file, 'utf8');
      const key = parseSshPublicKey(text);
      const apps = values.app.map(parseAppName);
      const k = await call<SshKeyInfo>('POST', '/api/ssh-keys', {
        name: keyName,
        publicKey: key.comment === '' ? key.line : `${key.line} ${key.comment}`,
        apps,
      });
      if (values.json === true) printJson(k);
      else
        process.stdout.write(
          `added SSH key ${k.name} (${k.fingerprint}) for ${k.apps.length === 0 ? 'every app' : k.apps.join(', ')}\n`,
        );
      return 0;
    }
    case 'ssh-keys:remove': {
      const keyName = parseSshKeyName(positionals[0]);
      await call('DELETE', `/api/ssh-keys/${enc(keyName)}`);
      process.stdout.write(`removed SSH key ${keyName}\n`);
      return 0;
    }
    case 'ssh-keys:host': {
      const h = await call<SshHostKeyInfo>('GET', '/api/ssh-keys/host');
      if (values.json === true) printJson(h);
      else {
        const host = new URL(apiBase()).hostname;
        // `ssh-keygen -lf` format, then a known_hosts line (OpenSSH's `[host]:port` form).
        process.stdout.write(
          `256 ${h.fingerprint} paas host key (${label(h.type)})\n[${host}]:${h.port} ${h.publicKey}\n`,
        );
      }
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown ssh-keys command ${name}`);
  }
}
