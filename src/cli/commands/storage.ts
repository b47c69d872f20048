// storage:mount | storage:list | storage:unmount
import { parseCommand } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson, table } from './client.ts';
import type { MountInfo, StorageChange } from '../../api/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args);
  const app = parseAppName(positionals[0]);
  const restartHint = (c: StorageChange): string =>
    c.restartNeeded
      ? `running processes keep their mounts until restarted: paas ps:restart ${app}\n`
      : 'processes get it when they start\n';
  switch (name) {
    case 'storage:list': {
      const mounts = await call<MountInfo[]>('GET', `/api/apps/${enc(app)}/storage`);
      if (values.json === true) printJson(mounts);
      else if (mounts.length === 0) process.stdout.write(`${app} has no storage mounted\n`);
      else
        process.stdout.write(
          table([
            ['SOURCE', 'TARGET', 'KIND', 'HOST PATH'],
            ...mounts.map((m) => [m.source, m.target, m.kind, m.hostPath]),
          ]),
        );
      return 0;
    }
    case 'storage:mount':
    case 'storage:unmount': {
      const mount = positionals[1];
      if (mount === undefined || positionals.length > 2)
        throw new InvalidArgument(`usage: paas ${name} APP VOLUME:/path | /host/dir:/path`);
      const verb = name === 'storage:mount' ? '' : '/unmount';
      const c = await call<StorageChange>('POST', `/api/apps/${enc(app)}/storage${verb}`, {
        mount,
      });
      if (values.json === true) printJson(c);
      else
        process.stdout.write(
          `${verb === '' ? 'mounted' : 'unmounted'} ${c.mount.source} ${verb === '' ? 'on' : 'from'} ${c.mount.target} of ${app}\n${restartHint(c)}`,
        );
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown storage command ${name}`);
  }
}
