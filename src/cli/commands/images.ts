// images:gc [--dry-run]: frees image data no tag, kept release or running container uses.
import { parse as parseArgs } from './args.ts';
import { call, printJson } from './client.ts';

export async function run(_name: string, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: { json: { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  });
  const r = await call<{ lines: string[] }>('POST', '/api/images/gc', {
    dryRun: values['dry-run'] === true,
  });
  if (values.json === true) printJson(r);
  else process.stdout.write(`${r.lines.join('\n')}\n`);
  return 0;
}
