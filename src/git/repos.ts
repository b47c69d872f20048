// Bare repositories, one per app, under `<data-dir>/git/<app>.git`. Each carries a
// pre-receive hook that hands the push to the daemon — Dokku's design: the build runs while
// git waits, its output reaches the pusher as `remote:` lines as it is produced (git
// multiplexes hook output onto sideband 2 live), and a failed build declines the ref update.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AppName } from '../apps/index.ts';

const run = promisify(execFile);

export const HOOK_PROGRAM = join(dirname(fileURLToPath(import.meta.url)), 'hook.ts');

export interface RepoOptions {
  reposDir: string;
  /** Unix socket the hook connects to. */
  hookSocket: string;
  /** Largest pack git accepts (`receive.maxInputSize`), bytes. */
  maxPushBytes: number;
}

export function repoPath(reposDir: string, app: AppName): string {
  return join(reposDir, `${app}.git`);
}

/** Creates the bare repo if needed and (re)writes its hook and limits; idempotent. */
export async function ensureRepo(opts: RepoOptions, app: AppName): Promise<string> {
  const dir = repoPath(opts.reposDir, app);
  if (!existsSync(join(dir, 'HEAD'))) {
    mkdirSync(dir, { recursive: true });
    await run('git', ['init', '--quiet', '--bare', '--initial-branch=main', dir]);
  }
  const cfg = async (k: string, v: string) => run('git', ['--git-dir', dir, 'config', k, v]);
  await cfg('receive.maxInputSize', String(opts.maxPushBytes));
  // Objects and refs are ours: keep old objects around for rollbacks, no surprise gc.
  await cfg('gc.auto', '0');
  await cfg('receive.denyDeleteCurrent', 'true');
  const hook = join(dir, 'hooks', 'pre-receive');
  mkdirSync(dirname(hook), { recursive: true });
  writeFileSync(
    hook,
    `#!/bin/sh\nexec '${process.execPath}' '${HOOK_PROGRAM}' '${opts.hookSocket}'\n`,
  );
  chmodSync(hook, 0o755);
  return dir;
}

export function removeRepo(reposDir: string, app: AppName): void {
  rmSync(repoPath(reposDir, app), { recursive: true, force: true });
}
