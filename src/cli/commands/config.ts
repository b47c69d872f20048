// config | config:get | config:set | config:unset
import { parseCommand } from './args.ts';
import { parseAppName, parseConfigKey } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson, table } from './client.ts';
import type { ConfigChange } from '../../api/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, { shell: { type: 'boolean' } });
  const app = parseAppName(positionals[0]);
  const rest = positionals.slice(1);
  switch (name) {
    case 'config': {
      const cfg = await call<Record<string, string>>('GET', `/api/apps/${enc(app)}/config`);
      if (values.json === true) printJson(cfg);
      else if (values.shell === true)
        for (const [k, v] of Object.entries(cfg)) process.stdout.write(`${k}=${v}\n`);
      else
        process.stdout.write(
          Object.keys(cfg).length === 0
            ? `${app} has no config vars\n`
            : table(Object.entries(cfg).map(([k, v]) => [`${k}:`, v])),
        );
      return 0;
    }
    case 'config:get': {
      const key = parseConfigKey(rest[0]);
      const cfg = await call<Record<string, string>>('GET', `/api/apps/${enc(app)}/config`);
      const v = cfg[key];
      if (v === undefined) {
        process.stderr.write(`paas: ${app} has no config var ${key}\n`);
        return 1;
      }
      process.stdout.write(values.json === true ? `${JSON.stringify(v)}\n` : `${v}\n`);
      return 0;
    }
    case 'config:set': {
      if (rest.length === 0) throw new InvalidArgument('config:set NAME KEY=VALUE…');
      const set: Record<string, string> = {};
      for (const pair of rest) {
        const i = pair.indexOf('=');
        if (i < 0) throw new InvalidArgument(`"${pair}" is not KEY=VALUE`);
        set[parseConfigKey(pair.slice(0, i))] = pair.slice(i + 1);
      }
      process.stderr.write(`Setting ${Object.keys(set).join(', ')} and restarting ${app}… `);
      const r = await call<ConfigChange>('PATCH', `/api/apps/${enc(app)}/config`, { set });
      process.stderr.write(
        `done${r.release === null ? ' (applies at the first deploy)' : `, ${r.release.version}`}\n`,
      );
      return 0;
    }
    case 'config:unset': {
      if (rest.length === 0) throw new InvalidArgument('config:unset NAME KEY…');
      const unset = rest.map(parseConfigKey);
      process.stderr.write(`Unsetting ${unset.join(', ')} and restarting ${app}… `);
      const r = await call<ConfigChange>('PATCH', `/api/apps/${enc(app)}/config`, { unset });
      process.stderr.write(`done${r.release === null ? '' : `, ${r.release.version}`}\n`);
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown config command ${name}`);
  }
}
