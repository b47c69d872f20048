// A private Docker engine for interoperability tests and the benches' peer figures (paas itself
// never uses Docker): its own socket, data root, exec root, cgroup parent, trust key and client
// config, no iptables rules and no bridge, so starting and stopping it touches nothing else on
// the host. provision/test.sh installs docker.io; a missing binary or a daemon that cannot
// start fails the test with dockerd's log.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { basename, join } from 'node:path';
import { mountsUnder } from './host.ts';

const DOCKERD = '/usr/sbin/dockerd';
// The client from the same package: it speaks the daemon's API version without negotiation.
const DOCKER = '/usr/bin/docker';
// containerd's own client, for the registry code Docker's containerd image store and buildkit use.
const CTR = '/usr/bin/ctr';
// Sockets, pid files and the client's login go under /run; images under /var/lib, on a disk
// filesystem overlay2 can use. Each engine gets its own directory in both.
const RUN_PARENT = '/run/paas-test-docker';
const DATA_PARENT = '/var/lib/paas-test-docker';

type Result = { code: number; stdout: string; stderr: string };

export interface Dockerd {
  /** The client binary and the environment that point it at this engine, for callers that spawn it themselves (hyperfine). */
  readonly client: { bin: string; env: NodeJS.ProcessEnv };
  log(): string;
  /** Runs the docker client against this engine (`extraEnv` on top, e.g. DOCKER_BUILDKIT); never throws on a non-zero exit. */
  docker(args: string[], input?: string, extraEnv?: Record<string, string>): Promise<Result>;
  /** Runs `ctr` in its own namespace of the engine's containerd; never throws either. */
  ctr(args: string[]): Promise<Result>;
  stop(): Promise<void>;
}

function tool(bin: string, args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<Result> {
  return new Promise((resolve) => {
    const c = spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('error', (e) => resolve({ code: -1, stdout, stderr: String(e) }));
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    c.stdin.end(input);
  });
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Empties a cgroup tree from the leaves up in every hierarchy; a cgroup still holding a process stays. */
function removeCgroups(rel: string): void {
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const walk = (dir: string): void => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name));
      try {
        rmdirSync(dir);
      } catch {
        // busy: left for the next look
      }
    };
    walk(join('/sys/fs/cgroup', hierarchy, rel));
  }
}

/** dockerd's own containerd outlives a dockerd that had to be killed; its command line names our exec root. */
function killOwnContainerd(run: string): void {
  try {
    const pid = Number(readFileSync(join(run, 'exec', 'containerd', 'containerd.pid'), 'utf8'));
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(run))
      process.kill(pid, 'SIGKILL');
  } catch {
    // gone with dockerd
  }
}

export interface DockerdOptions {
  /**
   * A bridge the caller created (unique name and subnet) for containers' default network,
   * instead of none: Swarm's host-mode published ports need one (test/helpers/swarm.ts).
   */
  bridge?: string;
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  for (const bin of [DOCKERD, DOCKER, CTR]) {
    if (!existsSync(bin))
      throw new Error(`${bin} is missing: install docker.io (provision/test.sh does)`);
  }
  mkdirSync(RUN_PARENT, { recursive: true });
  mkdirSync(DATA_PARENT, { recursive: true });
  const run = mkdtempSync(join(RUN_PARENT, 'd-'));
  const dataRoot = mkdtempSync(join(DATA_PARENT, 'd-'));
  const socket = join(run, 'docker.sock');
  const env = {
    ...process.env,
    DOCKER_HOST: `unix://${socket}`,
    DOCKER_CONFIG: join(run, 'client'),
  };
  // Its own config file: the host's /etc/docker/daemon.json stays out of it, and the identity
  // key goes to the data root instead of /etc/docker/key.json (a config-file-only setting).
  const config = join(run, 'daemon.json');
  writeFileSync(config, JSON.stringify({ 'deprecated-key-path': join(dataRoot, 'key.json') }));
  // Containers (and BuildKit's `buildkit/` below) go under a cgroup of their own, not the
  // `docker` one the host's engine would use.
  const cgroupParent = `paas-test-docker-${basename(run)}`;
  // The log goes to a file, not a pipe: a caller that blocks its event loop (hyperfine through
  // execFileSync) would leave a pipe full and the engine stuck in a write, exit events and all.
  const logFile = join(run, 'dockerd.log');
  const logFd = openSync(logFile, 'a');
  let saved = '';
  const log = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return saved;
    }
  };
  const proc: ChildProcess = spawn(
    DOCKERD,
    [
      '--host',
      `unix://${socket}`,
      '--data-root',
      dataRoot,
      '--exec-root',
      join(run, 'exec'),
      '--pidfile',
      join(run, 'dockerd.pid'),
      '--config-file',
      config,
      '--iptables=false',
      '--ip6tables=false',
      `--bridge=${opts.bridge ?? 'none'}`,
      '--exec-opt',
      'native.cgroupdriver=cgroupfs',
      '--containerd-namespace',
      'paas-test',
      '--containerd-plugins-namespace',
      'paas-test-plugins',
      '--cgroup-parent',
      cgroupParent,
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  const spawnError = new Promise<Error>((resolve) => proc.once('error', resolve));

  const d: Dockerd = {
    client: { bin: DOCKER, env },
    log,
    docker: (args, input, extraEnv) => tool(DOCKER, args, { ...env, ...extraEnv }, input),
    ctr: (args) =>
      tool(
        CTR,
        [
          '--address',
          join(run, 'exec', 'containerd', 'containerd.sock'),
          '--namespace',
          'paas-test-ctr',
          ...args,
        ],
        process.env,
      ),
    async stop() {
      if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGKILL');
          await exited;
          killOwnContainerd(run);
        }
      }
      // The engine bind-mounts its data root onto itself; a killed one leaves that behind.
      const left = [
        ...mountsUnder(dataRoot).filter((m) => m === dataRoot || m.startsWith(`${dataRoot}/`)),
        ...mountsUnder(`${run}/`),
      ];
      for (const m of left.sort((a, b) => b.length - a.length)) {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      }
      removeCgroups(cgroupParent);
      saved = log();
      rmSync(run, { recursive: true, force: true });
      rmSync(dataRoot, { recursive: true, force: true });
      for (const parent of [RUN_PARENT, DATA_PARENT]) {
        try {
          rmdirSync(parent);
        } catch {
          // another engine of a parallel run still lives there
        }
      }
    },
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    const failed = await Promise.race([
      spawnError,
      new Promise<null>((r) => setTimeout(() => r(null), 100)),
    ]);
    if (failed) {
      await d.stop();
      throw new Error(`dockerd could not be started: ${failed.message}`);
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await d.stop();
      throw new Error(
        `dockerd exited (${proc.exitCode ?? proc.signalCode}) before it answered; its log:\n${d.log()}`,
      );
    }
    if (await ping(socket)) return d;
    if (Date.now() > deadline) {
      await d.stop();
      throw new Error(`dockerd did not answer on ${socket} within 30 s; its log:\n${d.log()}`);
    }
  }
}
