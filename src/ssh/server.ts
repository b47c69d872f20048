// The daemon's own SSH server for git (no change to the system's sshd): public-key
// authentication against the stored keys, then exactly one exec of git-receive-pack or
// git-upload-pack on one app's repository. The push goes through the same bare repository,
// pre-receive hook and hook socket as a push over HTTP (src/git), so it deploys the same
// way: the same streamed `remote:` lines, exit status and per-app lock. Everything else an
// SSH client can ask for — a shell, a pty, env, forwarding either way, agent or X11
// forwarding, subsystems, a second channel — is refused.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { Connection, Server, ServerChannel, Session } from 'ssh2';
import type { AppName } from '../apps/index.ts';
import { AppNotFound, describeError, PaasError, SshKeyNotAllowed } from '../errors/index.ts';
import { ensureRepo, repoPath, type RepoOptions } from '../git/index.ts';
import { parseGitCommand, type GitCommand } from './command.ts';
import { fingerprintOf } from './keys.ts';
import { ssh2 } from './lib.ts';
import type { SshKey } from './store.ts';

export interface SshServerOptions extends RepoOptions {
  hostKey: string;
  /** The stored key with this fingerprint, or null. */
  findKey(fingerprint: string): SshKey | null;
  /** Whether the app exists now (a key limited to apps never creates one). */
  appExists(app: AppName): boolean;
  /** As for HTTP: resolves the app a push targets, creating it on first push; throws to refuse. */
  appForPush(app: AppName): void;
  /** As for HTTP: throws a PaasError when the app cannot be fetched from. */
  appForFetch(app: AppName): void;
  log(msg: string, extra?: Record<string, unknown>): void;
  /** Time from connect to a successful login (OpenSSH's LoginGraceTime), ms. */
  loginGraceMs?: number;
}

export interface SshServer {
  port: number;
  close(): Promise<void>;
}

// OpenSSH's MaxAuthTries; and its MaxStartups, simplified to a hard cap on connections that
// have not logged in yet, so a flood of idle handshakes cannot pile up.
const MAX_AUTH_TRIES = 6;
const MAX_UNAUTHENTICATED = 32;
const LOGIN_GRACE_MS = 60_000;

function refuse(channel: ServerChannel, message: string): void {
  channel.stderr.write(`paas: ${message}\n`);
  channel.exit(1);
  channel.end();
}

