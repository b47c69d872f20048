// Git receive on real repos: a real git client pushes over HTTP to the handler, the real
// pre-receive hook calls back over the socket, and the push handler here plays the pipeline.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppNotFound, Unauthorized } from '../errors/index.ts';
import { createGitHttpHandler, listenHookSocket, planPush, type PushHandler } from './index.ts';
import { checkoutCommit } from './checkout.ts';
import { readFileSync } from 'node:fs';

let dir: string;
let http: Server;
let hooks: NetServer;
let port = 0;
let handler: PushHandler = async () => 0;
const TOKEN = 'secret-token';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'paas-git-'));
  const reposDir = join(dir, 'repos');
  mkdirSync(reposDir);
  const hookSocket = join(dir, 'run', 'hook.sock');
  hooks = await listenHookSocket(hookSocket, reposDir, (p, o) => handler(p, o));
  const h = createGitHttpHandler({
    reposDir,
    hookSocket,
    maxPushBytes: 200_000,
    authorize: (p) => {
      if (p !== TOKEN) throw new Unauthorized('no valid token');
    },
    appForPush: (app) => {
      if (app === 'gone') throw new AppNotFound(`app "${app}" was destroyed`);
    },
    appForFetch: () => undefined,
  });
  http = createServer((req, res) => void h(req, res));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  port = (http.address() as { port: number }).port;
});

afterAll(async () => {
  http.close();
  hooks.close();
  rmSync(dir, { recursive: true, force: true });
});

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

function push(
  cwd: string,
  app: string,
  args: string[],
  onStderr?: (s: string) => void,
  token = TOKEN,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('git', ['push', `http://x:${token}@127.0.0.1:${port}/${app}.git`, ...args], {
      cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr);
    });
    p.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

const head = (w: string) =>
  execFileSync('git', ['rev-parse', 'HEAD'], { cwd: w }).toString().trim();
const remoteRef = (app: string, ref: string) => {
  try {
    return execFileSync('git', ['--git-dir', join(dir, 'repos', `${app}.git`), 'rev-parse', ref], {
      stdio: 'pipe',
    })
      .toString()
      .trim();
  } catch {
    return null;
  }
};

describe('git receive', () => {
  it('streams remote: lines live while the handler runs, and exports the pushed tree', async () => {
    const w = work('live');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let exported = '';
    handler = async (p, out) => {
      const plan = planPush(p.refs);
      if (plan.kind !== 'deploy') return 1;
      const dest = join(dir, 'ctx');
      await checkoutCommit(p.gitDir, plan.ref.newSha, p.gitEnv, dest);
      exported = readFileSync(join(dest, 'index.html'), 'utf8');
      out.write('-----> building\n');
      await gate; // the pusher must already have seen the line above
      out.write('-----> done\n');
      return 0;
    };
    const r = await push(w, 'live', ['main'], (s) => {
      if (s.includes('remote: -----> building')) release();
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/remote: -----> building[\s\S]*remote: -----> done/);
    expect(exported).toBe('hello live\n');
    expect(remoteRef('live', 'main')).toBe(head(w));
  });

  it('declines the ref update when the handler fails', async () => {
    const w = work('failing');
    handler = async (_p, out) => {
      out.write('build failed at step 2\n');
      return 1;
    };
    const r = await push(w, 'failing', ['main']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('remote: build failed at step 2');
    expect(remoteRef('failing', 'main')).toBeNull();
  });

  it('stores other branches, refuses deleting main', async () => {
    const w = work('branches');
    const plans: string[] = [];
    handler = async (p, out) => {
      const plan = planPush(p.refs);
      plans.push(plan.kind);
      if (plan.kind === 'refuse') {
        out.write(`${plan.reason}\n`);
        return 1;
      }
      return 0;
    };
    expect((await push(w, 'branches', ['main'])).code).toBe(0);
    expect((await push(w, 'branches', ['main:feature'])).code).toBe(0);
    const del = await push(w, 'branches', [':main']);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(/deleting main is not allowed/);
    expect(plans).toEqual(['deploy', 'store', 'refuse']);
    expect(remoteRef('branches', 'main')).toBe(head(w));
  });

  it('refuses a wrong token, an invalid app name, a destroyed app and an oversized push', async () => {
    handler = async () => 0;
    const w = work('refusals');
    const bad = await push(w, 'refusals', ['main'], undefined, 'wrong');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/Authentication failed|401/);
    const invalid = await push(w, 'Bad_Name', ['main']);
    expect(invalid.code).not.toBe(0);
    expect(invalid.stderr).toMatch(/app name "Bad_Name" is invalid/);
    const gone = await push(w, 'gone', ['main']);
    expect(gone.stderr).toMatch(/was destroyed/);
    // Incompressible data so the pack really is larger than the 200 kB limit.
    execFileSync(
      'sh',
      ['-c', 'head -c 600000 /dev/urandom > big.bin && git add big.bin && git commit -qm big'],
      { cwd: w },
    );
    const big = await push(w, 'refusals', ['main']);
    expect(big.code).not.toBe(0);
    expect(big.stderr).toMatch(/larger than the limit|exceeds maximum allowed size/);
    expect(remoteRef('refusals', 'main')).toBeNull();
  });
});
