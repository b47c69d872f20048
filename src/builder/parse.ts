// Dockerfile syntax → stages of instructions. The syntax (instruction boundaries, line
// continuations, comments, the `# escape=` directive, flags, ENV/LABEL/ARG key-value pairs)
// comes from dockerfile-ast; this file only shapes its output for the executor and refuses
// what we do not execute, naming the line.
import { createRequire } from 'node:module';
import type { DockerfileParser as Parser, Instruction } from 'dockerfile-ast';
import { InvalidDockerfile } from '../errors/index.ts';

export const SUPPORTED = new Set([
  'FROM',
  'ARG',
  'ENV',
  'LABEL',
  'MAINTAINER',
  'WORKDIR',
  'USER',
  'RUN',
  'COPY',
  'ADD',
  'EXPOSE',
  'CMD',
  'ENTRYPOINT',
  'VOLUME',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
]);

/** Flags each instruction accepts (Dockerfile reference); anything else is refused. */
const FLAGS: Record<string, readonly string[]> = {
  FROM: ['platform'],
  COPY: ['from', 'chown', 'chmod', 'link'],
  ADD: ['chown', 'chmod', 'link'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

export type Property = {
  name: string;
  /** raw value text, quotes and `$` not yet processed; null for `ARG NAME` */ value: string | null;
};

export type Instr = {
  /** 1-based line of the instruction keyword. */
  line: number;
  keyword: string;
  /** Arguments with continuations joined and continuation comments dropped; flags removed. */
  args: string;
  flags: Map<string, string>;
  /** Exec (JSON array) form of RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD, VOLUME, HEALTHCHECK CMD. */
  json: string[] | null;
  /** ENV, LABEL, ARG pairs. */
  props: Property[];
  /** The source text as written, continuations joined (history, messages). */
  text: string;
};

export type Stage = { index: number; name: string | null; from: Instr; instrs: Instr[] };
export type Parsed = { escape: string; globalArgs: Instr[]; stages: Stage[] };

function fail(line: number, why: string): never {
  throw new InvalidDockerfile(`Dockerfile line ${line}: ${why}`, { line });
}

/**
 * Joins continuation lines as Docker does: the escape character before a newline is removed,
 * and comment or blank lines inside a continued instruction are dropped.
 */
export function joinContinuations(raw: string, escape: string): string {
  const lines = raw.split('\n').map((l) => l.replace(/\r$/, ''));
  let out = '';
  for (const [i, line] of lines.entries()) {
    if (i > 0 && (/^\s*#/.test(line) || line.trim() === '')) continue;
    const m = /^(.*?)\s*$/.exec(line);
    const body = m?.[1] ?? line;
    if (i < lines.length - 1 && body.endsWith(escape))
      out += line.slice(0, line.lastIndexOf(escape));
    else out += line;
  }
  return out.trim();
}

/** `["a", "b"]` → ['a','b']; anything else (Docker falls back to the shell form) → null. */
export function parseJsonForm(args: string): string[] | null {
  const t = args.trim();
  if (!t.startsWith('[')) return null;
  try {
    const v: unknown = JSON.parse(t);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // Not JSON: shell form.
  }
  return null;
}

function toInstr(ins: Instruction, escape: string): Instr {
  const line = ins.getRange().start.line + 1;
  const keyword = ins.getKeyword();
  if (!SUPPORTED.has(keyword)) {
    const why =
      keyword === 'ONBUILD'
        ? 'ONBUILD is not supported'
        : `unknown or unsupported instruction "${ins.getInstruction()}"`;
    fail(line, `${why} (supported: ${[...SUPPORTED].join(', ')})`);
  }
  const args = joinContinuations(ins.getRawArgumentsContent() ?? '', escape);
  const flags = new Map<string, string>();
  const getFlags = (
    ins as Partial<{ getFlags(): { getName(): string; getValue(): string | null }[] }>
  ).getFlags;
  for (const f of getFlags ? getFlags.call(ins) : []) {
    const allowed = FLAGS[keyword] ?? [];
    if (!allowed.includes(f.getName())) {
      fail(
        line,
        `${keyword} --${f.getName()} is not supported${allowed.length ? ` (supported: ${allowed.map((a) => `--${a}`).join(', ')})` : ''}`,
      );
    }
    flags.set(f.getName(), f.getValue() ?? '');
  }
  if (
    (keyword === 'RUN' || keyword === 'COPY' || keyword === 'ADD') &&
    /^<<-?\s*["']?[A-Za-z_]/.test(args)
  ) {
    fail(line, `heredocs (${keyword} <<…) are not supported; put the script in a file and COPY it`);
  }
  const props: Property[] = [];
  const getProps = (
    ins as Partial<{ getProperties(): { getName(): string; getUnescapedValue(): string | null }[] }>
  ).getProperties;
  if ((keyword === 'ENV' || keyword === 'LABEL' || keyword === 'ARG') && getProps) {
    for (const p of getProps.call(ins))
      props.push({ name: p.getName(), value: p.getUnescapedValue() });
    if (props.length === 0)
      fail(line, `${keyword} needs at least one name${keyword === 'ARG' ? '' : '=value pair'}`);
  }
  const json = ['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'COPY', 'ADD', 'VOLUME'].includes(keyword)
    ? parseJsonForm(args)
    : null;
  const text = `${keyword}${[...flags].map(([k, v]) => ` --${k}=${v}`).join('')} ${args}`.trim();
  return { line, keyword, args, flags, json, props, text };
}

/** Parses Dockerfile text into global ARGs and stages; refuses what we cannot execute. */
export function parseDockerfile(content: string): Parsed {
  // Loaded by the first parse (a build), not with the daemon.
  const { DockerfileParser } = createRequire(import.meta.url)('dockerfile-ast') as {
    DockerfileParser: typeof Parser;
  };
  const df = DockerfileParser.parse(content);
  const escape = df.getEscapeCharacter();
  const globalArgs: Instr[] = [];
  const stages: Stage[] = [];
  for (const ins of df.getInstructions()) {
    const instr = toInstr(ins, escape);
    if (instr.keyword === 'FROM') {
      const words = instr.args.split(/\s+/).filter(Boolean);
      let name: string | null = null;
      if (words.length === 3 && words[1]?.toUpperCase() === 'AS') {
        name = (words[2] as string).toLowerCase();
        if (!/^[a-z][a-z0-9._-]*$/.test(name)) fail(instr.line, `invalid stage name "${words[2]}"`);
        if (stages.some((s) => s.name === name)) fail(instr.line, `duplicate stage name "${name}"`);
      } else if (words.length !== 1) {
        fail(instr.line, 'FROM takes an image and optionally "AS name"');
      }
      stages.push({ index: stages.length, name, from: instr, instrs: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) {
      if (instr.keyword !== 'ARG')
        fail(instr.line, `${instr.keyword} before the first FROM (only ARG may come first)`);
      globalArgs.push(instr);
      continue;
    }
    stage.instrs.push(instr);
  }
  if (stages.length === 0) throw new InvalidDockerfile('Dockerfile has no FROM instruction', {});
  return { escape, globalArgs, stages };
}