export async function startSshServer(
  opts: SshServerOptions,
  port: number,
  host: string,
): Promise<SshServer> {
  const graceMs = opts.loginGraceMs ?? LOGIN_GRACE_MS;
  // Sockets that have not logged in yet, by remote address: ssh2 only reports a connection
  // once the client's banner arrived, and has no timeout of its own, so the raw socket is
  // held to the login grace time here (a client that sends nothing is cut too).
  const pending = new Map<string, () => void>();
  // Made at the first connection (ssh2 is loaded then, lib.ts), then kept.
  let ssh: Server | undefined;
  const makeServer = (): Server =>
    new (ssh2().Server)({ hostKeys: [opts.hostKey], ident: 'paas' }, (client, info) => {
      const loggedIn = pending.get(`${info.ip}|${info.port}`) ?? (() => undefined);
      // A client that sends garbage, or drops mid-push, ends here: ssh2 reports a protocol
      // error on the connection, which must not take the daemon down.
      client.on('error', (e: Error) => {
        opts.log('ssh connection error', { ip: info.ip, err: e.message });
        client.end();
      });
      let key: SshKey | null = null;
      let failures = 0;
      client.on('authentication', (ctx) => {
        // Public keys only: no password, keyboard-interactive or host-based login exists.
        if (ctx.method !== 'publickey') {
          if (ctx.method !== 'none' && ++failures >= MAX_AUTH_TRIES) return void client.end();
          return ctx.reject(['publickey']);
        }
        const stored = opts.findKey(fingerprintOf(ctx.key.data));
        const parsed = stored === null ? null : ssh2().utils.parseKey(stored.publicKey);
        const ok =
          stored !== null &&
          parsed !== null &&
          !(parsed instanceof Error) &&
          parsed.getPublicSSH().equals(ctx.key.data) &&
          // Without a signature the client only asks whether the key would do (RFC 4252 §7).
          (ctx.signature === undefined ||
            (ctx.blob !== undefined &&
              parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true));
        if (!ok) {
          opts.log('ssh key refused', { ip: info.ip, fingerprint: fingerprintOf(ctx.key.data) });
          if (++failures >= MAX_AUTH_TRIES) return void client.end();
          return ctx.reject(['publickey']);
        }
        if (ctx.signature !== undefined) key = stored;
        ctx.accept();
      });
      client.on('ready', () => {
        loggedIn();
        if (key === null) return void client.end();
        opts.log('ssh login', { key: key.name, ip: info.ip });
        serveSession(client, key, opts, info.ip, graceMs);
      });
    });
  const sockets = new Set<Socket>();
  const tcp = createServer((socket) => {
    if (pending.size >= MAX_UNAUTHENTICATED) return void socket.destroy();
    const id = `${socket.remoteAddress}|${socket.remotePort}`;
    sockets.add(socket);
    const timer = setTimeout(() => socket.destroy(), graceMs);
    const done = () => {
      clearTimeout(timer);
      pending.delete(id);
    };
    pending.set(id, done);
    socket.on('close', () => {
      done();
      sockets.delete(socket);
    });
    socket.on('error', () => undefined);
    try {
      ssh ??= makeServer();
    } catch (e) {
      // The host key is read here, at the first connection (hostkey.ts): a damaged one
      // refuses SSH, and says why, instead of taking the daemon down.
      opts.log('ssh host key unreadable', { err: (e as Error).message });
      return void socket.destroy();
    }
    ssh.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  // A listener error after start (EMFILE on accept) is logged; the server keeps listening.
  tcp.on('error', (e: Error) => opts.log('ssh server error', { err: e.message }));
  return {
    port: (tcp.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        tcp.close(() => resolve());
      }),
  };
}

function serveSession(
  client: Connection,
  key: SshKey,
  opts: SshServerOptions,
  ip: string,
  graceMs: number,
): void {
  // A login that never asks for its command is held no longer than a login is.
  const idle = setTimeout(() => client.end(), graceMs);
  client.on('close', () => clearTimeout(idle));
  // One command per connection: once its channel closes, so does the connection.
  const finished = (ch: ServerChannel) => ch.on('close', () => client.end());
  // Forwarding either way and unknown global requests: refused (ssh2 answers
  // REQUEST_FAILURE / OPEN_ADMINISTRATIVELY_PROHIBITED).
  client.on('tcpip', (_accept, reject) => reject());
  client.on('openssh.streamlocal', (_accept, reject) => reject());
  client.on('request', (_accept, reject) => reject?.());
  let sessions = 0;
  client.on('session', (accept, reject) => {
    // One session, one command: a second channel is refused.
    if (++sessions > 1) return reject();
    const session: Session = accept();
    let used = false;
    for (const ev of ['pty', 'x11', 'env', 'auth-agent', 'subsystem', 'sftp', 'signal'])
      session.on(ev, (_accept: unknown, reject?: () => void) => reject?.());
    session.on('window-change', (_accept: unknown, reject?: () => void) => reject?.());
    session.on('shell', (accept, reject) => {
      if (used) return reject();
      used = true;
      clearTimeout(idle);
      const ch = accept();
      finished(ch);
      refuse(
        ch,
        `hi ${key.name}: there is no shell here; push with git (ssh://git@HOST:PORT/APP.git)`,
      );
      opts.log('ssh shell refused', { key: key.name, ip });
    });
    session.on('exec', (accept, reject, info) => {
      if (used) return reject();
      used = true;
      clearTimeout(idle);
      const ch = accept();
      finished(ch);
      let cmd: GitCommand;
      try {
        cmd = parseGitCommand(info.command);
        authorize(cmd, key, opts);
      } catch (e) {
        opts.log('ssh command refused', { key: key.name, ip, err: describeError(e) });
        if (e instanceof PaasError) return refuse(ch, e.message);
        return refuse(ch, 'internal error');
      }
      void runGit(cmd, ch, opts).then(
        (code) => opts.log('ssh git done', { key: key.name, ip, app: cmd.app, code }),
        (e: unknown) => {
          opts.log('ssh git failed', { key: key.name, ip, err: describeError(e) });
          if (!ch.destroyed) refuse(ch, e instanceof PaasError ? e.message : 'internal error');
        },
      );
    });
  });
}

/** The key's app list, then the same app rules as a push or fetch over HTTP. */
function authorize(cmd: GitCommand, key: SshKey, opts: SshServerOptions): void {
  if (key.apps.length > 0) {
    if (!key.apps.includes(cmd.app))
      throw new SshKeyNotAllowed(`the SSH key "${key.name}" may not reach app "${cmd.app}"`, {
        key: key.name,
        app: cmd.app,
      });
    // Creating apps is for unrestricted keys; a limited key reaches only what exists.
    if (!opts.appExists(cmd.app))
      throw new AppNotFound(
        `app "${cmd.app}" does not exist; a key limited to apps cannot create one (paas apps:create ${cmd.app})`,
        { app: cmd.app },
      );
  }
  if (cmd.service === 'git-receive-pack') opts.appForPush(cmd.app);
  else opts.appForFetch(cmd.app);
}

async function runGit(cmd: GitCommand, ch: ServerChannel, opts: SshServerOptions): Promise<number> {
  let dir: string;
  if (cmd.service === 'git-receive-pack') dir = await ensureRepo(opts, cmd.app);
  else {
    dir = repoPath(opts.reposDir, cmd.app);
    if (!existsSync(dir))
      throw new AppNotFound(`app "${cmd.app}" has no pushed code yet`, { app: cmd.app });
  }
  if (ch.destroyed) return 1;
  // Its own process group, so a client that goes away takes receive-pack and the hook with
  // it: the hook's socket closes, the pipeline sees the push cancelled and frees the lock.
  const git: ChildProcess = spawn(
    'git',
    [cmd.service === 'git-receive-pack' ? 'receive-pack' : 'upload-pack', dir],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true },
  );
  let exited = false;
  const killGroup = () => {
    if (exited || git.pid === undefined) return;
    try {
      process.kill(-git.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  ch.on('close', killGroup);
  ch.on('error', killGroup);
  git.stdin!.on('error', () => undefined);
  ch.pipe(git.stdin!);
  git.stdout!.pipe(ch, { end: false });
  git.stderr!.on('data', (d: Buffer) => ch.stderr.write(d));
  const code = await new Promise<number>((resolve) => {
    git.on('error', () => resolve(1));
    git.on('close', (c) => resolve(c ?? 1));
  });
  exited = true;
  if (!ch.destroyed) {
    // The write's callback runs after everything written before it, so the exit status
    // never overtakes the last of git's output.
    ch.write('', () => {
      ch.exit(code);
      ch.end();
    });
  }
  return code;
}
