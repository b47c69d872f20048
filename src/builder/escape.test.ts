// A pushed tree is untrusted (issue 15): a COPY or a RUN must never create, change or remove
// a file on the host outside the build's own directories. Each case builds a checkout that
// aims at a canary directory outside the data dir and asserts the canary is untouched; the
// build either fails clearly or keeps the write inside its layer, where the in-root
// resolver put it.
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTree } from '../fsroot/testing.ts';
import { build, type BuildOptions } from './index.ts';
import { openHarness, runImage, type Harness } from './harness.ts';

let h: Harness;
let root: string;
let canary: string;
let n = 0;

beforeAll(async () => {
  h = await openHarness();
  root = mkdtempSync('/var/tmp/paas-build-escape-');
  // Outside the data dir and outside every checkout: what an escape would hit.
  canary = mkdtempSync('/var/tmp/paas-canary-');
  mkdirSync(path.join(canary, 'cron.d'));
  writeFileSync(path.join(canary, 'cron.d/keep'), 'host cron\n');
  writeFileSync(path.join(canary, 'victim'), 'host file\n');
  // An empty root-owned 0755 directory: what the RUN clean-up would take for a mount point.
  mkdirSync(path.join(canary, 'sub'), 0o755);
});
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  rmSync(canary, { recursive: true, force: true });
  await h?.cleanup();
});

/** Every entry below `dir` with its kind, mode, owner, mtime and contents. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    const abs = path.join(dir, rel);
    const st = lstatSync(abs);
    const body = st.isFile() ? readFileSync(abs, 'utf8') : '';
    out[rel || '.'] = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs} ${body}`;
    if (st.isDirectory()) for (const name of readdirSync(abs)) walk(path.join(rel, name));
  };
  walk('');
  return out;
}

function checkout(files: Record<string, string>, links: Record<string, string> = {}): string {
  return makeTree(path.join(root, `repo${++n}`), files, links);
}

function opts(contextDir: string, dockerfile: string): BuildOptions {
  return {
    contextDir,
    dockerfile,
    tag: { repo: 'test/escape', tag: `v${n}` },
    runtime: h.runtime,
    store: h.store,
    dataDir: h.dataDir,
  };
}

/** Builds; returns the image or the error, asserting the canary is untouched either way. */
async function buildGuarded(
  dir: string,
  dockerfile: string,
): Promise<{ image: Awaited<ReturnType<typeof build>>['image'] | null; error: Error | null }> {
  const before = snapshot(canary);
  let image = null;
  let error: Error | null = null;
  try {
    image = (await build(opts(dir, dockerfile))).image;
  } catch (err) {
    error = err as Error;
  }
  expect(snapshot(canary)).toEqual(before);
  return { image, error };
}

async function cat(
  image: NonNullable<Awaited<ReturnType<typeof buildGuarded>>['image']>,
  file: string,
): Promise<string> {
  const r = await runImage(h, image, ['/bin/sh', '-c', `cat ${file}`]);
  return r.stdout;
}

describe('COPY never writes outside its layer', () => {
  it('multi-source COPY: a later source turns a directory into a symlink out, a third writes through it', async () => {
    // The symlink stays inside the checkout where it sits (deep in it), but placed at the
    // top of the layer its `..`s climb to the host's root and on to the canary.
    const deep = Array.from({ length: 45 }, (_, i) => `d${i}`).join('/');
    const up = `${'../'.repeat(40)}${canary.slice(1)}/cron.d`;
    const dir = checkout(
      {
        'a/sub/first': 'a\n',
        'c/sub/pwned': '* * * * * root echo pwned\n',
        // `sub` itself is excluded, so only its file is copied: the writer must not take
        // the directory it made for source a for granted.
        '.dockerignore': 'c/sub\n!c/sub/pwned\n',
      },
      { [`${deep}/b/sub`]: up },
    );
    const { image, error } = await buildGuarded(
      dir,
      `FROM library/busybox:latest\nCOPY a ${deep}/b c /\n`,
    );
    expect(error).toBeNull();
    // Inside the image the link resolves in its own root: the file lands there.
    expect(await cat(image!, `${canary}/cron.d/pwned`)).toBe('* * * * * root echo pwned\n');
  });

  it('a destination whose missing part is followed by .. stays in the layer', async () => {
    const dir = checkout({ x: 'replaced\n' });
    const climb = '../'.repeat(20);
    const { image, error } = await buildGuarded(
      dir,
      `FROM library/busybox:latest\nCOPY x /nope/${climb}${canary.slice(1)}/victim\nCOPY x /nope/${climb}${canary.slice(1)}/cron.d/x\n`,
    );
    expect(error).toBeNull();
    expect(await cat(image!, `${canary}/victim ${canary}/cron.d/x`)).toBe('replaced\nreplaced\n');
  });

  it('a destination through a symlink to a file fails as "not a directory"', async () => {
    const dir = checkout({ x: 'x\n' });
    const { error } = await buildGuarded(
      dir,
      'FROM library/busybox:latest\nCOPY x /etc/passwd/x\n',
    );
    expect(error?.message).toMatch(/line 2: .*"etc\/passwd" is not a directory/);
  });
});

describe('RUN clean-up never follows what the step planted', () => {
  it('a step that turns a parent of its workdir into a symlink to the host cannot make the clean-up remove a host directory', async () => {
    const dir = checkout({});
    const { image, error } = await buildGuarded(
      dir,
      `FROM library/busybox:latest\nWORKDIR /w/sub\nRUN cd / && rm -rf /w && ln -s ${canary} /w\n`,
    );
    expect(error).toBeNull();
    // The image keeps the step's symlink (its workdir now leads nowhere inside the image).
    const r = await h.runtime.run({
      rootfs: { lowers: await h.store.layerDirs(image!) },
      command: ['/bin/readlink', '/w'],
      cwd: '/',
      user: '0',
      net: 'none',
    });
    expect(r.stdout).toBe(`${canary}\n`);
  });
});
