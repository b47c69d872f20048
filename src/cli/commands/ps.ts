// ps | ps:scale | ps:restart | ps:stop | ps:start | resources:set
import { parseCommand } from './args.ts';
import { parseAppName, parseProcessType } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson, table } from './client.ts';
import type { FormationChange, ProcessInfo, ResourceLimits } from '../../api/index.ts';

function mb(n: number | null): string {
  return n === null ? '-' : `${(n / 1024 / 1024).toFixed(1)}M`;
}

function uptime(s: number | null): string {
  if (s === null) return '-';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    memory: { type: 'string' },
    cpus: { type: 'string' },
    pids: { type: 'string' },
    'cap-net-raw': { type: 'string' },
    ps: { type: 'string' },
  });
  const app = parseAppName(positionals[0]);
  switch (name) {
    case 'ps': {
      const ps = await call<ProcessInfo[]>('GET', `/api/apps/${enc(app)}/ps`);
      if (values.json === true) printJson(ps);
      else if (ps.length === 0) process.stdout.write(`${app} has no processes\n`);
      else {
        process.stdout.write(
          table([
            [
              'PROCESS',
              'RELEASE',
              'STATE',
              'UPTIME',
              'RESTARTS',
              'ADDRESS',
              'MEMORY',
              'CPU',
              'LAST EXIT',
            ],
            ...ps.map((p) => [
              p.process,
              p.release,
              p.state,
              uptime(p.uptimeSeconds),
              String(p.restarts),
              p.ip === null ? '-' : p.port === null ? p.ip : `${p.ip}:${p.port}`,
              `${mb(p.memoryBytes)}/${p.memoryLimitBytes === null ? 'unlimited' : mb(p.memoryLimitBytes)}`,
              `${p.cpuPercent === null ? '-' : `${p.cpuPercent}%`}${p.cpuLimit === null ? '' : ` of ${p.cpuLimit}`}`,
              p.lastExit ?? '-',
            ]),
          ]),
        );
      }
      return 0;
    }
    case 'ps:scale': {
      const pairs = positionals.slice(1);
      if (pairs.length === 0) {
        const f = await call<Record<string, number>>('GET', `/api/apps/${enc(app)}/formation`);
        if (values.json === true) printJson(f);
        else
          process.stdout.write(
            `${Object.entries(f)
              .map(([t, q]) => `${t}=${q}`)
              .join(' ')}\n`,
          );
        return 0;
      }
      const body: Record<string, number> = {};
      for (const pair of pairs) {
        const m = /^([^=]+)=([0-9]+)$/.exec(pair);
        if (m === null) throw new InvalidArgument(`"${pair}" is not TYPE=COUNT`);
        body[parseProcessType(m[1])] = Number(m[2]);
      }
      process.stderr.write(`Scaling ${app} to ${pairs.join(' ')}… `);
      const r = await call<FormationChange>('PATCH', `/api/apps/${enc(app)}/formation`, body);
      process.stderr.write('done\n');
      if (values.json === true) printJson(r.formation);
      else
        process.stdout.write(
          `${Object.entries(r.formation)
            .map(([t, q]) => `${t}=${q}`)
            .join(' ')}\n`,
        );
      return 0;
    }
    case 'ps:restart':
    case 'ps:stop':
    case 'ps:start': {
      const action = name.slice(3);
      // ps:restart NAME [TYPE], as Dokku's: one process type, the others untouched.
      const type =
        action === 'restart' && positionals[1] !== undefined
          ? parseProcessType(positionals[1])
          : undefined;
      if (positionals.length > (action === 'restart' ? 2 : 1))
        throw new InvalidArgument(
          `${name} NAME${action === 'restart' ? ' [TYPE]' : ''}: unexpected "${positionals.at(-1)}"`,
        );
      process.stderr.write(
        `${action === 'restart' ? 'Restarting' : action === 'stop' ? 'Stopping' : 'Starting'} ${type === undefined ? app : `${type} of ${app}`}… `,
      );
      await call(
        'POST',
        `/api/apps/${enc(app)}/ps/${action}`,
        type === undefined ? undefined : { type },
      );
      process.stderr.write('done\n');
      return 0;
    }
    case 'resources:set': {
      if (
        values.memory === undefined &&
        values.cpus === undefined &&
        values.pids === undefined &&
        values['cap-net-raw'] === undefined
      )
        throw new InvalidArgument(
          'resources:set NAME [--memory 256m] [--cpus 0.5] [--pids 4096] [--cap-net-raw on|off] [--ps TYPE]',
        );
      const r = await call<Record<string, ResourceLimits>>(
        'PATCH',
        `/api/apps/${enc(app)}/resources`,
        {
          memory: values.memory,
          cpus: values.cpus,
          pids: values.pids,
          capNetRaw: values['cap-net-raw'],
          ps: values.ps === undefined ? undefined : parseProcessType(values.ps),
        },
      );
      if (values.json === true) printJson(r);
      else {
        // '-' is the daemon's default (--default-memory, --default-pids; no CPU cap; no NET_RAW).
        process.stdout.write(
          table([
            ['TYPE', 'MEMORY', 'CPUS', 'PIDS', 'NET_RAW'],
            ...Object.entries(r).map(([t, x]) => [
              t === '*' ? '(all)' : t,
              x.memoryBytes === undefined ? '-' : mb(x.memoryBytes),
              x.cpus === undefined ? '-' : String(x.cpus),
              x.pids === undefined ? '-' : String(x.pids),
              x.netRaw === undefined ? '-' : x.netRaw ? 'on' : 'off',
            ]),
          ]),
        );
        process.stdout.write(
          'applied when each process next starts (ps:restart applies them now)\n',
        );
      }
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown ps command ${name}`);
  }
}
