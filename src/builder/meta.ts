// WORKDIR, ARG and the metadata instructions (ENV, LABEL, USER, EXPOSE, CMD, ENTRYPOINT, …):
// they change the stage's config or build args; WORKDIR also makes a layer when the image
// lacks the directory.
import path from 'node:path';
import { InvalidDockerfile } from '../errors/index.ts';
import { stepKey } from './cache.ts';
import { applyMeta } from './config.ts';
import { writeDirLayer } from './layer.ts';
import type { Instr } from './parse.ts';
import type { BuildSession, StageState } from './session.ts';
import { expandWord } from './words.ts';

/** WORKDIR: returns whether its layer (if any) was cached. */
export async function workdirInstr(
  session: BuildSession,
  st: StageState,
  i: Instr,
): Promise<boolean> {
  const dir = expandWord(i.args, session.vars(st), session.escape, i.line).trim();
  if (dir === '')
    throw new InvalidDockerfile(`Dockerfile line ${i.line}: WORKDIR needs a path`, {
      line: i.line,
    });
  const abs = path.posix.resolve(st.config.WorkingDir || '/', dir);
  st.config.WorkingDir = abs;
  const key = stepKey({ parent: st.key, instruction: `WORKDIR ${abs}`, args: st.args });
  // The directory is created (root-owned, 0755) when the image lacks it, as Docker does.
  return session.layerStep(st, key, `WORKDIR ${abs}`, async () => {
    const layer = await session.tmp('workdir');
    return (await writeDirLayer(abs, layer, await session.layerDirs(st.layers), i.line))
      ? layer
      : null;
  });
}

/** ARG in a stage: build arg, else the global of that name, else its default. Returns its text. */
function arg(session: BuildSession, st: StageState, i: Instr): string {
  const parts: string[] = [];
  for (const p of i.props) {
    session.consumed.add(p.name);
    const v =
      session.buildArgs.get(p.name) ??
      (p.value === null
        ? session.globals.get(p.name)
        : expandWord(p.value, session.vars(st), session.escape, i.line));
    if (v !== undefined) st.args.set(p.name, v);
    parts.push(v === undefined ? p.name : `${p.name}=${v}`);
  }
  return `ARG ${parts.join(' ')}`;
}

/** ARG and the config instructions: no layer; "cached" while nothing before it was rebuilt. */
export function metaInstr(session: BuildSession, st: StageState, i: Instr): boolean {
  const text =
    i.keyword === 'ARG' ? arg(session, st, i) : applyMeta(st, i, session.vars(st), session.escape);
  st.key = stepKey({ parent: st.key, instruction: text, args: st.args });
  st.history.push({ created: st.created, created_by: text, empty_layer: true });
  return session.opts.noCache !== true && !st.rebuilt;
}
