import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppFiles } from '../app.ts';
import { parseProcfile } from '../index.ts';
import { buildpackContract } from '../contract.case.ts';
import { procfile } from './index.ts';

buildpackContract(procfile, {
  matches: ['procfile', 'express'],
  ignores: ['nothing', 'static', 'yarn'],
});

describe('procfile buildpack', () => {
  it('runs the repository on debian:bookworm with the Procfile processes, web as the CMD', () => {
    const plan = procfile.plan(
      new AppFiles(path.join(import.meta.dirname, '../../../test/fixtures/buildpacks/procfile')),
    );
    const text = procfile.render({ ...plan.inputs, reason: 'Procfile found' });
    expect(text).toMatch(/^FROM debian:bookworm$/m);
    // The app owns its directory (as on Heroku and Dokku): a predeploy may write there.
    expect(text).toMatch(/^RUN chown app:app \/app\nCOPY --chown=app:app \. \/app\/$/m);
    expect(text).toMatch(/^USER app$/m);
    expect(text).toContain('CMD ["/bin/sh","-c","./serve.sh"]');
    expect(Object.keys(plan.processTypes)).toEqual(['web', 'worker']);
  });

  it('refuses an empty Procfile and a malformed line', () => {
    const dir = mkdtempSync('/tmp/paas-bp-procfile-');
    try {
      writeFileSync(path.join(dir, 'Procfile'), '# nothing\n');
      expect(() => procfile.plan(new AppFiles(dir))).toThrow(/at least one "type: command" line/);
      writeFileSync(path.join(dir, 'Procfile'), 'web node server.js\n');
      expect(() => procfile.plan(new AppFiles(dir))).toThrow(
        /cannot parse line "web node server.js"/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Procfile (the one parser: detection and the release both use it)', () => {
  it('parses types and their command lines and rejects garbage', () => {
    expect(
      parseProcfile(
        '# comment\nweb: node server.js --port $PORT\n\nworker:  node worker.js\nrelease: ./migrate\n',
      ),
    ).toEqual({
      web: 'node server.js --port $PORT',
      worker: 'node worker.js',
      release: './migrate',
    });
    expect(() => parseProcfile('this is not a procfile')).toThrow(/cannot parse line/);
    expect(() => parseProcfile('9web: x')).toThrow(/invalid/);
    // The process-type rule of app state: a type is a DNS label of at most 30.
    expect(() => parseProcfile(`${'w'.repeat(31)}: x`)).toThrow(/process type/);
  });
});
