// The build context: the pushed commit's tree, exported with `git archive` (no .git, no
// working-tree state) and unpacked with the tar library. A small pack can hold a huge tree
// (git deltas and zlib compress a gigabyte of zeros to a few kilobytes), so the cap on the
// pack (receive.maxInputSize) is not enough: the tree's size is summed from `git ls-tree -l`
// before anything is written, and the unpacking counts again in case the archive differs
// from the tree (export-subst, a git that disagrees).
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { PayloadTooLarge } from '../errors/index.ts';

const run = promisify(execFile);

function human(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${n} bytes`;
}

function tooLarge(sha: string, bytes: number | null, maxBytes: number): Error {
  return new PayloadTooLarge(
    `the files of commit ${sha.slice(0, 7)} ${bytes === null ? 'are' : `total ${human(bytes)},`} more than the ${human(maxBytes)} a push may hold (daemon flag --max-push-size)`,
    { limit: maxBytes, ...(bytes === null ? {} : { bytes }) },
  );
}

/** Sum of the blob sizes in the commit's tree (submodule entries have none). */
export async function treeSize(
  gitDir: string,
  sha: string,
  gitEnv: Record<string, string>,
): Promise<number> {
  const { stdout } = await run('git', ['--git-dir', gitDir, 'ls-tree', '-r', '-l', '-z', sha], {
    env: { ...process.env, ...gitEnv },
    maxBuffer: 1024 ** 3,
  });
  let total = 0;
  for (const rec of stdout.split('\0')) {
    // `<mode> SP <type> SP <object> SP+ <size> TAB <path>` (git-ls-tree(1) --long)
    const size = /^\S+ \S+ \S+ +(\d+)\t/.exec(rec)?.[1];
    if (size !== undefined) total += Number(size);
  }
  return total;
}

export async function checkoutCommit(
  gitDir: string,
  sha: string,
  gitEnv: Record<string, string>,
  dest: string,
  maxBytes = Number.POSITIVE_INFINITY,
): Promise<void> {
  if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`not a commit id: ${sha}`);
  const size = await treeSize(gitDir, sha, gitEnv);
  if (size > maxBytes) throw tooLarge(sha, size, maxBytes);
  // tar is loaded by the first checkout (a push), not with the daemon.
  const tar = await import('tar');
  mkdirSync(dest, { recursive: true });
  const p = spawn('git', ['--git-dir', gitDir, 'archive', '--format=tar', sha], {
    env: { ...process.env, ...gitEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve) => p.on('close', (code) => resolve(code ?? 1)));
  let written = 0;
  const over = tooLarge(sha, null, maxBytes);
  const x = tar.x({
    cwd: dest,
    preserveOwner: false,
    onReadEntry: (e) => {
      written += e.size ?? 0;
      if (written > maxBytes) x.abort(over);
    },
  });
  try {
    await pipeline(p.stdout, x);
  } catch (e) {
    p.kill();
    rmSync(dest, { recursive: true, force: true });
    throw written > maxBytes ? over : e;
  }
  const code = await exited;
  if (code !== 0) {
    rmSync(dest, { recursive: true, force: true });
    throw new Error(`git archive ${sha.slice(0, 7)} failed: ${stderr.trim()}`);
  }
}
