// A pushed repo is untrusted: its RUN steps run as containers like any app's. These tests
// play the attacks of issue 15 from inside a real build on the real runtime: look at the
// host's interfaces, connect to a service the host keeps on 127.0.0.1, take a host port, eat
// memory, fork without end, fill the disk, run forever, unpack an archive bomb. Each must be
// refused or contained, and a build that only wants the internet must still reach it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import path from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildLimitExceeded, type PaasError } from '../errors/index.ts';
import { build, type BuildOptions } from './index.ts';
import { openHarness, type Harness } from './harness.ts';

let h: Harness;
let root: string;
let n = 0;

beforeAll(async () => {
  h = await openHarness();
  root = mkdtempSync('/var/tmp/paas-build-sandbox-');
});
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await h?.cleanup();
});

function context(files: Record<string, string> = {}): string {
  const dir = path.join(root, `ctx${++n}`);
  for (const [rel, text] of Object.entries(files)) {
    const p = path.join(dir, rel);
    execFileSync('mkdir', ['-p', path.dirname(p)]);
    writeFileSync(p, text);
  }
  execFileSync('mkdir', ['-p', dir]);
  return dir;
}

function opts(dockerfile: string, extra: Partial<BuildOptions> = {}): BuildOptions {
  return {
    contextDir: extra.contextDir ?? context(),
    dockerfile,
    tag: { repo: 'test/sandbox', tag: `t${n}` },
    runtime: h.runtime,
    store: h.store,
    dataDir: h.dataDir,
    noCache: true,
    ...extra,
  };
}

async function failure(p: Promise<unknown>): Promise<PaasError> {
  try {
    await p;
  } catch (err) {
    return err as PaasError;
  }
  throw new Error('the build succeeded; it should have failed');
}

function listen(server: Server, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => resolve((server.address() as { port: number }).port));
  });
}

