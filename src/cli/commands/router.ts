// `paas router`: the front-door process. The daemon starts it detached; it can also be run by hand.
import { intFlag, parse } from './args.ts';

export async function run(_name: string, args: string[]): Promise<number> {
  const { values } = parse({
    args,
    strict: true,
    options: {
      'data-dir': { type: 'string', default: process.env.PAAS_DATA_DIR ?? '/var/lib/paas' },
      'http-port': { type: 'string', default: '80' },
      'https-port': { type: 'string' },
      domain: { type: 'string', default: 'localhost' },
      workers: { type: 'string' },
      host: { type: 'string' },
    },
  });
  const port = (flag: string, v: string | undefined): number | undefined =>
    v === undefined ? undefined : intFlag('router', flag, v, 0, 65535);
  const workers =
    values.workers === undefined ? undefined : intFlag('router', 'workers', values.workers, 1, 64);
  const { runRouter } = await import('../../router/index.ts');
  await runRouter({
    dataDir: values['data-dir'],
    httpPort: port('http-port', values['http-port']) as number,
    httpsPort: port('https-port', values['https-port']),
    domain: values.domain,
    workers,
    host: values.host,
  });
  return 0;
}
