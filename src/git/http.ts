// Git smart HTTP at `/<app>.git/…` on the API port, served by node-git-server once this
// layer has authenticated the request (node-git-server itself only guards info/refs, not
// the POST that carries the pack), parsed the app name and refused oversized pushes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Git } from 'node-git-server';
import { parseAppName, type AppName } from '../apps/index.ts';
import { PaasError } from '../errors/index.ts';
import { ensureRepo, repoPath, type RepoOptions } from './repos.ts';
import { existsSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';

export interface GitHttpOptions extends RepoOptions {
  /**
   * Checks the Basic password (null: none sent) for a fetch or a push of `app`; throws a
   * PaasError to refuse (401: no valid token, so git asks its credential helper; 403: the
   * token does not cover this app or a push).
   */
  authorize(password: string | null, app: AppName, push: boolean, req: IncomingMessage): void;
  /** Resolves the app a push targets (creating it on first push); throws a PaasError to refuse. */
  appForPush(app: AppName): void;
  /** Throws a PaasError when the app cannot be fetched from. */
  appForFetch(app: AppName): void;
}

const PATH = /^\/([^/]+)\.git(\/.*)$/;

export function isGitRequest(url: string): boolean {
  return PATH.test(url.split('?')[0] ?? '');
}

function fail(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  // git prints a text/plain body of a failed request as `remote: …` lines.
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(`${message}\n`);
}

function basicPassword(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (h === undefined || !h.startsWith('Basic ')) return null;
  const decoded = Buffer.from(h.slice(6), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? null : decoded.slice(i + 1);
}

export function createGitHttpHandler(
  opts: GitHttpOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  // node-git-server is loaded at the first git request, not with the daemon
  // (test/lazy-imports.test.ts).
  let git: Promise<Git> | undefined;
  const makeGit = async (): Promise<Git> => {
    const { Git } = await import('node-git-server');
    const g = new Git(opts.reposDir, { autoCreate: false });
    g.on('push', guard);
    g.on('tag', guard);
    g.on('fetch', guard);
    return g;
  };
  // receive-pack exits early on an oversized pack (receive.maxInputSize) while the request
  // body is still being piped into it: that EPIPE is expected, not a daemon crash.
  const guard = (action: {
    on(ev: 'service', fn: (ps: ChildProcess) => void): unknown;
    accept(): void;
  }) => {
    action.on('service', (ps) => ps.stdin?.on('error', () => undefined));
    action.accept();
  };
  return async (req, res) => {
    const [pathname, query = ''] = (req.url ?? '').split('?');
    const m = PATH.exec(pathname ?? '');
    if (m === null) return fail(res, 404, 'not a git path');
    const rest = m[2]!;
    const service =
      rest === '/info/refs'
        ? new URLSearchParams(query).get('service')
        : rest.startsWith('/git-')
          ? rest.slice(1)
          : null;
    if (service !== 'git-receive-pack' && service !== 'git-upload-pack')
      return fail(res, 404, 'paas: only smart HTTP is served');
    let app: AppName;
    try {
      app = parseAppName(m[1]);
      opts.authorize(basicPassword(req), app, service === 'git-receive-pack', req);
      if (service === 'git-receive-pack') {
        opts.appForPush(app);
        await ensureRepo(opts, app);
      } else {
        opts.appForFetch(app);
        if (!existsSync(repoPath(opts.reposDir, app)))
          return fail(res, 404, `paas: app "${app}" has no pushed code yet`);
      }
    } catch (e) {
      if (e instanceof PaasError && e.status === 401)
        return fail(res, 401, `paas: authentication required: ${e.message}`, {
          'www-authenticate': 'Basic realm="paas"',
        });
      if (e instanceof PaasError) return fail(res, e.status, `paas: ${e.message}`);
      throw e;
    }
    (await (git ??= makeGit())).handle(req, res);
  };
}
