// Remote access without a secret on the command line or in .git/config (issue 19):
//   paas login https://host:7070 [--fingerprint SHA256:…] [--token T]
//     fetches the server's certificate, checks it against the fingerprint (or shows it and
//     asks, at a terminal), checks the token over the pinned connection and stores all three
//     (profile.ts). Without --token the token is read from PAAS_TOKEN or stdin, so it need
//     not appear in the process list or the shell history.
//   paas git:remote APP [NAME]
//     a git remote `https://host:7070/APP.git` with `paas git-credential` as the credential
//     helper and the pinned certificate as the CA, both for that URL only.
//   paas git-credential get|store|erase
//     git's credential helper protocol (gitcredentials(7), git-credential(1)): key=value lines
//     on stdin; for `get` of the logged-in API's host, `username` and `password` on stdout.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline/promises';
import { connect } from 'node:tls';
import { isIP } from 'node:net';
import { parseAppName } from '../../apps/index.ts';
import { FingerprintMismatch, InvalidArgument, Unauthorized } from '../../errors/index.ts';
import type { WhoAmI } from '../../api/index.ts';
import { parse as parseArgs } from './args.ts';
import { call } from './client.ts';
import { formatFingerprint, loadProfile, parseFingerprint, saveProfile } from './profile.ts';

/** The certificate the server presents, unverified: what the fingerprint is then checked on. */
function fetchCertificate(u: URL): Promise<{ pem: string; fingerprint: string }> {
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const s = connect({
      host,
      port: Number(u.port || 443),
      servername: isIP(host) === 0 ? host : undefined,
      // Not verified here on purpose: it is verified by its fingerprint below, the pin.
      rejectUnauthorized: false,
      timeout: 10_000,
    });
    s.once('secureConnect', () => {
      const c = s.getPeerCertificate();
      s.end();
      if (c.raw === undefined) return reject(new InvalidArgument(`${u.host} sent no certificate`));
      const b64 = c.raw
        .toString('base64')
        .match(/.{1,64}/g)!
        .join('\n');
      resolve({
        pem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
        fingerprint: formatFingerprint(c.fingerprint256.replace(/:/g, '')),
      });
    });
    s.once('timeout', () => s.destroy(new Error('timed out')));
    s.once('error', (e) =>
      reject(new InvalidArgument(`login: no TLS connection to ${u.host}: ${e.message}`)),
    );
  });
}

async function readLine(prompt: string | null): Promise<string> {
  if (prompt !== null && process.stdin.isTTY === true) {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return (await rl.question(prompt)).trim();
    } finally {
      rl.close();
    }
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > 64 * 1024) throw new InvalidArgument('login: stdin is too long for a token');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8').trim();
}

async function login(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { fingerprint: { type: 'string' }, token: { type: 'string' } },
  });
  let u: URL;
  try {
    u = new URL(positionals[0] ?? '');
  } catch {
    throw new InvalidArgument('login: give the API URL, e.g. paas login https://host:7070');
  }
  const loopback = /^(127\.[0-9.]+|\[::1\]|localhost)$/.test(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback))
    throw new InvalidArgument('login: the API URL must be https:// (plain http only on loopback)');
  if (u.pathname !== '/' || u.search !== '' || u.username !== '' || u.password !== '')
    throw new InvalidArgument('login: the API URL is scheme://host:port only (no path, no user)');
  const api = `${u.protocol}//${u.host}`;

  let pem: string | null = null;
  let fingerprint: string | null = null;
  if (u.protocol === 'https:') {
    const want = values.fingerprint === undefined ? null : parseFingerprint(values.fingerprint);
    const got = await fetchCertificate(u);
    if (want !== null && want !== got.fingerprint)
      throw new FingerprintMismatch(
        `login: refused: the certificate of ${u.host} has fingerprint ${got.fingerprint}, not ${want}. ` +
          'Someone may be intercepting the connection, or the server has a new certificate: ' +
          'check the fingerprint on the server (setup.sh prints it) before trusting it.',
        { expected: want, actual: got.fingerprint },
      );
    if (want === null) {
      process.stderr.write(`The certificate of ${u.host} has fingerprint\n  ${got.fingerprint}\n`);
      if (process.stdin.isTTY !== true)
        throw new InvalidArgument(
          'login: not at a terminal to confirm it: compare it with the one setup.sh printed on the server and pass --fingerprint',
        );
      const answer = await readLine('Trust it and pin it for this server? [y/N] ');
      if (!/^y(es)?$/i.test(answer)) {
        process.stderr.write('Not logged in.\n');
        return 1;
      }
    }
    pem = got.pem;
    fingerprint = got.fingerprint;
  }

  const token = values.token ?? (process.env.PAAS_TOKEN || null) ?? (await readLine('API token: '));
  if (token === '')
    throw new InvalidArgument('login: no token (give --token, PAAS_TOKEN or stdin)');
  // Stored first, then checked over the pinned connection; a refused token is not kept.
  const previous = loadProfile();
  saveProfile({ api, fingerprint, pem, token });
  const env = { api: process.env.PAAS_API, token: process.env.PAAS_TOKEN };
  process.env.PAAS_API = api;
  process.env.PAAS_TOKEN = token;
  let who: WhoAmI;
  try {
    who = await call<WhoAmI>('GET', '/api/whoami');
  } catch (e) {
    if (previous !== null)
      saveProfile({
        api: previous.api,
        fingerprint: previous.fingerprint,
        pem: null,
        token: previous.token,
      });
    throw e;
  } finally {
    if (env.api === undefined) delete process.env.PAAS_API;
    else process.env.PAAS_API = env.api;
    if (env.token === undefined) delete process.env.PAAS_TOKEN;
    else process.env.PAAS_TOKEN = env.token;
  }
  const apps = who.apps === null ? 'every app' : `apps ${who.apps.join(', ')}`;
  process.stdout.write(
    `Logged in to ${api} with token ${who.id} (scope ${who.scope}, ${apps}).\n` +
      (fingerprint === null ? '' : `Pinned certificate ${fingerprint}.\n`),
  );
  return 0;
}

