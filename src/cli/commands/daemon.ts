// `paas daemon`: parses flags and starts the daemon; runs until SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { intFlag, parse as parseArgs } from './args.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { parseMemory, parsePids } from '../../runtime/index.ts';
import { parseSchedulerName, parseSwarmFlags } from '../../scheduler/index.ts';

const int = (flag: string, v: string, min: number, max: number): number =>
  intFlag('daemon', flag, v, min, max);

function bytes(flag: string, v: string): number {
  const m = /^([0-9]+)([kmg]?)b?$/i.exec(v);
  if (m === null) throw new InvalidArgument(`daemon: --${flag} "${v}" is not a size (e.g. 100m)`);
  return (
    Number(m[1]) *
    ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2]!.toLowerCase()]!
  );
}

/** A `--registry-mirror` URL: http(s) with a host, no path (Docker's `registry-mirrors`). */
function mirrorUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgument(
      `daemon: --registry-mirror "${v}" is not a URL (e.g. https://mirror.example.com)`,
    );
  }
  if (
    (u.protocol !== 'http:' && u.protocol !== 'https:') ||
    u.pathname.replace(/\/+$/, '') !== '' ||
    u.search
  )
    throw new InvalidArgument(
      `daemon: --registry-mirror "${v}" must be an http(s) URL without a path`,
    );
  return `${u.protocol}//${u.host}`;
}

/** A `--drain-ca` file: PEM certificates that TLS drains trust besides the system's CAs. */
function drainCa(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InvalidArgument(`daemon: --drain-ca ${path}: ${(e as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new InvalidArgument(`daemon: --drain-ca ${path} holds no PEM certificate`);
  return pem;
}

export async function run(_name: string, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      'data-dir': { type: 'string', default: process.env.PAAS_DATA_DIR ?? '/var/lib/paas' },
      'api-port': { type: 'string', default: '7070' },
      'api-host': { type: 'string', default: '0.0.0.0' },
      'http-port': { type: 'string', default: '80' },
      'https-port': { type: 'string', default: '443' },
      domain: { type: 'string', default: 'localhost' },
      runtime: { type: 'string', default: 'native' },
      scheduler: { type: 'string', default: 'local' },
      // --scheduler swarm: the manager's engine, and our registry as the nodes reach it.
      'docker-socket': { type: 'string' },
      'registry-address': { type: 'string' },
      // The data plane (node | haproxy); --data-plane is the same flag.
      router: { type: 'string' },
      'data-plane': { type: 'string' },
      'max-push-size': { type: 'string', default: '1g' },
      // Build limits (src/builder/limits.ts has the defaults and why).
      'build-memory': { type: 'string' },
      'build-pids': { type: 'string' },
      'build-cpus': { type: 'string' },
      'build-timeout': { type: 'string' },
      'build-disk': { type: 'string' },
      'log-retention': { type: 'string', default: '50m' },
      // Limits of every app process that resources:set gives none (Heroku's standard dyno).
      'default-memory': { type: 'string', default: '512m' },
      'default-pids': { type: 'string', default: '4096' },
      'registry-mirror': { type: 'string', multiple: true, default: [] },
      // HTTPS on the API port (issue 19); plain HTTP then only from loopback.
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'ssh-port': { type: 'string', default: '2222' },
      'drain-ca': { type: 'string', multiple: true, default: [] },
      // What each log drain holds while its receiver is slow or down.
      'drain-buffer': { type: 'string', default: '8m' },
      // Automatic certificates (certs:auto): the ACME server, a CA to trust for it (a test
      // server's), and when renewals start.
      'acme-directory': { type: 'string' },
      'acme-ca-file': { type: 'string' },
      'acme-renew-before': { type: 'string', default: '30d' },
      'acme-check-every': { type: 'string', default: '1h' },
    },
  });
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined))
    throw new InvalidArgument('daemon: --tls-cert and --tls-key go together');
  // Before anything starts: an unknown scheduler is refused, never defaulted.
  const scheduler = parseSchedulerName(values.scheduler);
  const swarm = parseSwarmFlags(scheduler, {
    socket: values['docker-socket'],
    registry: values['registry-address'],
  });
  const { startDaemon, parseBuildLimits } = await import('../../daemon/index.ts');
  const { parsePlaneKind, DEFAULT_PLANE } = await import('../../router/index.ts');
  if (
    values.router !== undefined &&
    values['data-plane'] !== undefined &&
    values.router !== values['data-plane']
  )
    throw new InvalidArgument('daemon: --router and --data-plane name different planes');
  const router = parsePlaneKind(values.router ?? values['data-plane'] ?? DEFAULT_PLANE);
  const { parseAcmeDirectory, parseAcmeDuration } = await import('../../certs/index.ts');
  const daemon = await startDaemon({
    dataDir: values['data-dir'],
    apiPort: int('api-port', values['api-port'], 0, 65535),
    apiHost: values['api-host'],
    httpPort: int('http-port', values['http-port'], 1, 65535),
    // 0: any free port (tests); the router reports the one it bound.
    httpsPort: int('https-port', values['https-port'], 0, 65535),
    domain: values.domain,
    runtime: values.runtime,
    scheduler,
    dockerSocket: swarm.socket,
    registryAddress: swarm.registry,
    router,
    maxPushBytes: bytes('max-push-size', values['max-push-size']),
    logRetentionBytes: bytes('log-retention', values['log-retention']),
    buildLimits: parseBuildLimits({
      memory: values['build-memory'],
      pids: values['build-pids'],
      cpus: values['build-cpus'],
      timeout: values['build-timeout'],
      disk: values['build-disk'],
    }),
    defaultLimits: {
      memoryBytes: parseMemory(values['default-memory'], '--default-memory'),
      pids: parsePids(values['default-pids'], '--default-pids'),
    },
    registryMirrors: values['registry-mirror'].map(mirrorUrl),
    tls:
      values['tls-cert'] === undefined || values['tls-key'] === undefined
        ? undefined
        : { certPath: values['tls-cert'], keyPath: values['tls-key'] },
    sshPort: int('ssh-port', values['ssh-port'], 0, 65535),
    drains: {
      bufferBytes: bytes('drain-buffer', values['drain-buffer']),
      ...(values['drain-ca'].length === 0 ? {} : { ca: values['drain-ca'].map(drainCa) }),
    },
    acmeDirectory:
      values['acme-directory'] === undefined
        ? undefined
        : parseAcmeDirectory(values['acme-directory']),
    acmeCaFile: values['acme-ca-file'],
    acmeRenewBeforeMs: parseAcmeDuration('acme-renew-before', values['acme-renew-before']),
    acmeCheckEveryMs: parseAcmeDuration('acme-check-every', values['acme-check-every']),
  });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await daemon.close();
  // Work still in flight (a build, a background GC) stops here, as a kill would stop it and
  // recovery expects; waiting for it could take minutes.
  process.exit(0);
}
