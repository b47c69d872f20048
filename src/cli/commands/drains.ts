// drains | drains:add | drains:remove
import { parseCommand } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { parseDrainUrl } from '../../logs/index.ts';
import { call, enc, printJson, table } from './client.ts';
import type { DrainEntry } from '../../api/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args);
  const app = parseAppName(positionals[0]);
  switch (name) {
    case 'drains': {
      const list = await call<DrainEntry[]>('GET', `/api/apps/${enc(app)}/drains`);
      if (values.json === true) printJson(list);
      else if (list.length === 0) process.stdout.write(`${app} has no log drains\n`);
      else
        process.stdout.write(
          table([
            ['ID', 'URL', 'STATE', 'DELIVERED', 'DROPPED', 'BUFFERED', 'LAST ERROR'],
            ...list.map((d) => [
              d.id,
              d.url,
              d.state,
              String(d.delivered),
              String(d.dropped),
              String(d.buffered),
              d.lastError ?? '',
            ]),
          ]),
        );
      return 0;
    }
    case 'drains:add': {
      // Checked here too, so a typo fails before the request (and the URL is never echoed).
      const url = parseDrainUrl(positionals[1]);
      const d = await call<DrainEntry>('POST', `/api/apps/${enc(app)}/drains`, { url: url.href });
      process.stdout.write(`${app} drains to ${d.url} (${d.id})\n`);
      return 0;
    }
    case 'drains:remove': {
      const which = positionals[1];
      if (which === undefined || which === '')
        throw new InvalidArgument('drains:remove NAME URL|ID: name the drain');
      const d = await call<DrainEntry>('DELETE', `/api/apps/${enc(app)}/drains`, { drain: which });
      process.stdout.write(`${app} no longer drains to ${d.url} (${d.id})\n`);
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown drains command ${name}`);
  }
}
