// `paas container:run`: a container in the foreground without the daemon, like `runc run`.
import { InvalidArgument } from '../../errors/index.ts';
import { parse } from './args.ts';
import { createRuntime, parseCpus, parseMemory, parsePids } from '../../runtime/index.ts';
import type { ContainerSpec, NetMode, Volume } from '../../runtime/index.ts';

export async function run(_name: string, args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  const flags = dash < 0 ? args : args.slice(0, dash);
  const command = dash < 0 ? [] : args.slice(dash + 1);
  const { values, positionals } = parse({
    args: flags,
    strict: true,
    allowPositionals: true,
    options: {
      rootfs: { type: 'string' },
      image: { type: 'string' },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      pids: { type: 'string' },
      net: { type: 'string', default: 'none' },
      runtime: { type: 'string', default: 'native' },
      user: { type: 'string' },
      env: { type: 'string', short: 'e', multiple: true },
      workdir: { type: 'string', short: 'w' },
      volume: { type: 'string', short: 'v', multiple: true },
      hostname: { type: 'string' },
      'data-dir': { type: 'string', default: process.env.PAAS_DATA_DIR ?? '/var/lib/paas' },
    },
  });
  if (command.length === 0 || positionals.length > 0)
    throw new InvalidArgument('container:run: give the command after "--"');
  if ((values.rootfs === undefined) === (values.image === undefined))
    throw new InvalidArgument('container:run: give exactly one of --rootfs DIR or --image REF');
  const net = values.net as NetMode;
  if (!['none', 'bridge', 'host'].includes(net))
    throw new InvalidArgument(`container:run: --net "${values.net}" must be none, bridge or host`);

  let rootfs: ContainerSpec['rootfs'];
  if (values.rootfs !== undefined) {
    rootfs = { dir: values.rootfs };
  } else {
    const { openStore } = await import('../../registry/index.ts');
    const store = await openStore(values['data-dir']);
    const image = await store.resolveImage(values.image as string);
    rootfs = { lowers: await store.layerDirs(image) };
  }
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new InvalidArgument(`container:run: --env "${kv}" must be KEY=VALUE`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const volumes: Volume[] = (values.volume ?? []).map((v) => {
    const [source, target, mode] = v.split(':');
    if (
      source === undefined ||
      target === undefined ||
      (mode !== undefined && mode !== 'ro' && mode !== 'rw')
    ) {
      throw new InvalidArgument(`container:run: --volume "${v}" must be SRC:DST[:ro]`);
    }
    return { source, target, readonly: mode === 'ro' };
  });
  const runtime = createRuntime(values.runtime, { dataDir: values['data-dir'] });
  const result = await runtime.run(
    {
      rootfs,
      command,
      env,
      net,
      volumes,
      cwd: values.workdir,
      user: values.user,
      hostname: values.hostname,
      limits: {
        memoryBytes:
          values.memory === undefined ? undefined : parseMemory(values.memory, '--memory'),
        cpus: values.cpus === undefined ? undefined : parseCpus(values.cpus, '--cpus'),
        pids: values.pids === undefined ? undefined : parsePids(values.pids, '--pids'),
      },
    },
    { stdio: 'inherit' },
  );
  return result.exitCode;
}
