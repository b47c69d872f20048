// ports | ports:set | ports:clear: the web port (PORT config > one EXPOSEd TCP port > 5000).
import { parseCommand } from './args.ts';
import { parseAppName, parsePort } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson } from './client.ts';
import type { PortsChange, PortsInfo } from '../../api/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args);
  const app = parseAppName(positionals[0]);
  switch (name) {
    case 'ports': {
      const p = await call<PortsInfo>('GET', `/api/apps/${enc(app)}/ports`);
      if (values.json === true) printJson(p);
      else if (p.release === null)
        process.stdout.write(
          `${app}: ${p.why}${p.port === null ? '' : ` (PORT config: ${String(p.port)})`}\n`,
        );
      else process.stdout.write(`${app} (${p.release}): web port ${String(p.port)}: ${p.why}\n`);
      return 0;
    }
    case 'ports:set': {
      const port = parsePort(positionals[1]);
      process.stderr.write(`Setting the web port of ${app} to ${port} and restarting… `);
      const r = await call<PortsChange>('PUT', `/api/apps/${enc(app)}/ports`, { port });
      process.stderr.write(
        `done${r.release === null ? ' (applies at the first deploy)' : `, ${r.release.version}`}\n`,
      );
      return 0;
    }
    case 'ports:clear': {
      process.stderr.write(`Clearing the web port of ${app}… `);
      const r = await call<PortsChange>('DELETE', `/api/apps/${enc(app)}/ports`);
      process.stderr.write(
        `done${r.release === null ? ' (nothing was set)' : `, ${r.release.version}`}\n`,
      );
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown ports command ${name}`);
  }
}
