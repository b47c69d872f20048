// SSH git access on real peers: OpenSSH's client and real git push to the daemon's SSH
// server on loopback; the real pre-receive hook calls back over the hook socket, where a
// handler plays the pipeline with the real per-app lock. Refusals are checked with the
// OpenSSH client and, where it cannot ask (forwarding by hand), with an ssh2 Client.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2, { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openState, parseAppName, type State } from '../apps/index.ts';
import { listenHookSocket, type PushHandler } from '../git/index.ts';
import {
  ensureHostKey,
  parseSshKeyName,
  parseSshPublicKey,
  startSshServer,
  SshKeys,
  type HostKey,
  type SshServer,
} from './index.ts';

let dir: string;
let state: State;
let hooks: NetServer;
let ssh: SshServer;
let host: HostKey;
let knownHosts: string;
let handler: PushHandler = async () => 0;
let handled = 0;
let keyStore: SshKeys;

/** A fresh key pair made by ssh-keygen (not stored). */
function newKey(name: string, type = 'ed25519'): { path: string; pub: string } {
  const path = join(dir, 'keys', name);
  mkdirSync(join(dir, 'keys'), { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `${name}@test`, '-f', path]);
  return { path, pub: readFileSync(`${path}.pub`, 'utf8') };
}
/** A fresh key, stored as `ssh-keys:add` would (apps: [] is every app); its private key's path. */
function addKey(name: string, apps: string[] = []): string {
  const k = newKey(name);
  keyStore.add(parseSshKeyName(name), parseSshPublicKey(k.pub), apps.map(parseAppName));
  return k.path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'paas-ssh-'));
  const dataDir = join(dir, 'data');
  state = openState(dataDir);
  keyStore = new SshKeys(state.db);
  const reposDir = join(dataDir, 'git');
  mkdirSync(reposDir, { recursive: true });
  const hookSocket = join(dataDir, 'run', 'hook.sock');
  hooks = await listenHookSocket(hookSocket, reposDir, (p, o) => {
    handled++;
    return handler(p, o);
  });
  host = ensureHostKey(dataDir);
  ssh = await startSshServer(
    {
      reposDir,
      hookSocket,
      maxPushBytes: 1024 ** 2,
      hostKey: host.privateKey,
      findKey: (fp) => keyStore.byFingerprint(fp),
      appExists: (app) => state.apps.exists(app),
      appForPush: (app) => void state.apps.ensureForPush(app),
      appForFetch: (app) => void state.apps.get(app),
      log: () => undefined,
      loginGraceMs: 5000,
    },
    0,
    '127.0.0.1',
  );
  // known_hosts made from the host key, so StrictHostKeyChecking=yes passes only for it.
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${ssh.port} ${host.publicKey}\n`);
});

afterAll(async () => {
  await ssh?.close();
  hooks?.close();
  state?.close();
  rmSync(dir, { recursive: true, force: true });
});

function sshCommand(key: string): string {
  return `ssh -F /dev/null -i ${key} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts} -p ${ssh.port}`;
}
const url = (path: string) => `ssh://git@127.0.0.1:${ssh.port}/${path}`;

function work(name: string): string {
  const w = join(dir, 'work', name);
  mkdirSync(w, { recursive: true });
  const g = (...a: string[]) => execFileSync('git', a, { cwd: w, stdio: 'pipe' });
  g('init', '-q', '-b', 'main');
  g('config', 'user.email', 't@example.com');
  g('config', 'user.name', 'T');
  writeFileSync(join(w, 'index.html'), `hello ${name}\n`);
  g('add', '.');
  g('commit', '-qm', 'first');
  return w;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in its own process group; `onStderr` may call `kill()` to drop it. */
function run(
  cmd: string,
  args: string[],
  opts: {
    cwd?: string;
    env?: Record<string, string>;
    onStderr?: (all: string, kill: () => void) => void;
  } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', ...opts.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const kill = () => {
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    };
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(stderr, kill);
    });
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function gitPush(
  key: string,
  cwd: string,
  path: string,
  onStderr?: (s: string, kill: () => void) => void,
) {
  return run('git', ['push', url(path), 'main'], {
    cwd,
    env: { GIT_SSH_COMMAND: sshCommand(key) },
    onStderr,
  });
}
function sshExec(key: string, args: string[]): Promise<Run> {
  return run('sh', ['-c', `${sshCommand(key)} "$@"`, 'ssh', ...args]);
}

