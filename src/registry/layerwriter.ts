// The reverse of unpack: a directory becomes a deterministic layer tar. In `overlay` mode the
// directory is an overlayfs upper dir and its whiteouts (0:0 character devices) and opaque
// directories (`trusted.overlay.opaque=y`) become OCI `.wh.<name>` and `.wh..wh..opq`
// entries (OCI image spec layer.md §Whiteouts). Entries are sorted, owners numeric, names
// empty, mtimes fixed, so identical content always gives identical bytes and digests.
// Headers are encoded by the tar library (Header, Pax); this file only orders entries.
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Header, Pax, type HeaderData } from 'tar';
import { Unsupported } from '../errors/index.ts';
import { OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX } from './unpack.ts';

const run = promisify(execFile);

export type WalkMode = 'overlay' | 'rootfs';
export type TarOptions = {
  mode: WalkMode;
  mtime: Date;
  onSkip?: (rel: string, why: string) => void;
};

const BLOCK = 512;
const CHUNK = 256 * 1024;

/** Decodes getfattr's path escaping (`\ooo` octal for special bytes, `\\`). */
function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (s[i] === '\\' && s[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(...Buffer.from(s[i] as string, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** All `trusted.overlay.*` xattrs under `root`, in one getfattr run: path → name → value. */
export async function overlayXattrs(root: string): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>();
  // -h: read a symlink's own xattrs; without it getfattr fails on every link that dangles
  // in an upper dir (one pointing into a lower layer), i.e. after most apt-get installs.
  const { stdout } = await run(
    'getfattr',
    ['-R', '-P', '-h', '--absolute-names', '-d', '-e', 'text', '-m', '^trusted\\.overlay\\.', root],
    {
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  let current: Map<string, string> | null = null;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      out.set(path.resolve(unescapeGetfattr(line.slice('# file: '.length))), current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      current.set(line.slice(0, eq), line.slice(eq + 1).replace(/^"(.*)"$/, '$1'));
    }
  }
  return out;
}

export function headerBytes(data: HeaderData): Buffer {
  const h = new Header({ uname: '', gname: '', ...data });
  const needPax = h.encode();
  const block = h.block as Buffer;
  if (!needPax) return block;
  const pax = new Pax({
    path: data.path,
    linkpath: data.linkpath,
    size: data.size,
    uid: data.uid,
    gid: data.gid,
    mtime: data.mtime,
  }).encode();
  return Buffer.concat([pax, block]);
}

/** Yields the tar stream of `root` in ~256 KiB chunks. */
export async function* tarDirectory(root: string, opts: TarOptions): AsyncGenerator<Buffer> {
  const xattrs =
    opts.mode === 'overlay' ? await overlayXattrs(root) : new Map<string, Map<string, string>>();
  const hardlinks = new Map<string, string>();
  let pending: Buffer[] = [];
  let pendingSize = 0;
  const push = (b: Buffer): Buffer | null => {
    pending.push(b);
    pendingSize += b.length;
    if (pendingSize < CHUNK) return null;
    const out = Buffer.concat(pending);
    pending = [];
    pendingSize = 0;
    return out;
  };
  const base = { mtime: opts.mtime };

  async function* file(abs: string, rel: string, st: Stats): AsyncGenerator<Buffer> {
    const x = xattrs.get(abs);
    if (x?.has('trusted.overlay.metacopy')) {
      throw new Unsupported(
        `"${rel}" is an overlayfs metacopy file; mount the build overlay with metacopy=off`,
        { path: rel },
      );
    }
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = hardlinks.get(key);
      if (first !== undefined) {
        const b = push(
          headerBytes({
            ...base,
            path: rel,
            type: 'Link',
            linkpath: first,
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
            size: 0,
          }),
        );
        if (b) yield b;
        return;
      }
      hardlinks.set(key, rel);
    }
    const h = push(
      headerBytes({
        ...base,
        path: rel,
        type: 'File',
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
      }),
    );
    if (h) yield h;
    const fh = await fsp.open(abs, 'r');
    try {
      let left = st.size;
      while (left > 0) {
        const buf = Buffer.allocUnsafe(Math.min(left, 1024 * 1024));
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0)
          throw new Unsupported(`"${rel}" changed size while being packed`, { path: rel });
        left -= bytesRead;
        const b = push(buf.subarray(0, bytesRead));
        if (b) yield b;
      }
    } finally {
      await fh.close();
    }
    const pad = (BLOCK - (st.size % BLOCK)) % BLOCK;
    if (pad) {
      const b = push(Buffer.alloc(pad));
      if (b) yield b;
    }
  }

  async function* walk(absDir: string, relDir: string): AsyncGenerator<Buffer> {
    const names = (await fsp.readdir(absDir)).sort();
    for (const name of names) {
      const abs = path.join(absDir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      const st = await fsp.lstat(abs);
      const owner = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
      if (st.isDirectory()) {
        const x = xattrs.get(abs);
        if (x?.has('trusted.overlay.redirect')) {
          throw new Unsupported(
            `"${rel}" is an overlayfs redirect (renamed directory); mount the build overlay with redirect_dir=off`,
            { path: rel },
          );
        }
        const b = push(
          headerBytes({ ...base, ...owner, path: `${rel}/`, type: 'Directory', size: 0 }),
        );
        if (b) yield b;
        if (x?.get(OPAQUE_XATTR) === 'y') {
          const o = push(
            headerBytes({
              ...base,
              path: `${rel}/${OPAQUE_MARKER}`,
              type: 'File',
              mode: 0,
              uid: 0,
              gid: 0,
              size: 0,
            }),
          );
          if (o) yield o;
        }
        yield* walk(abs, rel);
      } else if (st.isFile()) {
        yield* file(abs, rel, st);
      } else if (st.isSymbolicLink()) {
        const b = push(
          headerBytes({
            ...base,
            ...owner,
            path: rel,
            type: 'SymbolicLink',
            linkpath: await fsp.readlink(abs),
            size: 0,
          }),
        );
        if (b) yield b;
      } else if (st.isCharacterDevice() && st.rdev === 0 && opts.mode === 'overlay') {
        const whiteout = relDir
          ? `${relDir}/${WHITEOUT_PREFIX}${name}`
          : `${WHITEOUT_PREFIX}${name}`;
        const b = push(
          headerBytes({ ...base, path: whiteout, type: 'File', mode: 0, uid: 0, gid: 0, size: 0 }),
        );
        if (b) yield b;
      } else if (st.isFIFO()) {
        const b = push(headerBytes({ ...base, ...owner, path: rel, type: 'FIFO', size: 0 }));
        if (b) yield b;
      } else {
        // Device nodes and sockets: a layer may not carry them (our own unpack refuses them);
        // the runtime provides /dev.
        opts.onSkip?.(rel, st.isSocket() ? 'socket' : 'device node');
      }
    }
  }

  yield* walk(root, '');
  const end = push(Buffer.alloc(BLOCK * 2));
  if (end) yield end;
  if (pendingSize > 0) yield Buffer.concat(pending);
}
