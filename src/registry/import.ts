// `paas images:import PATH`: one entry point that recognises what it is given — an OCI
// layout directory, an OCI layout tar (`skopeo copy … oci-archive:`), or a `docker save`
// archive (Docker ≥ 25 writes manifest.json and an OCI layout; manifest.json wins).
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { InvalidArgument } from '../errors/index.ts';
import { parseImageRef } from './ref.ts';
import type { Image, ImageStore } from './types.ts';

async function retag(
  store: ImageStore,
  images: Image[],
  tags: string[] | undefined,
): Promise<Image[]> {
  if (!tags || tags.length === 0) return images;
  if (images.length !== 1)
    throw new InvalidArgument(
      `the archive holds ${images.length} images; tags can only be given for one`,
    );
  const out: Image[] = [];
  for (const raw of tags) {
    const ref = parseImageRef(raw);
    await store.tag(ref.repository, ref.tag ?? 'latest', (images[0] as Image).digest);
    out.push(await store.resolveImage(ref));
  }
  return out;
}

export async function importImage(store: ImageStore, p: string, tags?: string[]): Promise<Image[]> {
  const st = await fsp.stat(p).catch(() => null);
  if (!st) throw new InvalidArgument(`${p} does not exist`);
  if (st.isDirectory()) return store.importOciLayout(p, tags);
  const names = new Set<string>();
  try {
    await tar.t({
      file: p,
      onReadEntry: (e) =>
        names.add(
          path.posix
            .normalize(e.path)
            .replace(/^\.?\//, '')
            .replace(/\/$/, ''),
        ),
    });
  } catch (err) {
    throw new InvalidArgument(`${p} is not a tar archive`, {}, { cause: err });
  }
  if (names.has('manifest.json')) return retag(store, await store.importDockerArchive(p), tags);
  if (names.has('oci-layout') && names.has('index.json')) {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'paas-oci-archive-'));
    try {
      // Only plain files and directories: a link in the archive could make the layout reader
      // read a host file. tar itself refuses '..' and strips absolute paths.
      await tar.x({
        file: p,
        cwd: dir,
        strict: true,
        filter: (_p, e) => 'type' in e && (e.type === 'File' || e.type === 'Directory'),
      });
      return await store.importOciLayout(dir, tags);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }
  throw new InvalidArgument(`${p} is neither a docker save archive nor an OCI image layout`);
}
