// Entry file of the detached router process that `ensureRouterRunning` spawns:
//   node src/router/main.ts --data-dir D --http-port P [--https-port P] [--workers N] [--host H] --domain D [--beside]
import { parseArgs } from 'node:util';
import { runRouter } from './router.ts';

const { values } = parseArgs({
  strict: true,
  options: {
    'data-dir': { type: 'string' },
    'http-port': { type: 'string' },
    'https-port': { type: 'string' },
    workers: { type: 'string' },
    host: { type: 'string' },
    domain: { type: 'string' },
    beside: { type: 'boolean' },
  },
});
const int = (v: string | undefined): number | undefined =>
  v === undefined ? undefined : Number.parseInt(v, 10);
if (!values['data-dir'] || values['http-port'] === undefined || !values.domain) {
  process.stderr.write(
    'usage: main.ts --data-dir D --http-port P --domain D [--https-port P] [--workers N] [--host H] [--beside]\n',
  );
  process.exit(2);
}
await runRouter({
  dataDir: values['data-dir'],
  httpPort: int(values['http-port'])!,
  httpsPort: int(values['https-port']),
  workers: int(values.workers),
  host: values.host,
  domain: values.domain,
  beside: values.beside,
});
process.exit(0);
