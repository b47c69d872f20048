// Builds the base images and imports them into a data dir's image store (issues 4 and 16):
//   library/debian:bookworm (+ bookworm-slim, 12, 12-slim)  debootstrap minbase + ca-certificates
//   library/busybox:latest                                  the host's busybox-static
//   library/node:22-slim, :24-slim (= lts-slim), :26-slim   debian + the official Node binary,
//                                                            npm, corepack, yarn, user node
//   library/postgres:15, library/redis:7 (--only postgres,redis; services:create builds them
//                                                            on demand too) Debian's postgresql-15
//                                                            and redis-server on debootstrap minbase
// Only the slim tags of the pinned majors are built here (install time matters); the full
// tags (node:22, on buildpack-deps), other majors (18, 20) and exact versions are built by
// the daemon the first time a build asks for one (src/baseimages). --node adds some now, e.g.
// --node 20-slim,22. Each image is built once into an OCI layout under the cache dir (default
// /var/cache/paas/base/<name>) and imported from there, so a second run only checks tags;
// --rebuild builds again. Inputs are pinned in base-images.lock.json.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { BaseImages, DEFAULT_CACHE_DIR, pinnedNodeVersions } from '../src/baseimages/index.ts';
import { openStore } from '../src/registry/index.ts';

const { values: args } = parseArgs({
  options: {
    'data-dir': { type: 'string', default: process.env.PAAS_DATA_DIR ?? '/var/lib/paas' },
    'cache-dir': { type: 'string', default: DEFAULT_CACHE_DIR },
    only: { type: 'string' },
    node: { type: 'string' },
    rebuild: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});
const only = new Set((args.only ?? 'busybox,debian,node').split(',').map((s) => s.trim()));
const say = (msg: string): void => {
  if (!args.quiet) process.stderr.write(`base-images: ${msg}\n`);
};

const store = await openStore(args['data-dir'] as string);
const base = new BaseImages({
  store,
  cacheDir: path.resolve(args['cache-dir'] as string),
  rebuild: args.rebuild,
});
if (only.has('busybox')) await base.busybox(say);
if (only.has('debian') || only.has('node')) await base.debian('slim', say);
if (only.has('node')) {
  for (const version of pinnedNodeVersions()) await base.node(version, 'slim', say);
}
// Backing services (services:create): postgres:15 and redis:7 from Debian's packages.
if (only.has('postgres')) await base.service('postgres', say);
if (only.has('redis')) await base.service('redis', say);
for (const tag of (args.node ?? '').split(',').filter(Boolean)) {
  const t0 = Date.now();
  if (!(await base.prepare(`node:${tag.trim()}`, say)))
    throw new Error(`node:${tag} is not a tag we can build`);
  say(`node:${tag} in ${Math.round((Date.now() - t0) / 1000)}s`);
}
