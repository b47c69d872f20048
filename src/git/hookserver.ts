// The daemon's end of the pre-receive hook: a unix socket in the data dir (root-only, like
// the rest of it). One connection per push: a JSON request line in, JSON lines out —
// `{"out": text}` for the pusher, then `{"exit": code}` as the hook's verdict.
import { chmodSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, dirname, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAppName } from '../apps/index.ts';
import type { ReceivedPush, RefUpdate } from './receive.ts';

export interface PushOutput {
  write(text: string): void;
  /** Aborted when the pusher (hence the hook) went away. */
  readonly signal: AbortSignal;
}

export type PushHandler = (push: ReceivedPush, out: PushOutput) => Promise<number>;

interface HookRequest {
  gitDir?: unknown;
  refs?: unknown;
  env?: unknown;
}

export async function listenHookSocket(
  path: string,
  reposDir: string,
  handler: PushHandler,
): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  const server = createServer((sock) => void serve(sock, reposDir, handler));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

async function serve(sock: Socket, reposDir: string, handler: PushHandler): Promise<void> {
  const ac = new AbortController();
  sock.on('close', () => ac.abort());
  sock.on('error', () => ac.abort());
  const send = (m: object) => {
    if (!sock.destroyed) sock.write(`${JSON.stringify(m)}\n`);
  };
  const rl = createInterface({ input: sock });
  const first = await new Promise<string | null>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(null));
  });
  rl.close();
  if (first === null) return;
  let code = 1;
  try {
    const push = parseRequest(first, reposDir);
    code = await handler(push, { write: (text) => send({ out: text }), signal: ac.signal });
  } catch (e) {
    send({ out: `paas: ${e instanceof Error ? e.message : String(e)}\n` });
    code = 1;
  }
  send({ exit: code });
  sock.end();
}

function parseRequest(line: string, reposDir: string): ReceivedPush {
  const req = JSON.parse(line) as HookRequest;
  if (typeof req.gitDir !== 'string') throw new Error('bad hook request');
  // The repo must be one of ours: `<reposDir>/<app>.git`, nothing else.
  const gitDir = realpathSync(req.gitDir);
  const rel = relative(realpathSync(reposDir), gitDir);
  if (rel.includes('/') || !rel.endsWith('.git'))
    throw new Error('push to a repository paas does not manage');
  const app = parseAppName(basename(rel, '.git'));
  const refs = (Array.isArray(req.refs) ? req.refs : []).map((r: unknown): RefUpdate => {
    const o = r as Record<string, unknown>;
    return { oldSha: String(o.oldSha), newSha: String(o.newSha), ref: String(o.ref) };
  });
  const env: Record<string, string> = {};
  if (req.env !== null && typeof req.env === 'object') {
    for (const [k, v] of Object.entries(req.env))
      if (k.startsWith('GIT_') && typeof v === 'string') env[k] = v;
  }
  return { app, gitDir, refs, gitEnv: env };
}