/** `!'<this checkout's bin/paas>' git-credential`: git runs it through the shell. */
function helperCommand(): string {
  const bin = fileURLToPath(new URL('../../../bin/paas', import.meta.url));
  return `!'${bin.replace(/'/g, `'\\''`)}' git-credential`;
}

function gitRemote(args: string[]): number {
  const { positionals } = parseArgs({ args, strict: true, allowPositionals: true, options: {} });
  const app = parseAppName(positionals[0]);
  const name = positionals[1] ?? 'paas';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
    throw new InvalidArgument(`git:remote: "${name}" is not a usable remote name`);
  const p = loadProfile();
  if (p === null) throw new Unauthorized('git:remote: run paas login https://host:7070 first');
  const url = `${p.api}/${app}.git`;
  const git = (...a: string[]): string =>
    execFileSync('git', a, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  try {
    git('rev-parse', '--git-dir');
  } catch {
    throw new InvalidArgument('git:remote: not inside a git repository');
  }
  const remotes = git('remote').split('\n');
  if (remotes.includes(name)) git('remote', 'set-url', name, url);
  else git('remote', 'add', name, url);
  // An empty helper first clears helpers configured globally (a `store` helper would
  // otherwise write the token to ~/.git-credentials after a push); then ours. Both only for
  // this URL, and so is the CA: no other remote trusts the pinned certificate.
  try {
    git('config', '--local', '--unset-all', `credential.${url}.helper`);
  } catch {
    // none yet
  }
  git('config', '--local', '--add', `credential.${url}.helper`, '');
  git('config', '--local', '--add', `credential.${url}.helper`, helperCommand());
  if (p.caPath !== null) git('config', '--local', `http.${url}.sslCAInfo`, p.caPath);
  process.stdout.write(
    `git remote ${name} → ${url}\n(credentials from paas git-credential; no token in .git/config)\n`,
  );
  return 0;
}

async function gitCredential(args: string[]): Promise<number> {
  const action = args[0];
  const input = await readLine(null);
  // store/erase: the token lives in the paas profile; git has nothing to keep or forget.
  if (action !== 'get') return 0;
  const fields = new Map<string, string>();
  for (const line of input.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1));
  }
  const p = loadProfile();
  if (p === null) return 0;
  const api = new URL(p.api);
  // Only the host paas logged in to gets the token, whatever URL git asks about.
  if (fields.get('protocol') !== api.protocol.slice(0, -1) || fields.get('host') !== api.host)
    return 0;
  const token = process.env.PAAS_TOKEN || p.token;
  if (token === '') return 0;
  process.stdout.write(`username=paas\npassword=${token}\n`);
  return 0;
}

export async function run(name: string, args: string[]): Promise<number> {
  if (name === 'login') return login(args);
  if (name === 'git:remote') return gitRemote(args);
  return gitCredential(args);
}