const head = (w: string) =>
  execFileSync('git', ['rev-parse', 'HEAD'], { cwd: w }).toString().trim();
const remoteRef = (app: string) => {
  try {
    return execFileSync(
      'git',
      ['--git-dir', join(dir, 'data', 'git', `${app}.git`), 'rev-parse', 'main'],
      {
        stdio: 'pipe',
      },
    )
      .toString()
      .trim();
  } catch {
    return null;
  }
};

/** The handler a deploy would be: holds the app's lock for the whole push. */
function lockingHandler(
  body: (out: { write(s: string): void }, signal: AbortSignal) => Promise<number>,
): PushHandler {
  return async (p, out) => {
    const unlock = await state.locks.acquire(p.app, 'push', { signal: out.signal });
    try {
      return await body(out, out.signal);
    } finally {
      unlock();
    }
  };
}

describe('the host key', () => {
  it('is ed25519, 0600, made once and reused; its fingerprint is what ssh-keygen -lf prints', () => {
    const again = ensureHostKey(join(dir, 'data'));
    expect(again.publicKey).toBe(host.publicKey);
    expect(statSync(host.path).mode & 0o777).toBe(0o600);
    expect(host.publicKey).toMatch(/^ssh-ed25519 /);
    const lf = execFileSync('ssh-keygen', ['-lf', `${host.path}.pub`]).toString();
    expect(lf.split(' ')[1]).toBe(host.fingerprint);
  });
});

