// Issue 19, remote access without SSH: a daemon with TLS on its API port, a laptop that logs
// in with a pinned certificate (`paas login`), pushes through a git remote with no secret in
// .git/config (`paas git:remote` + `paas git-credential`), plain HTTP refused from anywhere
// but loopback (tried from a network namespace of our own), and scoped tokens: deploy and
// read tokens limited to one app, expiry, revocation, admin rotation, and no token ever in
// the daemon's log. Real daemon, real git, curl and openssl; nothing is mocked.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/host.ts';
import { appRepo, push, startPaas, type Paas } from './harness.ts';

const BIN = join(REPO, 'bin', 'paas');
let p: Paas;
let work = '';
let cfg = '';
let cert = '';
let fingerprint = '';
// A namespace with a veth pair of private addresses: the "other machine".
const tag = `${process.pid % 1000}${randomInt(100, 999)}`;
const NS = `paasrm${tag}`;
const VETH = `vrm${tag}`;
const NET = randomInt(16, 250);
const HOST_IP = `10.219.${NET}.1`;
const NS_IP = `10.219.${NET}.2`;
const secrets: string[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI as a laptop runs it: no PAAS_API/PAAS_TOKEN unless given, its own config dir. */
function paas(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<Run> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  delete env.PAAS_API;
  delete env.PAAS_TOKEN;
  // A laptop's git trusts what its config says: a CA bundle forced through the environment
  // (as on this build box) would override the remote's http.<url>.sslCAInfo.
  for (const k of ['GIT_SSL_CAINFO', 'GIT_SSL_CAPATH', 'CURL_CA_BUNDLE']) delete env[k];
  Object.assign(env, { XDG_CONFIG_HOME: cfg, GIT_TERMINAL_PROMPT: '0' }, opts.env ?? {});
  return new Promise((resolve) => {
    const tool = args[0] === 'git' || args[0] === 'script';
    const c = spawn(tool ? args[0]! : BIN, tool ? args.slice(1) : args, {
      env,
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    c.stdin.end(opts.input ?? '');
  });
}

/** curl, returning the status and body; `args` go before the URL. */
function curl(url: string, args: string[] = [], ns = false): { status: number; body: string } {
  const cmd = ['curl', '-sS', '-m', '10', '-o', '-', '-w', '\n%{http_code}', ...args, url];
  const out = execFileSync(ns ? 'ip' : cmd[0]!, ns ? ['netns', 'exec', NS, ...cmd] : cmd.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString();
  const i = out.lastIndexOf('\n');
  return { status: Number(out.slice(i + 1)), body: out.slice(0, i) };
}

/** A bearer header through a file, as a careful script does (never the token in argv). */
function authArgs(token: string): string[] {
  const f = join(work, `h-${randomInt(1e9)}`);
  writeFileSync(f, `Authorization: Bearer ${token}\n`, { mode: 0o600 });
  return ['-H', `@${f}`];
}

/** Bounded poll: up to 10 s. */
async function waitFor(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
  expect(ok()).toBe(true);
}

const plainApi = () => `http://127.0.0.1:${p.apiPort}`;
const tlsApi = () => `https://127.0.0.1:${p.apiPort}`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'paas-remote-'));
  cfg = join(work, 'config');
  cert = join(work, 'api.crt');
  const key = join(work, 'api.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '2', '-subj', '/CN=paas test', '-keyout', key, '-out', cert,
    '-addext', `subjectAltName=DNS:localhost,IP:127.0.0.1,IP:${HOST_IP}`,
  ], { stdio: 'pipe' }); // prettier-ignore
  fingerprint = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', cert])
    .toString()
    .trim()
    .replace(/^.*=/, 'SHA256:');
  execFileSync('ip', ['netns', 'add', NS]);
  execFileSync('ip', ['link', 'add', `${VETH}a`, 'type', 'veth', 'peer', 'name', `${VETH}b`]);
  execFileSync('ip', ['link', 'set', `${VETH}b`, 'netns', NS]);
  execFileSync('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', `${VETH}a`]);
  execFileSync('ip', ['link', 'set', `${VETH}a`, 'up']);
  execFileSync('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_IP}/30`, 'dev', `${VETH}b`]);
  execFileSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', `${VETH}b`, 'up']);
  execFileSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
  p = await startPaas({
    daemonArgs: ['--api-host', '0.0.0.0', '--tls-cert', cert, '--tls-key', key],
  });
  secrets.push(p.token);
}, 120_000);

