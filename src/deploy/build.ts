// Steps 1 and 2 of a push: receive (the pushed commit's tree into a build directory) and
// build (an image from it). A Dockerfile builds as is; an app without one builds from the
// Dockerfile its buildpack renders (`chooseBuildMethod`, src/buildpacks).
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  AppFiles,
  describeChoice,
  detect,
  parseProcfile,
  writeBuildpackFiles,
  type BuildChoice,
} from '../buildpacks/index.ts';
import { checkoutCommit, type ReceivedPush, type RefUpdate } from '../git/index.ts';
import type { AppJson, AppName, Processes } from '../apps/index.ts';
import { BuildFailed } from '../errors/index.ts';
import type { Image } from '../registry/index.ts';
import { readAppJson } from './app-json.ts';
import type { Reporter } from './report.ts';
import type { DeployDeps } from './types.ts';

export interface Checkout {
  app: AppName;
  sha: string;
  dir: string;
  dispose(): void;
}

export async function receive(
  deps: DeployDeps,
  push: ReceivedPush,
  ref: RefUpdate,
): Promise<Checkout> {
  const dir = join(
    deps.dataDir,
    'tmp',
    `checkout-${push.app}-${ref.newSha.slice(0, 12)}-${process.hrtime.bigint()}`,
  );
  await checkoutCommit(push.gitDir, ref.newSha, push.gitEnv, dir, deps.maxPushBytes);
  return {
    app: push.app,
    sha: ref.newSha,
    dir,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Built {
  buildId: number;
  image: Image;
  /** `<app>:build-<id>`; the release tags it `<app>:vN` too. */
  imageRef: string;
  processes: Processes;
  appJson: AppJson;
  /** The buildpack that rendered the Dockerfile, or 'dockerfile' for the app's own. */
  buildpack: string;
}

/**
 * Choose build: the repository's Dockerfile, or one rendered by the buildpack that recognizes
 * the app (the BUILDPACK config var forces one). Its files (a static server…) join the context.
 */
async function chooseBuildMethod(
  deps: DeployDeps,
  dir: string,
  config: Readonly<Record<string, string>>,
): Promise<BuildChoice> {
  // The release list is fetched (or read from its cache) only for apps with a package.json.
  const nodeReleases =
    deps.baseImages !== undefined && existsSync(join(dir, 'package.json'))
      ? await deps.baseImages.nodeReleases()
      : undefined;
  const choice = detect(dir, { forced: config.BUILDPACK, nodeReleases });
  writeBuildpackFiles(dir, choice);
  return choice;
}

export async function build(deps: DeployDeps, co: Checkout, r: Reporter): Promise<Built> {
  const record = deps.state.builds.start(co.app, co.sha);
  try {
    const method = await chooseBuildMethod(deps, co.dir, deps.state.apps.config(co.app));
    r.info(`Build ${record.id} of ${co.sha.slice(0, 7)}: ${describeChoice(method)}`);
    for (const w of method.warnings) r.info(`warning: ${w}`);
    const tag = `build-${record.id}`;
    const bases = deps.baseImages;
    const { image } = await deps.build({
      contextDir: co.dir,
      dockerfile: method.dockerfile ?? undefined,
      tag: { repo: co.app, tag },
      runtime: deps.runtime,
      store: deps.store,
      dataDir: deps.dataDir,
      onLine: (line) => r.build(line),
      limits: deps.buildLimits,
      // The checkout is already held to --max-push-size; a second, smaller cap would only confuse.
      ...(deps.maxPushBytes === undefined ? {} : { maxContextBytes: deps.maxPushBytes }),
      prepareBase: bases ? (ref, say) => bases.prepare(ref, say) : undefined,
    });
    const processes = processTypes(co.dir, image);
    deps.state.builds.succeed(record.id, `${co.app}:${tag}`);
    return {
      buildId: record.id,
      image,
      imageRef: `${co.app}:${tag}`,
      processes,
      appJson: readAppJson(co.dir),
      buildpack: method.kind === 'dockerfile' ? 'dockerfile' : method.buildpack,
    };
  } catch (e) {
    deps.state.builds.fail(record.id, e instanceof Error ? e.message : String(e));
    throw e;
  }
}

/**
 * Process types: the Procfile's (`type: command`, run by /bin/sh -c as Heroku does), else the
 * image's ENTRYPOINT + CMD as `web`.
 */
export function processTypes(dir: string, image: Image): Processes {
  // Read beneath the checkout: a Procfile symlinked to a host file reads as absent.
  const procfile = new AppFiles(dir).read('Procfile');
  if (procfile !== null) {
    const types = parseProcfile(procfile);
    return Object.fromEntries(
      Object.entries(types).map(([type, line]) => [type, ['/bin/sh', '-c', line]]),
    );
  }
  const cmd = [...(image.config.Entrypoint ?? []), ...(image.config.Cmd ?? [])];
  if (cmd.length === 0)
    throw new BuildFailed('the image has no CMD and there is no Procfile: nothing to run as web', {
      step: 'release',
    });
  return { web: cmd };
}
