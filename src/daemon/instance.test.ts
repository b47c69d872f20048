import { spawn } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, tempDir } from '../../test/helpers/host.ts';
import { DataDirInUse } from '../errors/index.ts';
import { claimDataDir, claimName } from './instance.ts';

const tmp = tempDir('instance');
afterAll(() => tmp.cleanup());

/** A process that claims `dir` and prints "claimed" (or its refusal), then waits. */
function holder(dir: string) {
  const child = spawn(
    process.execPath,
    [
      '--disable-warning=ExperimentalWarning',
      '--input-type=module',
      '-e',
      `
      import { claimDataDir } from ${JSON.stringify(join(REPO, 'src/daemon/instance.ts'))};
      try { await claimDataDir(${JSON.stringify(dir)}); console.log('claimed'); }
      catch (e) { console.log(e.code + ' ' + e.message); process.exit(5); }
      setInterval(() => {}, 1000);
    `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const said = new Promise<string>((resolve) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.endsWith('\n')) resolve(out.trim());
    });
  });
  return { child, said };
}

describe('one daemon per data dir', () => {
  it('refuses a second claim, naming the holder, and frees it when the holder is killed -9', async () => {
    const dir = join(tmp.dir, 'a');
    mkdirSync(dir);
    const first = holder(dir);
    expect(await first.said).toBe('claimed');

    const err = await claimDataDir(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataDirInUse);
    expect((err as Error).message).toBe(
      `data dir ${dir} is in use by another paas daemon (pid ${first.child.pid}); stop it first`,
    );
    expect((err as InstanceType<typeof DataDirInUse>).details).toEqual({
      dataDir: dir,
      pid: first.child.pid,
    });

    // No stale lock: the kernel frees the claim with the process, before anyone reaps it.
    const gone = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await gone;
    const claim = await claimDataDir(dir);
    const other = holder(dir);
    expect(await other.said).toMatch(
      new RegExp(`^DataDirInUse data dir .* \\(pid ${process.pid}\\)`),
    );
    await claim.release();
    const again = holder(dir);
    expect(await again.said).toBe('claimed');
    again.child.kill('SIGKILL');
  });

  it('is one claim for one directory, whatever path names it', async () => {
    const dir = join(tmp.dir, 'b');
    mkdirSync(dir);
    symlinkSync(dir, join(tmp.dir, 'b-link'));
    expect(claimName(join(tmp.dir, 'b-link'))).toBe(claimName(`${dir}/.`));
    const claim = await claimDataDir(dir);
    await expect(claimDataDir(join(tmp.dir, 'b-link'))).rejects.toThrow(DataDirInUse);
    // Another directory is another claim.
    mkdirSync(join(tmp.dir, 'c'));
    await (await claimDataDir(join(tmp.dir, 'c'))).release();
    await claim.release();
  });
});
