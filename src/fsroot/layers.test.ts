// Lookups through layer directories follow overlayfs: whiteouts and opaque directories hide
// what lower layers have; a file at an ancestor hides the whole subtree.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LayerStack } from './layers.ts';

const root = mkdtempSync('/var/tmp/paas-fsroot-layers-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

function layer(name: string, files: Record<string, string>): string {
  const dir = path.join(root, name);
  mkdirSync(dir);
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), body);
  }
  return dir;
}

describe('LayerStack', () => {
  const bottom = layer('bottom', {
    'etc/hosts': 'h',
    'etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
    'app/old/x': 'x',
    'data/keep': 'k',
    'srv/a/b': 'b',
  });
  const top = layer('top', { 'app/new': 'n', srv: 'now a file' });
  mkdirSync(path.join(top, 'etc'));
  execFileSync('mknod', ['-m', '000', path.join(top, 'etc/hosts'), 'c', '0', '0']);
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(top, 'app')]);
  symlinkSync('/data', path.join(top, 'link'));
  const stack = new LayerStack([top, bottom]);

  it('sees files from any layer', async () => {
    expect((await stack.lstat('etc/passwd'))?.isFile()).toBe(true);
    expect(await stack.readFile('etc/passwd')).toContain('root');
    expect((await stack.lstat('data/keep'))?.isFile()).toBe(true);
    expect(await stack.readlink('link')).toBe('/data');
  });

  it("hides whited-out files, opaque directories' lower contents, and subtrees under a file", async () => {
    expect(await stack.lstat('etc/hosts')).toBeNull();
    expect(await stack.lstat('app/old/x')).toBeNull();
    expect((await stack.lstat('app/new'))?.isFile()).toBe(true);
    expect(await stack.lstat('srv/a/b')).toBeNull();
    expect(await new LayerStack([bottom]).lstat('srv/a/b')).not.toBeNull();
  });
});