afterAll(async () => {
  await p?.cleanup();
  try {
    execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  } catch {
    // not created
  }
  try {
    execFileSync('ip', ['link', 'del', `${VETH}a`], { stdio: 'ignore' });
  } catch {
    // gone with the namespace
  }
  rmSync(work, { recursive: true, force: true });
});

describe('remote access over HTTPS with a pinned certificate', () => {
  it('refuses a wrong fingerprint, and an unconfirmed one when not at a terminal', async () => {
    const wrong = `SHA256:${'AB:'.repeat(31)}CD`;
    const r = await paas(['login', tlsApi(), '--fingerprint', wrong], { input: p.token });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('refused');
    expect(r.stderr).toContain(fingerprint);
    const r2 = await paas(['login', tlsApi()], { input: p.token });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain(fingerprint);
    expect(r2.stderr).toContain('--fingerprint');
    // At a terminal it shows the fingerprint and asks; anything but yes logs nothing in.
    const tty = await paas(['script', '-qec', `${BIN} login ${tlsApi()}`, '/dev/null'], {
      input: 'n\n',
    });
    expect(tty.stdout).toContain(fingerprint);
    expect(tty.stdout).toContain('Trust it and pin it');
    expect(tty.stdout).toContain('Not logged in');
    // Nothing was stored by any of them.
    expect(() => statSync(join(cfg, 'paas', 'token'))).toThrow();
  });

  it('logs in with the fingerprint: 0700 dir, 0600 files; the CLI then works over HTTPS', async () => {
    const r = await paas(['login', tlsApi(), '--fingerprint', fingerprint], { input: p.token });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('scope admin');
    const dir = join(cfg, 'paas');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of ['token', 'ca.pem', 'config.json'])
      expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).toEqual({
      api: tlsApi(),
      fingerprint,
    });
    // No PAAS_API, no PAAS_TOKEN: the stored URL, certificate and token.
    expect((await paas(['apps:create', 'alpha'])).code).toBe(0);
    expect((await paas(['apps:create', 'beta'])).code).toBe(0);
    const list = await paas(['apps:list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((a) => a.name).sort()).toEqual([
      'alpha',
      'beta',
    ]);
  });

  it('git pushes over HTTPS through the credential helper; .git/config holds no token', async () => {
    const repo = appRepo('busybox-web');
    const r = await paas(['git:remote', 'alpha'], { cwd: repo.dir });
    expect(r.code, r.stderr).toBe(0);
    const gitConfig = readFileSync(join(repo.dir, '.git', 'config'), 'utf8');
    expect(gitConfig).not.toContain(p.token);
    expect(gitConfig).toContain(`url = ${tlsApi()}/alpha.git`);
    expect(gitConfig).toContain('git-credential');
    expect(gitConfig).toContain(`sslCAInfo = ${join(cfg, 'paas', 'ca.pem')}`);
    const pushed = await paas(['git', 'push', 'paas', 'main'], { cwd: repo.dir });
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stderr).toMatch(/remote: .*v1/);
    expect(readFileSync(join(repo.dir, '.git', 'config'), 'utf8')).not.toContain(p.token);
    // Without the pinned CA git refuses the self-signed certificate: the CA really is in use.
    const bare = await paas(
      [
        'git',
        '-c',
        `http.${tlsApi()}/alpha.git.sslCAInfo=/etc/ssl/certs/ca-certificates.crt`,
        'fetch',
        'paas',
      ],
      { cwd: repo.dir },
    );
    expect(bare.code).not.toBe(0);
    expect(bare.stderr).toMatch(/certificate/i);
  }, 180_000);

  it('refuses plain HTTP from another address (a network namespace); loopback and HTTPS work', async () => {
    const auth = authArgs(p.token);
    const outside = curl(`http://${HOST_IP}:${p.apiPort}/api/ping`, auth, true);
    expect(outside.status).toBe(403);
    expect(outside.body).toContain('HTTPS');
    // A git client from outside gets the same refusal, before any credential is looked at.
    expect(curl(`http://${HOST_IP}:${p.apiPort}/alpha.git/info/refs?service=git-upload-pack`, [], true).status).toBe(403); // prettier-ignore
    const secure = curl(
      `https://${HOST_IP}:${p.apiPort}/api/ping`,
      [...auth, '--cacert', cert],
      true,
    );
    expect(secure).toEqual({ status: 200, body: '{"ok":true}' });
    expect(curl(`${plainApi()}/api/ping`, auth)).toEqual({ status: 200, body: '{"ok":true}' });
    // The daemon's output is read while this test waits, not during the blocking curls.
    await waitFor(() => p.daemonLog().includes('plain http refused'));
    const line = p
      .daemonLog()
      .split('\n')
      .find((l) => l.includes('plain http refused'));
    expect(line).toContain(NS_IP);
  });
});

