// Public surface of the buildpacks (issue 8): an app without a Dockerfile still builds, from
// a Dockerfile rendered by the first buildpack that recognizes it. Order: a forced
// BUILDPACK, the app's own Dockerfile, then node, static, procfile.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BuildFailed, InvalidArgument } from '../errors/index.ts';
import { AppFiles } from './app.ts';
import { node } from './node/index.ts';
import { procfile } from './procfile/index.ts';
import { staticSite } from './static/index.ts';
import type { BuildChoice, Buildpack, BuildpackName, PlanContext } from './types.ts';

export type { BuildChoice, Buildpack, BuildpackName, Plan, PlanContext } from './types.ts';
export { resolveNode, type NodeChoice } from './node/engines.ts';
export { AppFiles } from './app.ts';
export { parseProcfile } from './procfile.ts';

/** Detection order: the first that recognizes the app builds it. */
const BUILDPACKS: readonly Buildpack[] = [node, staticSite, procfile];

export function listBuildpacks(): { name: BuildpackName; summary: string }[] {
  return BUILDPACKS.map((b) => ({ name: b.name, summary: b.summary }));
}

/** The buildpack named `name`; an unknown name is an error listing the known ones. */
export function getBuildpack(name: string): Buildpack {
  const bp = BUILDPACKS.find((b) => b.name === name.trim().toLowerCase());
  if (bp === undefined) {
    throw new InvalidArgument(
      `unknown buildpack "${name}" (BUILDPACK): use one of ${BUILDPACKS.map((b) => b.name).join(', ')}, or unset BUILDPACK to detect`,
      { buildpack: name, known: BUILDPACKS.map((b) => b.name) },
    );
  }
  return bp;
}

const LOOKED_FOR =
  'a Dockerfile, package.json (node), static.json or index.html (static), Procfile (procfile)';

function choose(bp: Buildpack, app: AppFiles, reason: string, ctx: PlanContext): BuildChoice {
  const plan = bp.plan(app, ctx);
  return {
    kind: 'buildpack',
    buildpack: bp.name,
    reason,
    dockerfile: bp.render({ ...plan.inputs, reason }),
    processTypes: plan.processTypes,
    warnings: plan.warnings,
    files: plan.files,
  };
}

/**
 * Chooses how `contextDir` builds. `forced` is the app's BUILDPACK config var: it names the
 * buildpack outright (even over a Dockerfile), and the buildpack must still find its files.
 */
export function detect(
  contextDir: string,
  opts: { forced?: string } & PlanContext = {},
): BuildChoice {
  const app = new AppFiles(contextDir);
  const forced = opts.forced?.trim();
  if (forced !== undefined && forced !== '') {
    const bp = getBuildpack(forced);
    const why = bp.detect(app);
    if (why === null)
      throw new BuildFailed(
        `BUILDPACK=${bp.name}, but the ${bp.name} buildpack does not apply: ${bp.summary}`,
        { step: 'detect', buildpack: bp.name },
      );
    return choose(bp, app, `BUILDPACK=${bp.name} (${why})`, opts);
  }
  if (app.isFile('Dockerfile')) {
    return {
      kind: 'dockerfile',
      buildpack: null,
      reason: 'Dockerfile found at the repository root',
      dockerfile: null,
      processTypes: null,
      warnings: [],
      files: {},
    };
  }
  for (const bp of BUILDPACKS) {
    const why = bp.detect(app);
    if (why !== null) return choose(bp, app, why, opts);
  }
  throw new BuildFailed(
    `no buildpack matched: looked for ${LOOKED_FOR} at the repository root; add one, or set BUILDPACK to one of ${BUILDPACKS.map((b) => b.name).join(', ')}`,
    { step: 'detect', lookedFor: LOOKED_FOR },
  );
}

/** The line a build opens with: what builds the app and why. */
export function describeChoice(c: BuildChoice): string {
  return c.kind === 'dockerfile'
    ? `Building with the app's Dockerfile (${c.reason})`
    : `Building with the ${c.buildpack} buildpack (${c.reason})`;
}

/** Writes the buildpack's own files (the static server…) into the build context. */
export function writeBuildpackFiles(contextDir: string, c: BuildChoice): void {
  for (const [rel, text] of Object.entries(c.files)) {
    const abs = path.join(contextDir, rel);
    mkdirSync(path.dirname(abs), { recursive: true });
    writeFileSync(abs, text);
  }
}