/** One line from whoever answers on 127.0.0.1:port, or the connection error's code. */
function ask(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    s.setTimeout(5000, () => s.destroy(new Error('ETIMEDOUT')));
    s.on('connect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => resolve(got));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** The names in /proc/net/dev's lines (skipping its two header lines). */
function interfaces(lines: string[]): string[] {
  return lines
    .map((l) => /^\s*([^\s:]+):\s+\d/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined)
    .sort();
}

describe('a RUN step has its own network namespace on the bridge', () => {
  it('sees only lo and eth0, with a bridge address, never the host interfaces', async () => {
    const lines: string[] = [];
    await build(
      opts('FROM library/busybox:latest\nRUN cat /proc/net/dev && ip -4 -o addr show eth0\n', {
        onLine: (l) => lines.push(l),
      }),
    );
    expect(interfaces(lines)).toEqual(['eth0', 'lo']);
    const host = readdirSync('/sys/class/net');
    expect(host.length).toBeGreaterThan(2); // the host has more (paas0 at least), so the check means something
    expect(lines.join('\n')).toMatch(/eth0\s+inet 10\.77\.\d+\.\d+\/16/);
  });

  it('cannot connect to a service the host keeps on 127.0.0.1', async () => {
    let connections = 0;
    const secret = new Set<string>();
    const server = createServer((s) => {
      connections++;
      s.end('host-only secret\n');
    });
    const port = await listen(server);
    try {
      const lines: string[] = [];
      await build(
        opts(
          `FROM library/busybox:latest\nRUN nc -w 2 127.0.0.1 ${port} </dev/null; echo "nc exit $?"\n`,
          { onLine: (l) => lines.push(l) },
        ),
      );
      for (const l of lines) if (l.includes('secret')) secret.add(l);
      expect(lines).toContain('nc exit 1');
      expect([...secret]).toEqual([]);
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  it('cannot take a port of the host: its listener lives in its own namespace', async () => {
    // A free host port: the build listens on it while the test looks from the host.
    const probe = createServer();
    const port = await listen(probe, 0, '0.0.0.0');
    await new Promise<void>((r) => probe.close(() => r()));
    const seen: { fromHost: string; ours: string }[] = [];
    let checked!: () => void;
    const done = new Promise<void>((r) => (checked = r));
    const lines: string[] = [];
    await build(
      opts(
        `FROM library/busybox:latest\nRUN mkdir /w && echo build-owned > /w/index.html && httpd -p ${port} -h /w && echo LISTENING && sleep 5\n`,
        {
          onLine: (l) => {
            lines.push(l);
            if (l !== 'LISTENING') return;
            void (async () => {
              const fromHost = await ask(port);
              // The host port is still free: the test's own server takes it and answers.
              const mine = createServer((s) => s.end('test-owned\n'));
              let ours: string;
              try {
                await listen(mine, port, '0.0.0.0');
                ours = await ask(port);
              } catch (e) {
                ours = (e as NodeJS.ErrnoException).code ?? String(e);
              }
              mine.close();
              seen.push({ fromHost, ours });
              checked();
            })();
          },
        },
      ),
    );
    await done;
    expect(lines).toContain('LISTENING');
    expect(seen).toEqual([{ fromHost: 'ECONNREFUSED', ours: 'test-owned\n' }]);
  });

  describe('the internet stays reachable through the bridge', () => {
    // An "internet" of our own: a namespace behind a veth from the host, which the host
    // routes to; a build's packets reach it only through the bridge and its outbound NAT.
    const tag = randomBytes(3).toString('hex');
    const ns = `bsx-inet-${tag}`;
    const hostEnd = `bsxh${tag}`;
    const octet = 1 + (parseInt(tag, 16) % 250);
    const inetIp = `198.18.${octet}.2`;
    let server: ChildProcess;
    let peers: string[] = [];

    beforeAll(async () => {
      const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' });
      ip('netns', 'add', ns);
      ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('addr', 'add', `198.18.${octet}.1/30`, 'dev', hostEnd);
      ip('link', 'set', hostEnd, 'up');
      ip('-n', ns, 'addr', 'add', `${inetIp}/30`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      // Answers with the address it saw the request come from.
      server = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          '-e',
          `require('http').createServer((q, s) => s.end('internet saw ' + q.socket.remoteAddress + '\\n')).listen(8080, '0.0.0.0', () => console.log('up'))`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((r) => server.stdout?.once('data', () => r()));
      peers = [];
    });
    afterAll(() => {
      server?.kill();
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    });

    it('reaches a server in another network namespace, seen as the host after NAT', async () => {
      const lines: string[] = [];
      await build(
        opts(
          `FROM library/busybox:latest\nRUN ip -4 -o addr show eth0 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${inetIp} 8080\n`,
          { onLine: (l) => lines.push(l) },
        ),
      );
      peers = lines.filter((l) => l.startsWith('internet saw'));
      expect(lines.join('\n')).toMatch(/eth0\s+inet 10\.77\.\d+\.\d+\/16/);
      // Masqueraded to the host's address on the stand-in's link.
      expect(peers).toEqual([`internet saw 198.18.${octet}.1`]);
    });
  });

  it("resolves names through the host's resolver when it is not a loopback address", async () => {
    const hostServers = readFileSync('/etc/resolv.conf', 'utf8')
      .split('\n')
      .filter((l) => /^\s*nameserver\s/.test(l) && !/nameserver\s+(127\.|::1)/.test(l))
      .map((l) => l.trim());
    // A name the host resolves (the npm registry, which builds need) must resolve in a step.
    let hostKnows = true;
    try {
      execFileSync('getent', ['hosts', 'registry.npmjs.org'], { stdio: 'ignore' });
    } catch {
      hostKnows = false;
    }
    const lines: string[] = [];
    await build(
      opts(
        'FROM library/busybox:latest\nRUN cat /etc/resolv.conf; nslookup registry.npmjs.org >/dev/null 2>&1 && echo RESOLVED || echo UNRESOLVED\n',
        { onLine: (l) => lines.push(l) },
      ),
    );
    expect(lines.filter((l) => /^\s*nameserver\s/.test(l)).map((l) => l.trim())).toEqual(
      hostServers,
    );
    if (hostServers.length > 0 && hostKnows) expect(lines).toContain('RESOLVED');
  });
});

describe('build limits', () => {
  it('a step that allocates without bound fails at the memory limit while another app keeps answering', async () => {
    // Another app: a container on the bridge serving HTTP, asked back to back all along.
    const www = path.join(root, `www${++n}`);
    execFileSync('mkdir', ['-p', www]);
    writeFileSync(path.join(www, 'index.html'), 'still here\n');
    const app = await h.runtime.create({
      rootfs: { lowers: await h.store.layerDirs(h.busybox) },
      command: ['httpd', '-f', '-p', '8080', '-h', '/www'],
      volumes: [{ source: www, target: '/www', readonly: true }],
      net: 'bridge',
      limits: { memoryBytes: 32 * 1024 ** 2 },
    });
    await h.runtime.start(app.id);
    const url = `http://${app.ip}:8080/`;
    for (let i = 0; i < 100 && (await fetch(url).catch(() => null))?.ok !== true; i++)
      await new Promise((r) => setTimeout(r, 50));
    let stop = false;
    let answered = 0;
    const failures: string[] = [];
    const loop = (async () => {
      // Bounded: at most 2000 requests or 60 s.
      const t0 = Date.now();
      while (!stop && answered + failures.length < 2000 && Date.now() - t0 < 60_000) {
        const r = await fetch(url, { signal: AbortSignal.timeout(5000) }).then(
          async (x) => `${x.status} ${await x.text()}`,
          (e: Error) => e.message,
        );
        if (r === '200 still here\n') answered++;
        else failures.push(r);
        await new Promise((res) => setTimeout(res, 10));
      }
    })();
    try {
      const err = await failure(
        build(
          opts('FROM library/busybox:latest\nRUN x=0123456789; while :; do x=$x$x; done\n', {
            limits: { memoryBytes: 48 * 1024 ** 2 },
          }),
        ),
      );
      expect(err).toBeInstanceOf(BuildLimitExceeded);
      expect(err.details).toMatchObject({ limit: 'memory', step: 2 });
      expect(err.message).toMatch(
        /step 2 ran out of memory: .*48 MiB \(daemon flag --build-memory\)/,
      );
    } finally {
      stop = true;
      await loop;
      await h.runtime.remove(app.id, { force: true });
    }
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(10);
  });

  it('a step that fails for its own reason after filling the page cache is not blamed on memory', async () => {
    const err = await failure(
      build(
        opts(
          'FROM library/busybox:latest\nRUN dd if=/dev/zero of=/big bs=1M count=160 2>/dev/null && sync && cat /big /big >/dev/null && exit 3\n',
          { limits: { memoryBytes: 48 * 1024 ** 2 } },
        ),
      ),
    );
    expect(err).not.toBeInstanceOf(BuildLimitExceeded);
    expect(err.details).toMatchObject({ step: 2, exitCode: 3 });
  });

  it('a fork bomb stops at the pids limit and fails naming it', async () => {
    const lines: string[] = [];
    const err = await failure(
      build(
        opts(
          // The bomb is restarted until the step's timeout; by then it has hit the pids limit.
          'FROM library/busybox:latest\nRUN f() { f | f & }; while :; do f; done\n',
          { limits: { pids: 64, timeoutMs: 8000 }, onLine: (l) => lines.push(l) },
        ),
      ),
    );
    expect(err).toBeInstanceOf(BuildLimitExceeded);
    expect(err.details).toMatchObject({ limit: 'pids', pids: 64, step: 2 });
    expect(err.message).toMatch(/step 2 reached the build pids limit of 64 .*--build-pids/);
    expect(lines.some((l) => /can't fork|Resource temporarily unavailable/.test(l))).toBe(true);
  });

  it('a step that runs forever is stopped at the timeout, naming it', async () => {
    const err = await failure(
      build(opts('FROM library/busybox:latest\nRUN sleep 600\n', { limits: { timeoutMs: 2000 } })),
    );
    expect(err).toBeInstanceOf(BuildLimitExceeded);
    expect(err.details).toMatchObject({ limit: 'timeout', step: 2 });
    expect(err.message).toMatch(
      /step 2 ran longer than the build timeout of 2 s .*--build-timeout/,
    );
  });

  it('a step that fills the disk is stopped at the disk limit, and its layer is gone', async () => {
    const err = await failure(
      build(
        opts(
          'FROM library/busybox:latest\nRUN i=0; while [ $i -lt 400 ]; do dd if=/dev/zero of=/f$i bs=1M count=1 2>/dev/null; i=$((i+1)); sleep 0.01; done\n',
          { limits: { diskBytes: 64 * 1024 ** 2 } },
        ),
      ),
    );
    expect(err).toBeInstanceOf(BuildLimitExceeded);
    expect(err.details).toMatchObject({ limit: 'disk', step: 2 });
    expect(err.message).toMatch(
      /step 2 went past the .* left of the build's disk limit of 64 MiB \(daemon flag --build-disk\)/,
    );
    expect(readdirSync(path.join(h.dataDir, 'build', 'tmp'))).toEqual([]);
  });

  it('a sparse file counts at its size (its layer would hold all of it)', async () => {
    const err = await failure(
      build(
        opts('FROM library/busybox:latest\nRUN truncate -s 1G /sparse\n', {
          limits: { diskBytes: 64 * 1024 ** 2 },
        }),
      ),
    );
    expect(err).toBeInstanceOf(BuildLimitExceeded);
    expect(err.details).toMatchObject({ limit: 'disk' });
  });

  it('ADD of an archive bomb is refused before anything is unpacked', async () => {
    const dir = context();
    const src = path.join(root, `bomb${n}`);
    execFileSync('mkdir', ['-p', src]);
    execFileSync('truncate', ['-s', '96M', path.join(src, 'zeros')]);
    await tar.c({ gzip: true, file: path.join(dir, 'bomb.tar.gz'), cwd: src }, ['zeros']);
    rmSync(src, { recursive: true });
    const err = await failure(
      build(
        opts('FROM library/busybox:latest\nADD bomb.tar.gz /opt/\n', {
          contextDir: dir,
          limits: { diskBytes: 64 * 1024 ** 2 },
        }),
      ),
    );
    expect(err).toBeInstanceOf(BuildLimitExceeded);
    expect(err.details).toMatchObject({ limit: 'disk' });
    expect(err.message).toMatch(
      /ADD bomb\.tar\.gz: the unpacked archive went past the .* left of the build's disk limit of 64 MiB/,
    );
    expect(readdirSync(path.join(h.dataDir, 'build', 'tmp'))).toEqual([]);
  });
});
