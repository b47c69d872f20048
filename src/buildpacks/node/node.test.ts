import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BuildFailed } from '../../errors/index.ts';
import { AppFiles } from '../app.ts';
import { buildpackContract, FIXTURES } from '../contract.case.ts';
import { nodeMajor } from './engines.ts';
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

describe('engines.node → base image major', () => {
  it.each([
    [undefined, 24],
    ['22.x', 22],
    ['^22.5.0', 22],
    ['24', 24],
    ['>=18', 26],
    ['^22 || ^24', 24],
    ['>=20 <25', 24],
    ['20 || 22', 22],
    ['*', 26],
  ])('%s → node:%i', (range, major) => {
    expect(nodeMajor(range).major).toBe(major);
  });

  it.each(['18.x', '<=20', '^20.1.0'])(
    '%s fails: end-of-life, naming the supported majors',
    (range) => {
      expect(() => nodeMajor(range)).toThrow(BuildFailed);
      expect(() => nodeMajor(range)).toThrow(
        `package.json engines.node "${range}" allows no supported Node major (Node 20 and older are end-of-life); supported: 22, 24, 26`,
      );
    },
  );

  it('a range beyond the newest base fails without calling it end-of-life', () => {
    expect(() => nodeMajor('>=30')).toThrow(
      /^package\.json engines\.node ">=30" allows no supported Node major; supported: 22, 24, 26/,
    );
  });

  it('something that is not a range fails', () => {
    expect(() => nodeMajor('latest please')).toThrow(/is not a semver range/);
    expect(() => nodeMajor(22)).toThrow(/is not a semver range/);
  });

  it('the rendered Dockerfile builds and runs on that major', () => {
    const text = render(app('node22'));
    expect(text.match(/^FROM node:\S+/gm)).toEqual(['FROM node:22', 'FROM node:22']);
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
    expect(text.indexOf('COPY . ./')).toBeGreaterThan(install);
  });

  it('a build script runs in its own stage with dev dependencies; the image takes prod-deps', () => {
    const text = render(app('typescript'));
    expect(text).toMatch(
      /^FROM base AS build\nCOPY package\.json package-lock\.json \.\/\nRUN npm ci --no-audit --no-fund\nCOPY \. \.\nRUN npm run build$/m,
    );
    const final = text.slice(text.lastIndexOf('FROM '));
    expect(final).toContain('COPY --from=prod-deps /app/node_modules ./node_modules');
    expect(final).toContain('COPY --from=build /app ./');
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
  });
});
