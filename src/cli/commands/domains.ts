// domains | domains:add | domains:remove
import { parseCommand } from './args.ts';
import { parseAppName, parseDomain } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson } from './client.ts';
import type { DomainsInfo } from '../../api/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args);
  const app = parseAppName(positionals[0]);
  switch (name) {
    case 'domains': {
      const d = await call<DomainsInfo>('GET', `/api/apps/${enc(app)}/domains`);
      if (values.json === true) printJson(d);
      else process.stdout.write(`${d.default}\n${d.custom.map((x) => `${x}\n`).join('')}`);
      return 0;
    }
    case 'domains:add': {
      const domain = parseDomain(positionals[1]);
      await call('POST', `/api/apps/${enc(app)}/domains`, { domain });
      process.stdout.write(`added ${domain} to ${app}\n`);
      return 0;
    }
    case 'domains:remove': {
      const domain = parseDomain(positionals[1]);
      await call('DELETE', `/api/apps/${enc(app)}/domains/${enc(domain)}`);
      process.stdout.write(`removed ${domain} from ${app}\n`);
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown domains command ${name}`);
  }
}