describe('scoped tokens', () => {
  let deploy = '';
  let deployId = '';
  let read = '';
  let readId = '';

  it('creates tokens shown once; the list has no secret', async () => {
    const d = await paas(['tokens:create', '--scope', 'deploy', '--app', 'alpha', '--label', 'ci', '--json']);
    expect(d.code, d.stderr).toBe(0);
    ({ token: deploy, info: { id: deployId } } = JSON.parse(d.stdout) as { token: string; info: { id: string } });
    const r = await paas(['tokens:create', '--scope', 'read', '--app', 'alpha', '--expires', '30d', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    read = r.stdout.trim();
    readId = read.split('_')[1]!;
    secrets.push(deploy, read);
    const list = await paas(['tokens', '--json']);
    expect(list.stdout).not.toContain(deploy.slice(22));
    expect(list.stdout).not.toContain(read.slice(22));
    const rows = JSON.parse(list.stdout) as { id: string; scope: string; apps: string[]; label: string | null; expiresAt: string | null }[];
    expect(rows.map((t) => [t.id, t.scope, t.apps, t.label, t.expiresAt === null])).toEqual([
      [deployId, 'deploy', ['alpha'], 'ci', true],
      [readId, 'read', ['alpha'], null, false],
    ]);
  }); // prettier-ignore

  it('a deploy token pushes to its app; another app and admin endpoints are 403', async () => {
    const repo = appRepo('busybox-web');
    repo.write('www/index.html', 'deployed by the ci token\n');
    repo.commit('ci');
    const ok = await push(p, repo.dir, 'alpha', { token: deploy, force: true });
    expect(ok.code, ok.stderr).toBe(0);
    const other = await push(p, repo.dir, 'beta', { token: deploy });
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain('403');
    const h = authArgs(deploy);
    const json = ['-H', 'content-type: application/json'];
    expect(curl(`${plainApi()}/api/apps/alpha/config`, [...h, ...json, '-X', 'PATCH', '-d', '{"set":{"A":"1"}}']).status).toBe(403);
    expect(curl(`${plainApi()}/api/apps/beta/logs`, h).status).toBe(403);
    expect(curl(`${plainApi()}/api/apps/alpha/logs`, h).status).toBe(200);
    expect(curl(`${plainApi()}/api/tokens`, h).status).toBe(403);
    // The CLI says so with the forbidden exit code.
    const cfgSet = await paas(['config:set', 'alpha', 'A=1'], { env: { PAAS_API: plainApi(), PAAS_TOKEN: deploy } });
    expect(cfgSet.code).toBe(4);
    expect(cfgSet.stderr).toContain('needs admin');
    // The registry: its app's repository takes an upload, another's does not.
    const basic = ['-u', `paas:${deploy}`, '-X', 'POST'];
    expect(curl(`${plainApi()}/v2/alpha/blobs/uploads/`, basic).status).toBe(202);
    const denied = curl(`${plainApi()}/v2/beta/blobs/uploads/`, basic);
    expect(denied.status).toBe(403);
    expect(denied.body).toContain('DENIED');
  }, 180_000); // prettier-ignore

  it('a read token reads logs, status and images but cannot push or set config', async () => {
    const h = authArgs(read);
    const logs = curl(`${plainApi()}/api/apps/alpha/logs?n=20`, h);
    expect(logs.status).toBe(200);
    expect(logs.body).not.toBe('');
    expect(curl(`${plainApi()}/api/apps/alpha`, h).status).toBe(200);
    expect(curl(`${plainApi()}/v2/alpha/tags/list`, ['-u', `x:${read}`]).status).toBe(200);
    expect(curl(`${plainApi()}/v2/alpha/blobs/uploads/`, ['-u', `x:${read}`, '-X', 'POST']).status).toBe(403);
    expect(curl(`${plainApi()}/api/apps/alpha/config`, [...h, '-H', 'content-type: application/json', '-X', 'PATCH', '-d', '{"set":{"A":"1"}}']).status).toBe(403);
    const repo = appRepo('busybox-web');
    const pushed = await push(p, repo.dir, 'alpha', { token: read, force: true });
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain('403');
    // apps:list shows only its apps.
    const list = await paas(['apps:list', '--json'], { env: { PAAS_API: plainApi(), PAAS_TOKEN: read } });
    expect((JSON.parse(list.stdout) as { name: string }[]).map((a) => a.name)).toEqual(['alpha']);
  }, 120_000); // prettier-ignore

  it('a revoked or expired token is 401 from the next request on', async () => {
    expect(curl(`${plainApi()}/api/apps/alpha/logs`, authArgs(deploy)).status).toBe(200);
    expect((await paas(['tokens:revoke', deployId])).code).toBe(0);
    expect(curl(`${plainApi()}/api/apps/alpha/logs`, authArgs(deploy)).status).toBe(401);
    expect(curl(`${plainApi()}/v2/alpha/tags/list`, ['-u', `x:${deploy}`]).status).toBe(401);
    // Expiry as the clock would bring it: the row's expiry moved into the past.
    const db = new DatabaseSync(join(p.dataDir, 'tokens.db'));
    db.prepare('UPDATE tokens SET expires_at = ? WHERE id = ?').run('2020-01-01T00:00:00.000Z', readId);
    db.close();
    const expired = curl(`${plainApi()}/api/apps/alpha/logs`, authArgs(read));
    expect(expired.status).toBe(401);
    expect(expired.body).toContain('expired');
  }); // prettier-ignore

  it('tokens:rotate-admin writes a new admin token; the old one stops working', async () => {
    const old = p.token;
    const r = await paas(['tokens:rotate-admin', '--quiet'], { env: { PAAS_API: plainApi(), PAAS_TOKEN: old } });
    expect(r.code, r.stderr).toBe(0);
    const fresh = r.stdout.trim();
    secrets.push(fresh);
    expect(readFileSync(join(p.dataDir, 'admin-token'), 'utf8').trim()).toBe(fresh);
    expect(statSync(join(p.dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(curl(`${plainApi()}/api/ping`, authArgs(old)).status).toBe(401);
    expect(curl(`${plainApi()}/api/ping`, authArgs(fresh)).status).toBe(200);
    p.token = fresh;
  }); // prettier-ignore

  it('logs every refusal by token id and never a token', async () => {
    await waitFor(() => p.daemonLog().includes('expired token'));
    const log = p.daemonLog();
    expect(log).toContain('auth refused');
    const lines = log.split('\n').filter((l) => l.includes('auth refused'));
    expect(
      lines.some(
        (l) => l.includes(`"token":"${deployId}"`) && l.includes('does not cover app beta'),
      ),
    ).toBe(true);
    expect(lines.some((l) => l.includes('expired token'))).toBe(true);
    for (const s of secrets) {
      expect(log).not.toContain(s);
      if (s.startsWith('paas_')) expect(log).not.toContain(s.slice(22));
    }
  });
});
