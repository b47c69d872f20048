// logs NAME [-n N] [-t] [--ps TYPE] [--source app|build|router|system]
import { parse as parseArgs } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { enc, request } from './client.ts';

export async function run(_name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      num: { type: 'string', short: 'n', default: '100' },
      tail: { type: 'boolean', short: 't' },
      ps: { type: 'string' },
      source: { type: 'string' },
    },
  });
  const app = parseAppName(positionals[0]);
  if (!/^[0-9]+$/.test(values.num)) throw new InvalidArgument(`-n "${values.num}" is not a number`);
  const q = new URLSearchParams({ n: values.num });
  if (values.tail === true) q.set('follow', '1');
  if (values.ps !== undefined) q.set('ps', values.ps);
  if (values.source !== undefined) q.set('source', values.source);
  const res = await request('GET', `/api/apps/${enc(app)}/logs?${q}`);
  if (res.body === null) return 0;
  // Streams until the daemon ends it, or until Ctrl-C ends this process.
  for await (const chunk of res.body) process.stdout.write(chunk);
  return 0;
}