describe('git push over SSH', () => {
  let dev: string;
  beforeAll(() => {
    dev = addKey('dev');
  });

  it('a fresh ed25519 key pushes; remote: lines stream while the handler runs; the app is created', async () => {
    const w = work('live');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    handler = lockingHandler(async (out) => {
      out.write('-----> building\n');
      await gate; // the pusher must already have seen the line above
      out.write('-----> done\n');
      return 0;
    });
    const r = await gitPush(dev, w, 'live.git', (s) => {
      if (s.includes('remote: -----> building')) release();
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/remote: -----> building[\s\S]*remote: -----> done/);
    expect(remoteRef('live')).toBe(head(w));
    expect(state.apps.exists(parseAppName('live'))).toBe(true);
    // The scp-like form and a path without the leading slash reach the same repository.
    const clone = join(dir, 'clone');
    const c = await run('git', ['clone', `git@127.0.0.1:live.git`, clone], {
      env: { GIT_SSH_COMMAND: sshCommand(dev) },
    });
    // scp-like syntax has no port: it goes through GIT_SSH_COMMAND's -p.
    expect(c.code, c.stderr).toBe(0);
    expect(readFileSync(join(clone, 'index.html'), 'utf8')).toBe('hello live\n');
  });

  it('a failing build exits non-zero and the ref does not move', async () => {
    const w = work('failing');
    handler = lockingHandler(async (out) => {
      out.write('build failed at step 2\n');
      return 1;
    });
    const r = await gitPush(dev, w, 'failing.git');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('remote: build failed at step 2');
    expect(remoteRef('failing')).toBeNull();
  });

  it('a client that disconnects mid-push cancels it: the lock is freed and the next push succeeds', async () => {
    const w = work('dropped');
    let cancelled = false;
    handler = lockingHandler(async (out, signal) => {
      out.write('-----> building\n');
      // Held until the pusher goes away: only a cancelled push frees the lock here.
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
      cancelled = true;
      return 1;
    });
    const r = await gitPush(dev, w, 'dropped.git', (s, kill) => {
      if (s.includes('remote: -----> building')) kill();
    });
    expect(r.code).not.toBe(0);
    for (let i = 0; i < 200 && !cancelled; i++) await new Promise((res) => setTimeout(res, 50));
    expect(cancelled).toBe(true);
    handler = lockingHandler(async (out) => {
      out.write('-----> second push\n');
      return 0;
    });
    const again = await gitPush(dev, w, 'dropped.git');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('remote: -----> second push');
    expect(state.locks.holder(parseAppName('dropped'))).toBeNull();
    expect(remoteRef('dropped')).toBe(head(w));
  });

  it('survives a client that sends garbage instead of a banner, and one that sends nothing', async () => {
    const garbage = connect(ssh.port, '127.0.0.1');
    garbage.on('error', () => undefined);
    let answer = '';
    garbage.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    garbage.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    garbage.write(Buffer.alloc(70_000, 0xff));
    garbage.write('SSH-2.0-\x00\xff\r\n');
    await new Promise<void>((r) => garbage.on('close', () => r()));
    expect(answer).toMatch(/^SSH-2\.0-paas\r\n/);
    // Nothing at all: cut after the login grace time (a close, not a clock, is asserted).
    const silent = connect(ssh.port, '127.0.0.1');
    silent.on('error', () => undefined);
    silent.resume();
    await new Promise<void>((r) => silent.on('close', () => r()));
    handler = async (_p, out) => {
      out.write('-----> still here\n');
      return 0;
    };
    const r = await gitPush(dev, work('after-garbage'), 'after-garbage.git');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('remote: -----> still here');
  });
});

describe('refusals', () => {
  let dev: string;
  let limited: string;
  beforeAll(() => {
    dev = addKey('refusals-dev');
    state.apps.ensureForPush(parseAppName('mine'));
    limited = addKey('limited', ['mine', 'not-yet']);
    handler = async (_p, out) => {
      out.write('-----> deployed\n');
      return 0;
    };
  });

  it('an unknown key cannot log in', async () => {
    const stranger = newKey('stranger').path;
    const before = handled;
    const r = await gitPush(stranger, work('stranger'), 'stranger.git');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
    expect(handled).toBe(before);
    expect(state.apps.exists(parseAppName('stranger'))).toBe(false);
  });

  it("a stored key's public half signed by another private key cannot log in", async () => {
    // The attacker knows dev's public key (it is public) and signs with a key of their own.
    const forged = ssh2.utils.parseKey(readFileSync(newKey('forger').path));
    if (forged instanceof Error) throw forged;
    const victim = Buffer.from(readFileSync(`${dev}.pub`, 'utf8').split(' ')[1]!, 'base64');
    forged.getPublicSSH = () => victim;
    const c = new Client();
    const err = await new Promise<Error | null>((resolve) => {
      c.on('ready', () => resolve(null));
      c.on('error', (e) => resolve(e));
      c.connect({
        host: '127.0.0.1',
        port: ssh.port,
        username: 'git',
        authHandler: [{ type: 'publickey', username: 'git', key: forged }],
        hostVerifier: (key: Buffer) =>
          key.equals(Buffer.from(host.publicKey.split(' ')[1]!, 'base64')),
      } as never);
    });
    c.end();
    expect(err?.message).toMatch(/All configured authentication methods failed/);
  });

  it('a key limited to other apps cannot push or fetch this one, nor create its own listed app', async () => {
    const w = work('other');
    const push = await gitPush(limited, w, 'other.git');
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('the SSH key "limited" may not reach app "other"');
    expect(state.apps.exists(parseAppName('other'))).toBe(false);
    // `live` exists and has code; the limited key still cannot read it.
    const fetch = await run('git', ['ls-remote', url('live.git')], {
      env: { GIT_SSH_COMMAND: sshCommand(limited) },
    });
    expect(fetch.code).not.toBe(0);
    expect(fetch.stderr).toContain('may not reach app "live"');
    const create = await gitPush(limited, w, 'not-yet.git');
    expect(create.code).not.toBe(0);
    expect(create.stderr).toContain('a key limited to apps cannot create one');
    const own = await gitPush(limited, w, 'mine.git');
    expect(own.code, own.stderr).toBe(0);
    expect(own.stderr).toContain('remote: -----> deployed');
  });

  it('a shell and a pty are refused; no shell runs', async () => {
    const shell = await sshExec(dev, ['-T', 'git@127.0.0.1']);
    expect(shell.code).not.toBe(0);
    expect(shell.stderr).toContain('there is no shell here');
    const pty = await sshExec(dev, ['-tt', 'git@127.0.0.1', 'id']);
    expect(pty.stderr).toMatch(/PTY allocation request failed/);
    expect(pty.code).not.toBe(0);
    expect(pty.stdout).not.toMatch(/uid=/);
  });

  it.each([
    ['ls'],
    ['id'],
    ["git-receive-pack 'live.git'; id"],
    ["git-receive-pack 'live.git' && id"],
    ["git-upload-pack 'live.git' $(id)"],
    ['git-receive-pack `id`'],
    ["git-receive-pack '../x.git'"],
    ["git-receive-pack 'a/../b.git'"],
    ["git-upload-pack '/../../etc.git'"],
    ["git-upload-pack '//live.git'"],
    ["git-upload-pack 'live'"],
    ["git-upload-pack '/etc/passwd'"],
    ["git upload-pack 'live.git'"],
    ["git-upload-archive 'live.git'"],
    ["git-receive-pack 'Bad_Name.git'"],
  ])('exec %s is refused', async (command) => {
    const r = await sshExec(dev, ['git@127.0.0.1', command]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^paas: /m);
    expect(r.stdout).toBe('');
  });

  it('git with a path outside the repositories is refused', async () => {
    const r = await run('git', ['ls-remote', url('../live.git')], {
      env: { GIT_SSH_COMMAND: sshCommand(dev) },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('paas: ');
  });

  it('port forwarding (ssh -W, -R) and a subsystem are refused', async () => {
    const w = await sshExec(dev, ['-W', `127.0.0.1:${ssh.port}`, 'git@127.0.0.1']);
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/administratively prohibited|open failed/);
    const rf = await sshExec(dev, [
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      '0:127.0.0.1:9',
      'git@127.0.0.1',
      "git-upload-pack 'live.git'",
    ]);
    expect(rf.code).not.toBe(0);
    expect(rf.stderr).toMatch(/remote port forwarding failed/i);
    const sub = await sshExec(dev, ['-s', 'git@127.0.0.1', 'sftp']);
    expect(sub.code).not.toBe(0);
    expect(sub.stderr).toMatch(/subsystem request failed/);
  });

  it('an ssh2 client gets no direct-tcpip, tcpip-forward, x11, agent forwarding or second channel', async () => {
    const login = async (extra: Record<string, unknown> = {}) => {
      const c = new Client();
      await new Promise<void>((resolve, reject) => {
        c.on('ready', () => resolve());
        c.on('error', reject);
        c.connect({
          host: '127.0.0.1',
          port: ssh.port,
          username: 'git',
          privateKey: readFileSync(dev),
          hostVerifier: (key: Buffer) =>
            key.equals(Buffer.from(host.publicKey.split(' ')[1]!, 'base64')),
          ...extra,
        });
      });
      return c;
    };
    const execErr = (c: Client, cmd: string, o: object = {}) =>
      new Promise<Error | null>((r) =>
        c.exec(cmd, o, (err, stream) => {
          if (err) return r(err);
          stream.on('data', () => stream.end('0000'));
          stream.on('close', () => r(null));
          stream.stderr.resume();
        }),
      );
    const c = await login();
    try {
      const out = await new Promise<Error | null>((r) =>
        c.forwardOut('127.0.0.1', 1, '127.0.0.1', ssh.port, (err) => r(err ?? null)),
      );
      expect(out?.message).toMatch(/Channel open failure/);
      const inn = await new Promise<Error | null>((r) =>
        c.forwardIn('127.0.0.1', 0, (err) => r(err ?? null)),
      );
      expect(inn?.message).toMatch(/Unable to bind/);
      expect((await execErr(c, "git-upload-pack 'live.git'", { x11: true }))?.message).toMatch(
        /Unable to request X11/,
      );
      // The one session was used: a second channel is refused, whatever it asks for.
      expect((await execErr(c, "git-upload-pack 'live.git'"))?.message).toMatch(
        /Channel open failure/,
      );
    } finally {
      c.end();
    }
    const a = await login({ agent: join(dir, 'no-agent.sock') });
    try {
      const err = await execErr(a, "git-upload-pack 'live.git'", { agentForward: true });
      expect(err?.message).toMatch(/agent forwarding/i);
    } finally {
      a.end();
    }
  });
});
