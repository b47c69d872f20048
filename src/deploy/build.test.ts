// Process types come from the pushed tree's Procfile, read beneath the checkout: a Procfile
// symlinked to a host file reads as absent, so the host file's lines never reach a parse
// error in the push output.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Image } from '../registry/index.ts';
import { processTypes } from './build.ts';

const root = mkdtempSync('/var/tmp/paas-deploy-build-');
afterAll(() => rmSync(root, { recursive: true, force: true }));
const image = { config: { Cmd: ['httpd', '-f'] } } as unknown as Image;

describe('processTypes', () => {
  it("reads the checkout's Procfile", () => {
    const dir = mkdtempSync(path.join(root, 'app-'));
    writeFileSync(path.join(dir, 'Procfile'), 'web: ./server\nworker: ./jobs\n');
    expect(processTypes(dir, image)).toEqual({
      web: ['/bin/sh', '-c', './server'],
      worker: ['/bin/sh', '-c', './jobs'],
    });
  });

  it('never reads a host file through a symlinked Procfile', () => {
    const secret = path.join(root, 'shadow');
    writeFileSync(secret, 'root-secret-hash-line\n');
    for (const target of [secret, `../../../../../../..${secret}`]) {
      const dir = mkdtempSync(path.join(root, 'app-'));
      symlinkSync(target, path.join(dir, 'Procfile'));
      expect(processTypes(dir, image)).toEqual({ web: ['httpd', '-f'] });
    }
  });
});
