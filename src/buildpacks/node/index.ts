// The Node buildpack: any app with a package.json. Picks the Node release from engines.node and
// the package manager from the lockfile, installs production dependencies in a layer keyed by
// the manifests, runs the `build` script in its own stage, and ships a slim, non-root image.
import { BuildFailed } from '../../errors/index.ts';
import type { AppFiles } from '../app.ts';
import { readProcfile } from '../procfile.ts';
import { APP_USER, loadTemplate } from '../render.ts';
import type { Buildpack, Plan } from '../types.ts';
import { localReleases } from '../../baseimages/index.ts';
import { resolveNode } from './engines.ts';
import { needsToolchain, packageManager, PINNED } from './package-manager.ts';

const template = loadTemplate(new URL('./Dockerfile.hbs', import.meta.url));

function scripts(pkg: Record<string, unknown>): Record<string, unknown> {
  const s = pkg.scripts;
  return typeof s === 'object' && s !== null && !Array.isArray(s)
    ? (s as Record<string, unknown>)
    : {};
}

/**
 * What `web` runs: the Procfile's `web:` line when there is one (it wins, as on Heroku, so
 * the defaults below are not even looked at), else `npm start`, else `node <main>`.
 */
function webCommand(
  app: AppFiles,
  pkg: Record<string, unknown>,
  built: boolean,
  procfile: Record<string, string> | null,
): string[] {
  if (procfile?.web !== undefined) return ['/bin/sh', '-c', procfile.web];
  if (typeof scripts(pkg).start === 'string') return ['npm', 'start'];
  const main = typeof pkg.main === 'string' ? pkg.main : 'index.js';
  // A main produced by the build script (dist/server.js) is not in the repository yet.
  if (built || app.isFile(main)) return ['node', main];
  throw new BuildFailed(
    `nothing to run: package.json has no "start" script, ${typeof pkg.main === 'string' ? `its main "${main}" does not exist` : 'no "main" and there is no index.js'}, and ${procfile === null ? 'there is no Procfile' : 'the Procfile has no web line'}`,
    { step: 'detect' },
  );
}

export const node: Buildpack = {
  name: 'node',
  summary:
    'Node.js apps (package.json): npm, yarn or pnpm by lockfile, engines.node picks the Node release',
  detect: (app) => (app.isFile('package.json') ? 'package.json found' : null),
  plan(app, ctx = {}): Plan {
    const pkg = app.json('package.json');
    if (pkg === null)
      throw new BuildFailed('the node buildpack needs a package.json at the repository root', {
        step: 'detect',
      });
    const engines =
      typeof pkg.engines === 'object' && pkg.engines !== null
        ? (pkg.engines as Record<string, unknown>).node
        : undefined;
    const nodeChoice = resolveNode(engines, ctx.nodeReleases ?? localReleases(), ctx.now);
    const pm = packageManager(app, pkg);
    const tc = needsToolchain(app, pkg, pm);
    const buildScript = typeof scripts(pkg).build === 'string';
    const procfile = readProcfile(app);
    const web = webCommand(app, pkg, buildScript, procfile);
    const processTypes = procfile ?? { web: web.join(' ') };
    const warnings = [
      ...(nodeChoice.warning !== null ? [nodeChoice.warning] : []),
      ...(pm.lockfile === null
        ? [
            'no lockfile (package-lock.json, yarn.lock or pnpm-lock.yaml): dependencies resolve afresh on every build; commit a lockfile for repeatable builds',
          ]
        : []),
    ];
    return {
      inputs: {
        major: nodeChoice.major,
        majorReason: nodeChoice.reason,
        // The exact version's slim image: built at install for the pinned majors, else on
        // demand by the builder (src/baseimages) the first time an app asks for it.
        nodeTag: `${nodeChoice.version}-slim`,
        pm: pm.name,
        pmReason: pm.reason,
        toolchain: tc.toolchain,
        toolchainReason: tc.reason,
        corepack: pm.corepack ?? false,
        corepackVersion: PINNED.corepack,
        manifests: pm.manifests.join(' '),
        install: pm.install,
        prodInstall: pm.prodInstall,
        run: pm.run,
        buildScript,
        cmd: web,
        user: APP_USER,
      },
      processTypes,
      warnings,
      files: {},
    };
  },
  render: template,
};
