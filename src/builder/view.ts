// Read-only merged views of a stage's layers (what COPY reads with --from, and what it looks
// at to resolve a destination), and the clean-up of mount points a RUN container leaves in
// its writable layer. Views are overlay mounts with no upper dir, so the kernel applies the
// OCI whiteouts and opaque directories exactly as at run time.
import { execFile } from 'node:child_process';
import { promises as fsp, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import {
  at,
  close,
  isOpaque,
  lstatAt,
  openDir,
  openPathAt,
  rmdirAt,
  unlinkAt,
  type Lookup,
} from '../fsroot/index.ts';
import { CA_TARGET } from './ca.ts';

const run = promisify(execFile);

export type View = { root: string; close(): Promise<void> };

/**
 * Mounts `dirs` (topmost first) read-only at `mountpoint` (an empty directory). `empty` is
 * an empty directory used as the bottom layer: overlayfs needs two lowers without an upper.
 */
export async function openView(dirs: string[], mountpoint: string, empty: string): Promise<View> {
  await fsp.mkdir(mountpoint, { recursive: true });
  if (dirs.length === 0) return { root: mountpoint, close: async () => undefined };
  await fsp.mkdir(empty, { recursive: true });
  await run('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `ro,lowerdir=${[...dirs, empty].join(':')}`,
    mountpoint,
  ]);
  let open = true;
  return {
    root: mountpoint,
    close: async () => {
      if (!open) return;
      open = false;
      await run('umount', [mountpoint]).catch(() => run('umount', ['-l', mountpoint]));
    },
  };
}

/** Paths the runtimes bind or mount over in a container (runc: config.json mounts; native: native/SPEC.md). */
export const MOUNT_POINTS = [
  'proc',
  'sys',
  'dev',
  'etc/hosts',
  'etc/resolv.conf',
  'etc/hostname',
  CA_TARGET.slice(1),
];

function withAncestors(rels: string[]): string[] {
  const all = new Set<string>();
  for (const r of rels) {
    const parts = r.split('/');
    for (let i = 1; i <= parts.length; i++) all.add(parts.slice(0, i).join('/'));
  }
  // Deepest first: children are removed before their parents are looked at.
  return [...all].sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? -1 : 1));
}

export type Snapshot = Map<string, Stats | null>;

/** What exists at the mount points (and their parents) before a RUN. */
export async function snapshotMountPoints(image: Lookup, extra: string[] = []): Promise<Snapshot> {
  const out: Snapshot = new Map();
  for (const rel of withAncestors([...MOUNT_POINTS, ...extra]))
    out.set(rel, await image.lstat(rel));
  return out;
}

/**
 * Removes from a RUN's upper dir what the runtime created only to mount over: an empty file
 * or directory at a mount point that did not exist in the image, and directories that were
 * copied up only for that (still empty, same owner and mode, not opaque). Anything the
 * command itself wrote there stays. The upper dir is the step's work: a parent it turned
 * into a symlink is never followed (entered with O_NOFOLLOW; such a path is the step's own
 * content and is left alone).
 */
export async function cleanMountPoints(upper: string, before: Snapshot): Promise<void> {
  const root = openDir(upper);
  try {
    for (const [rel, old] of before) {
      const parts = rel.split('/');
      const name = parts.pop() as string;
      const dir = await openPathAt(root, parts);
      if (dir === null) continue;
      try {
        const st = lstatAt(dir, name);
        if (st === null) continue;
        if (st.isFile()) {
          if (old === null && st.size === 0) unlinkAt(dir, name);
          continue;
        }
        if (!st.isDirectory() || (await fsp.readdir(at(dir, name))).length > 0) continue;
        const createdForMount = old === null;
        const copiedUpOnly =
          old !== null &&
          old.isDirectory() &&
          old.mode === st.mode &&
          old.uid === st.uid &&
          old.gid === st.gid;
        if ((createdForMount || copiedUpOnly) && !(await isOpaque(at(dir, name, process.pid))))
          rmdirAt(dir, name);
      } finally {
        close(dir);
      }
    }
  } finally {
    close(root);
  }
}
