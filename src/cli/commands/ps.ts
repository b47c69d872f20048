// ps: the app's processes (formation and scaling come with the processes issue).
import { parse as parseArgs } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { call, enc, printJson, table } from './client.ts';

interface Proc { process: string; release: string; state: string; ip: string | null; startedAt: string | null }

export async function run(_name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, strict: true, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const app = parseAppName(positionals[0]);
  const ps = await call<Proc[]>('GET', `/api/apps/${enc(app)}/ps`);
  if (values.json === true) printJson(ps);
  else if (ps.length === 0) process.stdout.write(`${app} has no processes\n`);
  else process.stdout.write(table([['PROCESS', 'RELEASE', 'STATE', 'IP', 'STARTED'], ...ps.map((p) => [p.process, p.release, p.state, p.ip ?? '-', p.startedAt ?? '-'])]));
  return 0;
}
