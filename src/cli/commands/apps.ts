// apps:create | apps:list | apps:info | apps:destroy
import { parseCommand } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson, table } from './client.ts';
import type { AppInfo, AppSummary } from '../../api/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    force: { type: 'boolean' },
    'purge-storage': { type: 'boolean' },
  });
  switch (name) {
    case 'apps:list': {
      const apps = await call<AppSummary[]>('GET', '/api/apps');
      if (values.json === true) printJson(apps);
      else if (apps.length === 0)
        process.stdout.write('no apps yet: push one or run "paas apps:create NAME"\n');
      else
        process.stdout.write(
          table([['NAME', 'RELEASE'], ...apps.map((a) => [a.name, a.release ?? '-'])]),
        );
      return 0;
    }
    case 'apps:create': {
      const app = parseAppName(positionals[0]);
      const info = await call<AppInfo>('POST', '/api/apps', { name: app });
      if (values.json === true) printJson(info);
      else process.stdout.write(`created ${info.name}: ${info.url}\n`);
      return 0;
    }
    case 'apps:info': {
      const app = parseAppName(positionals[0]);
      const info = await call<AppInfo>('GET', `/api/apps/${enc(app)}`);
      if (values.json === true) printJson(info);
      else {
        process.stdout.write(
          table([
            ['name', info.name],
            ['release', info.release ?? '(none)'],
            ['url', info.url],
            ['domains', info.domains.join(', ') || '(none)'],
            ['created', info.createdAt],
            ['deploying', info.lock?.holder ?? 'no'],
          ]),
        );
      }
      return 0;
    }
    case 'apps:destroy': {
      const app = parseAppName(positionals[0]);
      if (values.force !== true)
        throw new InvalidArgument(
          `apps:destroy removes ${app}, its releases, config and logs: add --force to confirm`,
        );
      const purge = values['purge-storage'] === true;
      await call('DELETE', `/api/apps/${enc(app)}?force=1${purge ? '&purge-storage=1' : ''}`);
      process.stdout.write(
        `destroyed ${app}${purge ? ' and its volumes' : '; its volumes stay (--purge-storage deletes them)'}\n`,
      );
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown apps command ${name}`);
  }
}
