// FROM: which stages a target needs, and the state a stage starts from (an earlier stage,
// scratch, or an image in the store).
import { InvalidDockerfile } from '../errors/index.ts';
import { rootKey } from './cache.ts';
import type { Stage } from './parse.ts';
import type { BuildSession, StageState } from './session.ts';
import { expandWord, expandWords, type Vars } from './words.ts';

/** The image or stage a FROM names, after global ARG substitution. */
export function fromRef(s: Stage, globals: Vars, escape: string): string {
  const words = expandWords(s.from.args, globals, escape, s.from.line);
  return words[0] ?? '';
}

/** Stages the target needs (FROM <stage>, COPY --from), in file order. */
export function neededStages(
  stages: Stage[],
  target: Stage,
  fromOf: (s: Stage) => string,
  globals: Vars,
): Stage[] {
  const need = new Set<number>();
  const byRef = (ref: string, before: number): Stage | undefined => {
    const r = ref.toLowerCase();
    if (/^\d+$/.test(r)) return Number(r) < before ? stages[Number(r)] : undefined;
    return stages.find((s) => s.name === r && s.index < before);
  };
  const visit = (s: Stage): void => {
    if (need.has(s.index)) return;
    need.add(s.index);
    const parent = byRef(fromOf(s), s.index);
    if (parent) visit(parent);
    for (const i of s.instrs) {
      const f = i.flags.get('from');
      if (i.keyword === 'COPY' && f !== undefined) {
        const dep = byRef(expandWord(f, globals), s.index);
        if (dep) visit(dep);
      }
    }
  };
  visit(target);
  return stages.filter((s) => need.has(s.index));
}

/** The earlier stage a FROM names, if it names one. */
export function parentStage(session: BuildSession, s: Stage): StageState | undefined {
  const ref = fromRef(s, session.globals, session.escape);
  return [...session.built.values()].find(
    (b) => b.stage.name === ref.toLowerCase() && b.stage.index < s.index,
  );
}

/** FROM: the state the stage starts from. */
export async function fromStage(session: BuildSession, s: Stage): Promise<StageState> {
  const ref = fromRef(s, session.globals, session.escape);
  if (ref === '')
    throw new InvalidDockerfile(`Dockerfile line ${s.from.line}: FROM needs an image`, {
      line: s.from.line,
    });
  const parent = parentStage(session, s);
  if (parent !== undefined) {
    return {
      ...structuredClone({ ...parent, stage: null }),
      stage: s,
      args: new Map(),
      cmdSet: false,
      rebuilt: parent.rebuilt,
      key: rootKey(`stage ${parent.key}`),
    } as StageState;
  }
  if (ref === 'scratch') {
    return {
      stage: s,
      base: null,
      layers: [],
      newLayers: [],
      history: [],
      config: {},
      cmdSet: false,
      key: rootKey('scratch'),
      args: new Map(),
      created: new Date(0).toISOString(),
      rebuilt: false,
    };
  }
  const base = await session.resolveBase(ref);
  return {
    stage: s,
    base,
    layers: [...base.layers],
    newLayers: [],
    history: [],
    config: structuredClone(base.config),
    cmdSet: false,
    key: rootKey(base.digest),
    args: new Map(),
    created: base.configFile.created ?? new Date(0).toISOString(),
    rebuilt: false,
  };
}
