// The contract every Runtime backend must keep (STYLE.md §4): run by native.test.ts and
// runc.test.ts against their backend, the same cases for both.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupDirs,
  dropBridge,
  NATIVE_DIR,
  netnsNames,
  pinCgroup,
  REPO,
  tempDir,
  testRootfs,
} from '../../test/helpers/host.ts';
import { createRuntime } from './index.ts';
import { Network } from './network.ts';
import { WaitTimeout } from '../errors/index.ts';
import type { ContainerSpec, Runtime, RuntimeName, RuntimeOptions } from './types.ts';

export function runtimeContract(name: RuntimeName): void {
  describe(`Runtime contract: ${name}`, () => {
    const tmp = tempDir(`contract-${name}`);
    // A bridge and subnet for each runtime: the two files run at the same time, each with
    // its own leases, so on one subnet both would hand out the same addresses.
    const bridge = `paastest0${name[0]}`;
    const net = name === 'native' ? '10.78.1' : '10.78.2';
    const opts: RuntimeOptions = {
      dataDir: tmp.dir,
      nativeDir: NATIVE_DIR,
      bridge,
      subnet: `${net}.0/24`,
      networkStateDir: tmp.dir,
      cgroupParent: `paastest-${name}`,
    };
    let rt: Runtime;
    let rootfs: string;
    // Layers, not the shared rootfs dir: a container's writes must land in its own upper dir.
    const spec = (s: Partial<ContainerSpec>): ContainerSpec => ({
      rootfs: { lowers: [rootfs] },
      command: ['true'],
      ...s,
    });
    const started: string[] = [];
    const startDetached = async (s: Partial<ContainerSpec>) => {
      const c = await rt.create(spec(s));
      started.push(c.id);
      return rt.start(c.id);
    };

    beforeAll(() => {
      rootfs = testRootfs();
      rt = createRuntime(name, opts);
    });

    afterAll(async () => {
      for (const c of await rt.list())
        await rt.remove(c.id, { force: true }).catch(() => undefined);
      dropBridge(bridge);
      expect(cgroupDirs(`paastest-${name}`)).toEqual([]);
      tmp.cleanup();
    });

    it('returns the exit code of the command, and 128+n when killed by a signal', async () => {
      expect((await rt.run(spec({ command: ['true'] }))).exitCode).toBe(0);
      expect((await rt.run(spec({ command: ['sh', '-c', 'exit 3'] }))).exitCode).toBe(3);
      expect((await rt.run(spec({ command: ['sh', '-c', 'kill -9 $$'] }))).exitCode).toBe(137);
      expect((await rt.run(spec({ command: ['/no/such/binary'] }))).exitCode).toBe(127);
    });

    it('streams stdin into a foreground run and relays raw output chunks (paas run)', async () => {
      const { PassThrough } = await import('node:stream');
      const stdin = new PassThrough();
      const chunks: string[] = [];
      const done = rt.run(
        spec({ command: ['sh', '-c', 'read a; echo "got $a"; read b; echo "err $b" >&2; exit 5'] }),
        {
          stdio: 'pipe',
          stdin,
          onData: (s, c) => chunks.push(`${s}:${c.toString()}`),
        },
      );
      stdin.write('first\n');
      // The second line is sent only once the first answer came back: stdin really streams.
      for (let i = 0; i < 100 && !chunks.join('').includes('got first'); i++) await sleep(50);
      expect(chunks.join('')).toContain('stdout:got first');
      stdin.end('second\n');
      const r = await done;
      expect(r.exitCode).toBe(5);
      expect(chunks.join('')).toContain('stderr:err second');
    });

    it('runs under a terminal that the caller resizes (paas run at a TTY) when features.tty says so; refuses one clearly otherwise', async () => {
      const { PassThrough } = await import('node:stream');
      const command = [
        'sh',
        '-c',
        'trap "stty size" WINCH; tty; stty size; [ -t 0 ] && [ -t 2 ] && echo all-tty; read a; echo "got $a" >&2; sleep 1; exit 6',
      ];
      // The backend's features say which way it goes; the behaviour must match them.
      if (!rt.features.tty) {
        await expect(
          rt.run(spec({ command }), { stdio: 'pipe', tty: { rows: 24, cols: 80 } }),
        ).rejects.toThrow(/terminal \(tty\) is only available with the native runtime/);
        return;
      }
      await expect(
        rt.run(spec({ command }), { stdio: 'pipe', tty: { rows: 0, cols: 80 } }),
      ).rejects.toThrow(/tty: rows and cols must be integers from 1 to 65535, not 0x80/);
      const stdin = new PassThrough();
      const chunks: string[] = [];
      let resize: ((s: { rows: number; cols: number }) => void) | undefined;
      const done = rt.run(spec({ command, user: 'app' }), {
        stdio: 'pipe',
        stdin,
        onData: (s, c) => chunks.push(`${s}:${c.toString()}`),
        tty: { rows: 40, cols: 132, control: (fn) => (resize = fn) },
      });
      for (let i = 0; i < 100 && !chunks.join('').includes('all-tty'); i++) await sleep(50);
      stdin.write('typed\n');
      for (let i = 0; i < 100 && !chunks.join('').includes('got typed'); i++) await sleep(50);
      resize!({ rows: 50, cols: 160 });
      const r = await done;
      expect(r.exitCode).toBe(6);
      // One stream, as a terminal gives it: stderr arrives as stdout, lines end in CRLF.
      expect(chunks.every((c) => c.startsWith('stdout:'))).toBe(true);
      expect(r.stdout.split('\r\n')).toEqual([
        '/dev/pts/0',
        '40 132',
        'all-tty',
        'typed',
        'got typed',
        '50 160',
        '',
      ]);
    });

    it('kills an aborted foreground run, also one aborted before it started (a client that went away)', async () => {
      const before = new AbortController();
      before.abort();
      await expect(
        rt.run(spec({ command: ['sleep', '30'] }), { stdio: 'pipe', signal: before.signal }),
      ).rejects.toThrow(/aborted before it started/);
      const ac = new AbortController();
      // An unkilled `sleep 3600` would hold the run past the test's timeout.
      const done = rt.run(spec({ command: ['sh', '-c', 'echo up; exec sleep 3600'] }), {
        stdio: 'pipe',
        signal: ac.signal,
        onData: (_s, c) => {
          if (c.toString().includes('up')) ac.abort();
        },
      });
      const r = await done;
      expect(r.exitCode).not.toBe(0);
      expect(
        (await rt.list()).filter((c) => c.state === 'running' && !started.includes(c.id)),
      ).toEqual([]);
    });

    it('stops waiting for a running container when the wait is aborted', async () => {
      const c = await startDetached({ command: ['sleep', '3600'] });
      const ac = new AbortController();
      // Only the abort can end this wait before the test's own timeout.
      const waiting = rt.wait(c.id, { timeoutMs: 3_600_000, signal: ac.signal });
      setTimeout(() => ac.abort(), 200);
      await expect(waiting).rejects.toThrow(`stopped waiting for container "${c.id}"`);
      expect((await rt.inspect(c.id)).state).toBe('running');
      await rt.remove(c.id, { force: true });
    });

    it('a wait that runs out throws WaitTimeout and leaves the container running', async () => {
      const c = await startDetached({ command: ['sleep', '3600'] });
      const err = await rt.wait(c.id, { timeoutMs: 100 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WaitTimeout);
      expect((await rt.inspect(c.id)).state).toBe('running');
      await rt.remove(c.id, { force: true });
    });

    it('passes exactly the given env, cwd and hostname', async () => {
      const r = await rt.run(
        spec({
          command: [
            'sh',
            '-c',
            'echo "$FOO|$HOME|$PATH|$(pwd)|$(hostname)"; env | grep -c PAAS_HOST_LEAK || true',
          ],
          env: { FOO: 'bar baz' },
          cwd: '/srv/app',
          hostname: 'myapp.web.1',
        }),
        { stdio: 'pipe' },
      );
      expect(r.exitCode).toBe(0);
      const [line, leaks] = r.stdout.trim().split('\n');
      expect(line).toBe(
        'bar baz|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/srv/app|myapp.web.1',
      );
      expect(leaks).toBe('0');
    });

    it('runs as the image user with its groups', async () => {
      const r = await rt.run(
        spec({ command: ['sh', '-c', 'id -u; id -g; id -G; echo $HOME'], user: 'app' }),
        { stdio: 'pipe' },
      );
      expect(r.stdout.trim().split('\n')).toEqual(['1000', '1000', '1000 10', '/home/app']);
      const r2 = await rt.run(spec({ command: ['id', '-u'], user: '4321:4321' }), {
        stdio: 'pipe',
      });
      expect(r2.stdout.trim()).toBe('4321');
    });

    it('runs a plain directory as a read-only root', async () => {
      const r = await rt.run(
        {
          rootfs: { dir: rootfs },
          readonly: true,
          command: ['sh', '-c', 'touch /probe-write && echo WROTE; cat /etc/passwd | head -1'],
        },
        { stdio: 'pipe' },
      );
      expect(r.stdout).not.toContain('WROTE');
      expect(r.stdout).toContain('root:x:0:0');
      expect(existsSync(join(rootfs, 'probe-write'))).toBe(false);
      const one = await rt.run(
        { rootfs: { lowers: [rootfs] }, readonly: true, command: ['cat', '/etc/hostname'] },
        { stdio: 'pipe' },
      );
      expect(one.exitCode).toBe(0);
    });

    it('captures stdout and stderr of a detached container into its log, tagged and timestamped', async () => {
      const c = await startDetached({
        command: ['sh', '-c', 'echo out-line; echo err-line >&2; printf "no newline"'],
      });
      const exit = await rt.wait(c.id, { timeoutMs: 10_000 });
      expect(exit.exitCode).toBe(0);
      const log = readFileSync(c.logPath, 'utf8');
      expect(log).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stdout out-line$/m);
      expect(log).toMatch(/^\S+ stderr err-line$/m);
      expect(log).toMatch(/^\S+ stdout no newline$/m);
    });

    it("keeps a chatty container's log bounded: past logMaxBytes it becomes log.1, one generation kept", async () => {
      const small = createRuntime(name, { ...opts, logMaxBytes: 16_384 });
      const c = await small.create(
        spec({
          command: ['sh', '-c', 'i=0; while [ $i -lt 4000 ]; do echo "line $i"; i=$((i+1)); done'],
        }),
      );
      started.push(c.id);
      await small.start(c.id);
      expect((await small.wait(c.id, { timeoutMs: 20_000 })).exitCode).toBe(0);
      const size = (p: string) => (existsSync(p) ? statSync(p).size : 0);
      // 4000 lines are ~180 kB of log; what stays is at most two generations (and a line's slack).
      expect(size(c.logPath)).toBeLessThan(16_384 + 4096);
      expect(size(`${c.logPath}.1`)).toBeGreaterThanOrEqual(16_384);
      expect(size(`${c.logPath}.1`)).toBeLessThan(16_384 + 4096);
      const last = readFileSync(c.logPath, 'utf8').trimEnd().split('\n');
      expect(last.at(-1)).toMatch(/ stdout line 3999$/);
      const before = readFileSync(`${c.logPath}.1`, 'utf8').trimEnd().split('\n');
      expect(Number(before.at(-1)!.split(' ').at(-1)) + 1).toBe(Number(last[0]!.split(' ').at(-1)));
    });

    it('stops with the stop signal, then SIGKILL after the grace period', async () => {
      const polite = await startDetached({
        command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.05; done'],
      });
      await sleep(200);
      // A minute of grace: exit code 0 (its TERM trap), not 137, shows the stop signal did it.
      const e1 = await rt.stop(polite.id, { graceMs: 60_000 });
      expect(e1.exitCode).toBe(0);
      expect(e1.signal).toBeNull();

      const stubborn = await startDetached({
        command: ['sh', '-c', 'trap "" TERM; while true; do sleep 0.05; done'],
      });
      await sleep(200);
      const t1 = Date.now();
      const e2 = await rt.stop(stubborn.id, { graceMs: 700 });
      // The grace period was really given: a lower bound a busy box only lengthens.
      expect(Date.now() - t1).toBeGreaterThanOrEqual(650);
      expect(e2.exitCode).toBe(137);
      expect(e2.signal).toBe('SIGKILL');
    });

    it('kills with a given signal', async () => {
      const c = await startDetached({ command: ['sleep', '60'] });
      await sleep(100);
      expect((await rt.inspect(c.id)).state).toBe('running');
      await rt.kill(c.id, 'SIGKILL');
      const e = await rt.wait(c.id, { timeoutMs: 5000 });
      expect(e.exitCode).toBe(137);
      expect((await rt.inspect(c.id)).state).toBe('exited');
    });

    it('reports the status the shim writes, also when asked after the init ended and before the shim wrote it', async () => {
      const c = await startDetached({ command: ['sleep', '600'] });
      const bundle = join(tmp.dir, 'containers', c.id);
      const stateFile = join(bundle, 'state');
      const real = readFileSync(stateFile, 'utf8');
      const shimPid = (JSON.parse(real) as { shimPid: number }).shimPid;
      // The moment between the shim reaping the init and renaming `exit` into place, held
      // open: the shim stopped, the state naming an init that is gone.
      const gone = spawnSync('true').pid as number;
      process.kill(shimPid, 'SIGSTOP');
      try {
        writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(real), initPid: gone }));
        const seen = rt.inspect(c.id);
        const listed = rt.list();
        await sleep(200);
        const at = new Date().toISOString();
        writeFileSync(join(bundle, 'exit'), JSON.stringify({ exitCode: 1, signal: null, at }));
        expect((await seen).exit).toEqual({
          exitCode: 1,
          signal: null,
          oomKilled: false,
          finishedAt: at,
        });
        expect((await listed).find((x) => x.id === c.id)?.exit?.exitCode).toBe(1);
      } finally {
        writeFileSync(stateFile, real);
        rmSync(join(bundle, 'exit'), { force: true });
        process.kill(shimPid, 'SIGCONT');
      }
      await rt.remove(c.id, { force: true });
    });

    it('reports stats from the cgroup and applies limits', async () => {
      const c = await startDetached({
        command: ['sh', '-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 60'],
        limits: { memoryBytes: 64 * 1024 * 1024, pids: 50, cpus: 1 },
      });
      await sleep(1500);
      const s = await rt.stats(c.id);
      expect(s.memoryBytes).toBeGreaterThan(0);
      expect(s.memoryLimitBytes).toBe(64 * 1024 * 1024);
      expect(s.cpuNanos).toBeGreaterThan(10_000_000);
      expect(s.pids).toBeGreaterThanOrEqual(1);
      await rt.stop(c.id, { graceMs: 500 });
    });

    it('execs a one-off process inside a running container', async () => {
      const c = await startDetached({
        command: ['sleep', '60'],
        env: { GREETING: 'hello' },
        hostname: 'exec-host',
      });
      await sleep(100);
      const r = await rt.exec(c.id, {
        command: [
          'sh',
          '-c',
          'echo $GREETING $EXTRA $(hostname); ps -o pid,comm | grep -c sleep; exit 4',
        ],
        env: { EXTRA: 'x' },
      });
      expect(r.exitCode).toBe(4);
      expect(r.stdout).toContain('hello x exec-host');
      expect(r.stdout.trim().split('\n').at(-1)).toBe('1');
      const who = await rt.exec(c.id, { command: ['id', '-u'], user: 'app' });
      expect(who.stdout.trim()).toBe('1000');
      const withStdin = await rt.exec(c.id, { command: ['cat'], stdin: 'piped input' });
      expect(withStdin.stdout).toBe('piped input');
      await rt.stop(c.id, { graceMs: 500 });
    });

    it('has no raw sockets (CAP_NET_RAW) unless the spec asks for them, in run and exec alike', async () => {
      // ping opens a raw ICMP socket (unprivileged ICMP sockets are off: ping_group_range
      // of a fresh netns is "1 0"); the netns' own loopback needs no route or firewall.
      const ping = [
        'sh',
        '-c',
        'ping -c 1 -W 2 127.0.0.1 >/dev/null 2>&1 && echo raw || echo none',
      ];
      const caps = ['sh', '-c', 'grep CapBnd /proc/self/status'];
      const bnd = (out: string) => BigInt(`0x${out.trim().split(/\s+/)[1] ?? '0'}`);
      const NET_RAW = 1n << 13n;
      const plain = await rt.run(spec({ command: ping, net: 'bridge' }), { stdio: 'pipe' });
      expect(plain.stdout.trim()).toBe('none');
      const plainCaps = await rt.run(spec({ command: caps }), { stdio: 'pipe' });
      expect(bnd(plainCaps.stdout) & NET_RAW).toBe(0n);
      const granted = await rt.run(spec({ command: ping, net: 'bridge', netRaw: true }), {
        stdio: 'pipe',
      });
      expect(granted.stdout.trim()).toBe('raw');
      const c = await startDetached({ command: ['sleep', '60'], net: 'bridge' });
      expect((await rt.exec(c.id, { command: ping })).stdout.trim()).toBe('none');
      await rt.remove(c.id, { force: true });
      const d = await startDetached({ command: ['sleep', '60'], net: 'bridge', netRaw: true });
      expect((await rt.exec(d.id, { command: ping })).stdout.trim()).toBe('raw');
      await rt.remove(d.id, { force: true });
    });

    it('serves on its bridge IP, reachable from the host', async () => {
      const c = await startDetached({
        command: [
          'sh',
          '-c',
          'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 5000 -h /www',
        ],
        net: 'bridge',
        hostname: 'web-1',
      });
      expect(c.ip?.split('.').slice(0, 3).join('.')).toBe(net);
      let body = '';
      for (let i = 0; i < 50 && body === ''; i++) {
        body = await fetch(`http://${c.ip}:5000/`).then(
          (r) => r.text(),
          () => '',
        );
        if (body === '') await sleep(50);
      }
      expect(body).toBe('hello from web-1\n');
      await rt.remove(c.id, { force: true });
      expect(netnsNames()).not.toContain(`paas-${c.id}`);
    });

    it('is adopted by a new process after the creating process is killed -9', async () => {
      const child = spawn(
        process.execPath,
        [
          '--disable-warning=ExperimentalWarning',
          '-e',
          `
        import { createRuntime } from ${JSON.stringify(join(REPO, 'src/runtime/index.ts'))};
        const rt = createRuntime(${JSON.stringify(name)}, ${JSON.stringify(opts)});
        const c = await rt.create({ rootfs: { lowers: [${JSON.stringify(rootfs)}] }, command: ['sh', '-c', 'trap "exit 7" TERM; while true; do echo tick; sleep 0.1; done'], labels: { app: 'adopt' } });
        await rt.start(c.id);
        console.log(c.id);
        setInterval(() => {}, 1000);
      `,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const id = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => resolve(d.toString().trim()));
        child.on('exit', (code) => reject(new Error(`creator exited ${code}`)));
      });
      started.push(id);
      child.kill('SIGKILL');
      await new Promise((r) => child.on('close', r));
      await sleep(300);
      const fresh = createRuntime(name, opts);
      const found = (await fresh.list()).find((c) => c.id === id);
      expect(found?.state).toBe('running');
      expect(found?.labels).toEqual({ app: 'adopt' });
      expect(readFileSync(found?.logPath as string, 'utf8')).toContain('tick');
      const exit = await fresh.stop(id, { graceMs: 3000 });
      expect(exit.exitCode).toBe(7);
    });

    it('hands a fresh platform volume to the container user, binds it nosuid,nodev, and leaves a used one alone (storage:mount)', async () => {
      const { mkdirSync, writeFileSync } = await import('node:fs');
      const fresh = join(tmp.dir, 'vol-fresh');
      const used = join(tmp.dir, 'vol-used');
      mkdirSync(fresh);
      mkdirSync(used);
      writeFileSync(join(used, 'keep'), 'root data\n');
      const r = await rt.run(
        spec({
          user: 'app',
          command: [
            'sh',
            '-c',
            'echo hi > /data/f && cat /data/f && grep " /data " /proc/self/mounts; echo x > /used/f || echo refused',
          ],
          volumes: [
            { source: fresh, target: '/data', initOwner: true },
            { source: used, target: '/used', initOwner: true },
          ],
        }),
      );
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^hi\n/);
      expect(r.stdout).toMatch(/ \/data \S+ rw,nosuid,nodev/);
      expect(r.stdout).toContain('refused');
      expect(statSync(fresh).uid).toBe(1000);
      expect(statSync(join(fresh, 'f')).uid).toBe(1000);
      expect(statSync(used).uid).toBe(0);
    });

    const leased = () =>
      new Network({ stateDir: tmp.dir, bridge: opts.bridge, subnet: opts.subnet })
        .leases()
        .map((l) => l.container);

    it('removes everything a container held', async () => {
      const c = await startDetached({
        command: ['sleep', '60'],
        net: 'bridge',
        limits: { pids: 10 },
      });
      const bundle = join(tmp.dir, 'containers', c.id);
      expect(existsSync(bundle)).toBe(true);
      await expect(rt.remove(c.id)).rejects.toThrow(/is running/);
      await rt.remove(c.id, { force: true });
      expect(existsSync(bundle)).toBe(false);
      expect(cgroupDirs(`paastest-${name}`).filter((d) => d.endsWith(c.id))).toEqual([]);
      expect(netnsNames()).not.toContain(`paas-${c.id}`);
      await expect(rt.inspect(c.id)).rejects.toThrow(/no container/);
    });

    it('sweeps what a create cut short left behind, and nothing else', async () => {
      const cut = await rt.create(spec({ net: 'bridge', limits: { pids: 10 } }));
      const kept = await rt.create(spec({ net: 'bridge' }));
      const bundle = join(tmp.dir, 'containers', cut.id);
      // A kill -9 between attaching the network and writing the meta leaves exactly this.
      rmSync(join(bundle, 'meta.json'));
      expect(netnsNames()).toContain(`paas-${cut.id}`);
      expect(leased()).toContain(cut.id);
      expect((await rt.list()).map((c) => c.id)).not.toContain(cut.id);

      expect(await rt.sweep()).toEqual([cut.id]);
      expect(existsSync(bundle)).toBe(false);
      expect(netnsNames()).not.toContain(`paas-${cut.id}`);
      expect(leased()).not.toContain(cut.id);
      expect(cgroupDirs(`paastest-${name}`).filter((d) => d.endsWith(cut.id))).toEqual([]);
      // A container with its meta is not touched.
      expect((await rt.inspect(kept.id)).state).toBe('created');
      expect(netnsNames()).toContain(`paas-${kept.id}`);
      expect(await rt.sweep()).toEqual([]);
      await rt.remove(kept.id, { force: true });
    });

    it('frees the network of a container whose cgroup will not go, and keeps it to try again', async () => {
      const c = await rt.create(spec({ net: 'bridge', limits: { pids: 10 } }));
      const bundle = join(tmp.dir, 'containers', c.id);
      const unpin = pinCgroup(`paastest-${name}`, c.id);
      try {
        await expect(rt.remove(c.id, { force: true })).rejects.toThrow(/still busy/);
        expect(netnsNames()).not.toContain(`paas-${c.id}`);
        expect(leased()).not.toContain(c.id);
        expect((await rt.list()).map((x) => x.id)).toContain(c.id);
      } finally {
        unpin();
      }
      await rt.remove(c.id, { force: true });
      expect(existsSync(bundle)).toBe(false);
      expect(cgroupDirs(`paastest-${name}`).filter((d) => d.endsWith(c.id))).toEqual([]);
    });
  });
}
