// The build context: the pushed commit's tree, exported with `git archive` (no .git, no
// working-tree state) and unpacked with the tar library.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';

export async function checkoutCommit(
  gitDir: string,
  sha: string,
  gitEnv: Record<string, string>,
  dest: string,
): Promise<void> {
  if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`not a commit id: ${sha}`);
  mkdirSync(dest, { recursive: true });
  const p = spawn('git', ['--git-dir', gitDir, 'archive', '--format=tar', sha], {
    env: { ...process.env, ...gitEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve) => p.on('close', (code) => resolve(code ?? 1)));
  await pipeline(p.stdout, tar.x({ cwd: dest, preserveOwner: false }));
  const code = await exited;
  if (code !== 0) throw new Error(`git archive ${sha.slice(0, 7)} failed: ${stderr.trim()}`);
}
