// The contract every buildpack keeps (STYLE.md §4), run by each buildpack's test file against
// its fixtures: detection says why, rendering is strict and deterministic, the Dockerfile
// parses, builds FROM a base image we ship, and runs its app as a non-root user.
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';
import { AppFiles } from './app.ts';
import type { Buildpack } from './types.ts';

export const FIXTURES = path.resolve(import.meta.dirname, '../../test/fixtures/buildpacks');
// Base images src/baseimages makes: node:<version>[-slim] (built at install or on demand), debian.
const BASES = /^(node:\d+(\.\d+){0,2}(-slim)?|debian:bookworm)( AS [a-z-]+)?$/i;

export function buildpackContract(
  bp: Buildpack,
  fixtures: { matches: string[]; ignores: string[] },
): void {
  describe(`buildpack contract: ${bp.name}`, () => {
    for (const name of fixtures.matches) {
      describe(name, () => {
        const app = (): AppFiles => new AppFiles(path.join(FIXTURES, name));

        it('detects with a reason', () => {
          expect(bp.detect(app())).toMatch(/\S/);
        });

        it('renders a Dockerfile that parses, uses a shipped base and runs as non-root', () => {
          const plan = bp.plan(app());
          const text = bp.render({ ...plan.inputs, reason: 'contract' });
          expect(text).not.toMatch(/\{\{|\}\}|&amp;|&quot;|&#x27;|&lt;|&gt;/);
          const df = DockerfileParser.parse(text);
          const instrs = df.getInstructions();
          expect(instrs.map((i) => i.getKeyword())).toContain('FROM');
          // Each FROM is a base image we ship or an earlier stage of this Dockerfile.
          const stages: string[] = [];
          for (const from of df.getFROMs()) {
            const image = from.getImageName() ?? '';
            if (!stages.includes(image)) expect(from.getArgumentsContent()).toMatch(BASES);
            const name = from.getBuildStage();
            if (name !== null) stages.push(name);
          }
          const lastFrom = instrs.map((i) => i.getKeyword()).lastIndexOf('FROM');
          const final = instrs.slice(lastFrom);
          const user = final
            .filter((i) => i.getKeyword() === 'USER')
            .at(-1)
            ?.getArgumentsContent();
          expect(user, 'the final stage sets a USER').toBeTruthy();
          expect(user).not.toMatch(/^(root|0)(:|$)/);
          expect(final.some((i) => i.getKeyword() === 'CMD')).toBe(true);
          // Every COPY source without --from is the app's or the buildpack's own file.
          const lines = text.split('\n');
          for (const c of final.filter(
            (i) =>
              i.getKeyword() === 'COPY' && !lines[i.getRange().start.line]!.includes('--from='),
          )) {
            const src = c.getArguments()[0]!.getValue();
            expect(
              src === '.' ||
                src.endsWith('/') ||
                src in plan.files ||
                app().isFile(src) ||
                app().isDir(src),
            ).toBe(true);
          }
        });

        it('is deterministic (the same app renders the same Dockerfile, so layer keys repeat)', () => {
          const a = bp.plan(app());
          const b = bp.plan(app());
          expect(bp.render({ ...a.inputs, reason: 'x' })).toBe(
            bp.render({ ...b.inputs, reason: 'x' }),
          );
        });

        it('names process types and keeps its files inside the context', () => {
          const plan = bp.plan(app());
          expect(Object.keys(plan.processTypes).length).toBeGreaterThan(0);
          for (const [type, cmd] of Object.entries(plan.processTypes)) {
            expect(type).toMatch(/^[a-z][a-z0-9_-]*$/);
            expect(cmd).toMatch(/\S/);
          }
          for (const rel of Object.keys(plan.files)) {
            expect(path.isAbsolute(rel)).toBe(false);
            expect(path.normalize(rel).startsWith('..')).toBe(false);
          }
        });

        it('renders strictly: a missing template input is an error, not an empty string', () => {
          const plan = bp.plan(app());
          expect(() => bp.render({ ...plan.inputs })).toThrow(/reason/);
        });
      });
    }

    for (const name of fixtures.ignores) {
      it(`does not claim ${name}`, () => {
        expect(bp.detect(new AppFiles(path.join(FIXTURES, name)))).toBeNull();
      });
    }

    it('does not claim an empty directory', () => {
      const dir = mkdtempSync('/tmp/paas-bp-empty-');
      try {
        expect(bp.detect(new AppFiles(dir))).toBeNull();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
