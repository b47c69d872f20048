// services:create | services:list | services:info | services:link | services:unlink |
// services:restart | services:destroy | services:backup | services:restore
import { parseCommand } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { formatImageRef, parseImageRef } from '../../registry/index.ts';
import { parseAlias, parseServiceName, parseServiceType } from '../../services/index.ts';
import { call, enc, printJson, request, requestBytes, table } from './client.ts';
import type { ServiceInfo, ServiceLinkChange } from '../../api/index.ts';

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function show(s: ServiceInfo): string {
  return table([
    ['name', s.name],
    ['type', s.type],
    ['image', s.image],
    ['state', s.state],
    ['restarts', String(s.restarts)],
    ['url', s.url],
    ['links', s.links.map((l) => `${l.app} (${l.var})`).join(', ') || '-'],
    ['created', s.createdAt],
  ]);
}

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    force: { type: 'boolean' },
    reveal: { type: 'boolean' },
    alias: { type: 'string' },
    image: { type: 'string' },
  });
  const out = (s: ServiceInfo | ServiceLinkChange, text: string): void => {
    if (values.json === true) printJson(s);
    else process.stdout.write(text);
  };
  if (name === 'services:list') {
    const list = await call<ServiceInfo[]>('GET', '/api/services');
    if (values.json === true) printJson(list);
    else if (list.length === 0)
      process.stdout.write('no services yet: paas services:create postgres NAME\n');
    else
      process.stdout.write(
        table([
          ['NAME', 'TYPE', 'STATE', 'LINKS'],
          ...list.map((s) => [s.name, s.type, s.state, s.links.map((l) => l.app).join(',') || '-']),
        ]),
      );
    return 0;
  }
  if (name === 'services:create') {
    const type = parseServiceType(positionals[0]);
    const svc = parseServiceName(positionals[1]);
    const image = values.image === undefined ? undefined : parseImageRef(values.image);
    const s = await call<ServiceInfo & { lines: string[] }>('POST', '/api/services', {
      type,
      name: svc,
      ...(image === undefined ? {} : { image: formatImageRef(image) }),
    });
    out(s, `${s.lines.join('\n')}\n${show(s)}`);
    return 0;
  }
  const svc = parseServiceName(positionals[0]);
  const path = `/api/services/${enc(svc)}`;
  switch (name) {
    case 'services:info': {
      const s = await call<ServiceInfo>(
        'GET',
        `${path}${values.reveal === true ? '?reveal=1' : ''}`,
      );
      out(s, show(s));
      return 0;
    }
    case 'services:link':
    case 'services:unlink': {
      const app = parseAppName(positionals[1]);
      const linking = name === 'services:link';
      const body =
        linking && values.alias !== undefined ? { app, alias: parseAlias(values.alias) } : { app };
      const c = await call<ServiceLinkChange>(
        'POST',
        `${path}/${linking ? 'link' : 'unlink'}`,
        body,
      );
      const rel =
        c.release === null ? 'it applies at the first deploy' : `release ${c.release} deployed`;
      out(
        c,
        `${linking ? 'linked' : 'unlinked'} ${svc} ${linking ? 'to' : 'from'} ${app} (${c.var} ${linking ? 'set' : 'unset'}); ${rel}\n`,
      );
      return 0;
    }
    case 'services:restart': {
      const s = await call<ServiceInfo>('POST', `${path}/restart`, {});
      out(s, `restarted ${svc}: ${s.state}\n`);
      return 0;
    }
    case 'services:destroy': {
      if (values.force !== true)
        throw new InvalidArgument(
          `services:destroy deletes ${svc} and all its data: add --force to confirm`,
        );
      await call('DELETE', `${path}?force=1`);
      process.stdout.write(`destroyed ${svc}\n`);
      return 0;
    }
    case 'services:backup': {
      const res = await request('GET', `${path}/backup`);
      const body = Buffer.from(await res.arrayBuffer());
      await new Promise<void>((resolve, reject) =>
        process.stdout.write(body, (e) => (e ? reject(e) : resolve())),
      );
      return 0;
    }
    case 'services:restore': {
      const dump = await readStdin();
      if (dump.length === 0)
        throw new InvalidArgument(
          `services:restore reads a dump on stdin: paas services:restore ${svc} < FILE`,
        );
      await requestBytes('POST', `${path}/restore`, dump);
      process.stdout.write(`restored ${svc} from ${dump.length} bytes\n`);
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown services command ${name}`);
  }
}
