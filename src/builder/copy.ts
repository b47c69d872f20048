// COPY and ADD: sources from the context, an earlier stage or an image (`--from`), hashed
// into the step's cache key, then written as a layer by the layer writer (layer.ts).
import path from 'node:path';
import { InvalidDockerfile } from '../errors/index.ts';
import { stepKey } from './cache.ts';
import { substitutionVars } from './config.ts';
import { rootTree, type SourceTree } from './context.ts';
import { writeCopyLayer } from './layer.ts';
import { treeBytes } from './limits.ts';
import type { Instr } from './parse.ts';
import type { BuildSession, StageState } from './session.ts';
import { collectSources, hashSources } from './sources.ts';
import { expandWord, expandWords } from './words.ts';

function fail(line: number, why: string): never {
  throw new InvalidDockerfile(`Dockerfile line ${line}: ${why}`, { line });
}

export function parseChmod(raw: string, line: number): number {
  if (!/^[0-7]{3,4}$/.test(raw))
    fail(line, `--chmod=${raw}: use octal permissions such as 755 or 0644`);
  return parseInt(raw, 8);
}

/**
 * Where a COPY reads from. A stage or image source is keyed by that stage's key or image
 * digest (which fix its content), so its root is mounted only when the layer is built.
 */
async function sourceOf(
  session: BuildSession,
  st: StageState,
  from: string | undefined,
  line: number,
): Promise<{ inputs: string | null; open: () => Promise<SourceTree> }> {
  if (from === undefined) return { inputs: null, open: async () => session.ctx };
  const ref = expandWord(
    from,
    substitutionVars(st.config, new Map([...session.globals, ...st.args])),
    session.escape,
    line,
  ).toLowerCase();
  const built = session.built;
  const dep = /^\d+$/.test(ref)
    ? built.get(Number(ref))
    : [...built.values()].find((b) => b.stage.name === ref);
  if (/^\d+$/.test(ref) && (dep === undefined || dep.stage.index >= st.stage.index)) {
    throw new InvalidDockerfile(
      `Dockerfile line ${line}: --from=${ref}: no earlier stage with that index`,
      { line },
    );
  }
  if (dep !== undefined && dep.stage.index < st.stage.index) {
    return {
      inputs: `stage:${dep.key}`,
      open: async () =>
        rootTree(
          (await session.view(dep.layers)).root,
          `stage "${dep.stage.name ?? dep.stage.index}"`,
        ),
    };
  }
  const image = await session.resolveBase(ref);
  return {
    inputs: `image:${image.digest}`,
    open: async () => rootTree((await session.view(image.layers)).root, `image ${image.ref}`),
  };
}

/** COPY / ADD: returns whether the layer came from the cache. */
export async function copyInstr(session: BuildSession, st: StageState, i: Instr): Promise<boolean> {
  const { ctx, escape } = session;
  const vars = session.vars(st);
  const words =
    i.json !== null
      ? i.json.map((w) => expandWord(w, vars, escape, i.line))
      : expandWords(i.args, vars, escape, i.line);
  if (words.length < 2)
    throw new InvalidDockerfile(
      `Dockerfile line ${i.line}: ${i.keyword} needs at least one source and a destination`,
      { line: i.line },
    );
  const srcs = words.slice(0, -1);
  const rawDest = words.at(-1) as string;
  const workdir = st.config.WorkingDir || '/';
  const dest = rawDest.startsWith('/')
    ? rawDest
    : path.posix.join(workdir, rawDest) + (rawDest.endsWith('/') || rawDest === '.' ? '/' : '');
  const chown = i.flags.has('chown')
    ? expandWord(i.flags.get('chown') as string, vars, escape, i.line)
    : null;
  const chmodRaw = i.flags.has('chmod')
    ? expandWord(i.flags.get('chmod') as string, vars, escape, i.line)
    : null;
  const chmod = chmodRaw === null ? null : parseChmod(chmodRaw, i.line);
  const source = await sourceOf(session, st, i.flags.get('from'), i.line);
  // Context sources are resolved and hashed up front: their content is the key.
  const early = source.inputs === null ? await collectSources(ctx, srcs, i.line) : null;
  const hash =
    source.inputs ?? `context:${await hashSources(ctx, early ?? [], session.fileHashes)}`;
  const text = `${i.keyword}${chown ? ` --chown=${chown}` : ''}${chmodRaw ? ` --chmod=${chmodRaw}` : ''} ${JSON.stringify(srcs)} ${dest}`;
  const key = stepKey({ parent: st.key, instruction: text, args: st.args, inputs: hash });
  return session.layerStep(st, key, `${text} # ${hash.slice(0, 24)}`, async () => {
    const tree = await source.open();
    const sources = early ?? (await collectSources(tree, srcs, i.line));
    const layer = await session.tmp('copy');
    await writeCopyLayer(
      {
        tree,
        sources,
        dest,
        chown,
        chmod,
        add: i.keyword === 'ADD',
        line: i.line,
        disk: session.disk,
      },
      layer,
      await session.layerDirs(st.layers),
    );
    session.disk.charge(await treeBytes(layer), `${i.keyword} at line ${i.line}`);
    return layer;
  });
}
