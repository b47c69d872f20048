import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/host.ts';
import { openWorkspace } from './workspace.ts';

const tmp = tempDir('workspace');
afterAll(() => tmp.cleanup());

describe('openWorkspace', () => {
  it('sweeps what a killed build left and keeps a live build’s workspace', async () => {
    const dir = join(tmp.dir, 'build', 'tmp');
    const dead = `${spawnSync('true').pid}-0a1b2c`;
    const live = `${process.pid}-3d4e5f`;
    for (const name of [dead, live]) {
      mkdirSync(join(dir, name, '1-upper'), { recursive: true });
      writeFileSync(join(dir, name, '1-upper', 'file'), 'x');
    }
    const ws = await openWorkspace(tmp.dir);
    expect(readdirSync(dir).sort()).toEqual([live, ws.root.split('/').pop()].sort());
    await ws.remove();
    expect(readdirSync(dir)).toEqual([live]);
  });
});
