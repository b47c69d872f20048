// node:util parseArgs for every command, with its errors (unknown option, missing value)
// turned into InvalidArgument so the CLI exits 2 with the message instead of crashing.
import { parseArgs, type ParseArgsConfig, type ParseArgsOptionsConfig } from 'node:util';
import { InvalidArgument } from '../../errors/index.ts';

export function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))
      throw new InvalidArgument((e as Error).message);
    throw e;
  }
}

/** A whole-number flag within bounds, or InvalidArgument naming the command and flag. */
export function intFlag(cmd: string, flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgument(`${cmd}: --${flag} "${v}" must be a whole number in ${min}..${max}`);
  return n;
}

const JSON_FLAG = { json: { type: 'boolean' } } as const;

/**
 * The shape of every CLI command: `COMMAND [POSITIONALS…] [--json] [--flags]`, strict (an
 * unknown flag is InvalidArgument), with `--json` always accepted (read commands print JSON).
 */
export function parseCommand<O extends ParseArgsOptionsConfig = Record<never, never>>(
  args: string[],
  options?: O,
) {
  return parse({
    args,
    strict: true,
    allowPositionals: true,
    options: { ...JSON_FLAG, ...options } as typeof JSON_FLAG & O,
  });
}
