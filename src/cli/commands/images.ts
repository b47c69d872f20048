// images:gc [--dry-run]: frees image data no tag, kept release or running container uses.
// images:pull REF: fetches REF from its registry now (a tag's newest content).
import { parse as parseArgs, parseCommand } from './args.ts';
import { call, printJson } from './client.ts';
import type { ImagePullResult, Lines } from '../../api/index.ts';
import { parseImageRef, displayRef } from '../../registry/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  if (name === 'images:pull') {
    const { values, positionals } = parseCommand(args);
    const ref = displayRef(parseImageRef(positionals[0]));
    const r = await call<ImagePullResult>('POST', '/api/images/pull', { ref });
    if (values.json === true) printJson(r);
    else process.stdout.write(`${r.lines.join('\n')}\n${ref}: ${r.digest}\n`);
    return 0;
  }
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: { json: { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  });
  const r = await call<Lines>('POST', '/api/images/gc', {
    dryRun: values['dry-run'] === true,
  });
  if (values.json === true) printJson(r);
  else process.stdout.write(`${r.lines.join('\n')}\n`);
  return 0;
}
