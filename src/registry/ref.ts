// The one validator for image references and repository names (STYLE.md §6). Grammar from
// the OCI distribution spec (§Pulling manifests: `<name>` is
// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, a tag is
// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`) and Docker's reference rules for the optional
// registry host and the `library/` default of single-component Docker Hub names.
import { InvalidImageRef } from '../errors/index.ts';
import { isDigest, type Digest } from './digest.ts';

export type RepoName = string & { readonly __brand: 'RepoName' };
export type Tag = string & { readonly __brand: 'Tag' };

export type ImageRef = Readonly<{
  /** Registry host (with port) when the reference names one other than Docker Hub. */
  domain: string | null;
  repository: RepoName;
  /** `latest` when the reference names neither a tag nor a digest. */
  tag: Tag | null;
  digest: Digest | null;
}> & { readonly __brand: 'ImageRef' };

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPO = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DOMAIN =
  /^(?:localhost|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$/;
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
/** Distribution limits the name to 255 characters including the host. */
const MAX_NAME = 255;

export function isRepoName(raw: unknown): raw is RepoName {
  return typeof raw === 'string' && raw.length <= MAX_NAME && REPO.test(raw);
}

/** A repository name taken literally (registry API paths, `commitImage`): no defaulting. */
export function parseRepoName(raw: unknown): RepoName {
  if (!isRepoName(raw)) {
    throw new InvalidImageRef(
      `invalid repository name ${JSON.stringify(String(raw).slice(0, 300))}: use lowercase path components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'`,
      { name: raw ?? null },
    );
  }
  return raw;
}

export function isTag(raw: unknown): raw is Tag {
  return typeof raw === 'string' && TAG.test(raw);
}

export function parseTag(raw: unknown): Tag {
  if (!isTag(raw)) {
    throw new InvalidImageRef(
      `invalid tag ${JSON.stringify(String(raw).slice(0, 200))}: use up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'`,
      { tag: raw ?? null },
    );
  }
  return raw;
}

/**
 * Parses `name`, `name:tag`, `name@sha256:…`, `name:tag@sha256:…`, optionally prefixed by a
 * registry host (`host:5000/name`). Docker Hub names get `library/` when they have one
 * component (`node:22` → `library/node:22`).
 */
export function parseImageRef(raw: unknown): ImageRef {
  if (typeof raw !== 'string' || raw.length === 0)
    throw new InvalidImageRef('image reference is required', { ref: raw ?? null });
  const bad = (why: string): never => {
    throw new InvalidImageRef(
      `invalid image reference ${JSON.stringify(raw.slice(0, 300))}: ${why}`,
      { ref: raw },
    );
  };
  let rest = raw;
  let digest: Digest | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) bad('the digest must be sha256:<64 lowercase hex>');
    digest = d as Digest;
    rest = rest.slice(0, at);
  }
  let tag: Tag | null = null;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    const t = rest.slice(colon + 1);
    if (!isTag(t))
      bad(`tag "${t}" must be up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'`);
    tag = t as Tag;
    rest = rest.slice(0, colon);
  }
  let domain: string | null = null;
  const first = rest.indexOf('/');
  if (first > 0) {
    const head = rest.slice(0, first);
    // Docker's rule: the first component is a host when it has a '.' or ':' or is localhost.
    if (
      head.includes('.') ||
      head.includes(':') ||
      head === 'localhost' ||
      head !== head.toLowerCase()
    ) {
      if (!DOMAIN.test(head)) bad(`"${head}" is not a valid registry host`);
      domain = DOCKER_HUB.has(head.toLowerCase()) ? null : head;
      rest = rest.slice(first + 1);
    }
  }
  if (domain === null && rest.length > 0 && !rest.includes('/')) rest = `library/${rest}`;
  if (!isRepoName(rest))
    bad(
      'use lowercase path components of [a-z0-9] joined by ".", "_", "__" or "-", separated by "/"',
    );
  if (tag === null && digest === null) tag = 'latest' as Tag;
  return Object.freeze({ domain, repository: rest as RepoName, tag, digest }) as ImageRef;
}

/** `repo:tag`, `repo@digest` or `repo:tag@digest`, with the host when there is one. */
export function formatImageRef(ref: ImageRef): string {
  let s = ref.domain ? `${ref.domain}/${ref.repository}` : ref.repository;
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}

/**
 * Local repositories a reference may name, in order: Docker's rule makes `node` mean
 * `library/node`, while app images are single-component repositories (`<app>:<release>`),
 * so a short name falls back to the literal repository.
 */
export function candidateRepos(ref: ImageRef): RepoName[] {
  if (ref.domain !== null) return [localRepo(ref)];
  const out = [ref.repository];
  if (ref.domain === null && /^library\/[^/]+$/.test(ref.repository))
    out.push(ref.repository.slice('library/'.length) as RepoName);
  return out;
}

/** Docker Hub's registry API host: short names (`node`, `acme/web`) are pulled from it. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
/** The key Docker Hub credentials are stored under (as `docker login` does). */
export const DOCKER_HUB_HOST = 'docker.io';

/**
 * Where a pulled image lives in the local store. Docker Hub images keep their name
 * (`library/python`), so the base images we build (`library/node:22`) answer for Docker Hub
 * names first. Another registry's image is prefixed with its host, `:` spelled `__` (a
 * separator the repository grammar allows and a host name never contains), so
 * `127.0.0.1:5000/team/base` is `127.0.0.1__5000/team/base`: unambiguous, and never an app
 * (app repositories have one component).
 */
export function localRepo(ref: ImageRef): RepoName {
  if (ref.domain === null) return ref.repository;
  return `${ref.domain.toLowerCase().replace(':', '__')}/${ref.repository}` as RepoName;
}

/** The credentials key and API base URL of the registry a reference names. */
export function registryOf(ref: ImageRef): { host: string; url: string } {
  if (ref.domain === null) return { host: DOCKER_HUB_HOST, url: `https://${DOCKER_HUB_REGISTRY}` };
  return { host: ref.domain.toLowerCase(), url: registryUrl(ref.domain) };
}

/**
 * A registry host's base URL. Loopback registries speak plain HTTP, as Docker treats
 * 127.0.0.0/8 as an insecure registry by default; every other host is HTTPS.
 */
export function registryUrl(host: string): string {
  const name = host.replace(/:[0-9]+$/, '').toLowerCase();
  const loopback = name === 'localhost' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(name);
  return `${loopback ? 'http' : 'https'}://${host.toLowerCase()}`;
}

/** The one validator of a registry host named on the command line (`registry:login HOST`). */
export function parseRegistryHost(raw: unknown): string {
  const s = typeof raw === 'string' ? raw.replace(/^https?:\/\//, '').replace(/\/+$/, '') : '';
  if (!DOMAIN.test(s))
    throw new InvalidImageRef(
      `invalid registry host ${JSON.stringify(String(raw).slice(0, 200))}: use host[:port]`,
      { host: raw ?? null },
    );
  return DOCKER_HUB.has(s.toLowerCase()) ? DOCKER_HUB_HOST : s.toLowerCase();
}

/** How a reference is shown to users: as they would type it (`node:26-alpine`). */
export function displayRef(ref: ImageRef): string {
  const repo =
    ref.domain === null && ref.repository.startsWith('library/')
      ? ref.repository.slice('library/'.length)
      : ref.repository;
  let s = ref.domain ? `${ref.domain}/${repo}` : repo;
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}
