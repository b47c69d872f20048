// The CLI starts fast because `--version` and `help` read only the command table.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers/host.ts';

const PAAS = join(REPO, 'bin', 'paas');

function loaded(args: string[]): { stdout: string; modules: string[]; status: number | null } {
  const r = spawnSync(PAAS, args, {
    encoding: 'utf8',
    env: {
      ...process.env,
      NODE_OPTIONS: `--import=${join(REPO, 'test/fixtures/record-imports.mjs')}`,
    },
  });
  const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED ')) ?? 'LOADED []';
  return { stdout: r.stdout, modules: JSON.parse(line.slice(7)) as string[], status: r.status };
}

describe('paas CLI entry', () => {
  it('prints its version and help without loading any command, daemon or library module', () => {
    for (const args of [
      ['--version'],
      ['help'],
      ['help', 'container:run'],
      ['container:run', '--help'],
    ]) {
      const r = loaded(args);
      expect(r.status).toBe(0);
      const ours = r.modules.filter((u) => u.startsWith('file:'));
      expect(ours.length).toBeGreaterThan(0);
      expect(
        ours.filter((u) =>
          /\/(daemon|runtime|registry|router|build|deploy|git|apps|logs)\/|node_modules|\/commands\//.test(
            u,
          ),
        ),
      ).toEqual([]);
    }
    expect(loaded(['--version']).stdout).toMatch(/^paas \d+\.\d+\.\d+\n$/);
    expect(loaded(['help']).stdout).toContain('container:run');
  });

  it('runs on Node 24 or newer', () => {
    const v = execFileSync(PAAS, ['--version'], {
      encoding: 'utf8',
      env: {
        ...process.env,
        NODE_OPTIONS: '--import=data:text/javascript,console.log(process.versions.node)',
      },
    });
    expect(Number(v.split('.')[0])).toBeGreaterThanOrEqual(24);
  });

  it.each([
    [
      ['router', '--http-port', '99999'],
      'router: --http-port "99999" must be a whole number in 0..65535',
    ],
    [['router', '--workers', '0'], 'router: --workers "0" must be a whole number in 1..64'],
    [['daemon', '--api-port', 'x'], 'daemon: --api-port "x" must be a whole number in 0..65535'],
    [['daemon', '--scheduler', 'nomad'], 'unknown scheduler "nomad": use one of local, swarm'],
    [
      ['daemon', '--registry-address', '10.0.0.1:7070'],
      '--docker-socket and --registry-address go with --scheduler swarm',
    ],
    [
      ['daemon', '--scheduler', 'swarm', '--registry-address', 'http://10.0.0.1'],
      '--registry-address must be HOST:PORT',
    ],
    [
      ['daemon', '--scheduler', 'swarm', '--docker-socket', 'docker.sock'],
      '--docker-socket must be an absolute path',
    ],
    // No silent fallback to the default plane.
    [['daemon', '--router', 'nginx'], 'unknown data plane "nginx": expected one of node, haproxy'],
    [
      ['daemon', '--router', 'node', '--data-plane', 'haproxy'],
      'daemon: --router and --data-plane name different planes',
    ],
    [
      ['daemon', '--ssh-port', '22x'],
      'daemon: --ssh-port "22x" must be a whole number in 0..65535',
    ],
  ])('refuses bad numeric flags, unknown schedulers and planes: %j', (args, message) => {
    const r = spawnSync(PAAS, args, { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });

  // A taken port (the system sshd on 22, another daemon) exits 2 naming it, instead of hanging.
  // The other ports are any free ones: the defaults 443 and 2222 may be held on the box.
  it.each([
    ['API', '--api-port', 'the API port'],
    ['SSH', '--ssh-port', 'the SSH port'],
  ])(
    'a daemon whose %s port is taken exits 2 with the reason and the flag',
    async (_, flag, what) => {
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
      const port = (blocker.address() as AddressInfo).port;
      const dir = mkdtempSync(join(tmpdir(), 'paas-cli-daemon-'));
      const ports: Record<string, string> = {
        '--api-port': '0',
        '--https-port': '0',
        '--ssh-port': '0',
        '--http-port': String(port + 1 > 65535 ? port - 1 : port + 1),
        [flag]: String(port),
      };
      try {
        const r = spawnSync(
          PAAS,
          ['daemon', '--data-dir', dir, '--api-host', '127.0.0.1', ...Object.entries(ports).flat()],
          { encoding: 'utf8', timeout: 60_000 },
        );
        expect(r.status).toBe(2);
        expect(r.stderr).toContain(`${what} 127.0.0.1:${port} is already in use`);
        if (flag === '--ssh-port') expect(r.stderr).toContain('--ssh-port');
      } finally {
        blocker.close();
        for (const pid of [
          join(dir, 'router', 'router.pid'),
          join(dir, 'router', 'haproxy', 'haproxy.pid'),
        ])
          if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('exits 2 with a message for an unknown command', () => {
    const r = spawnSync(PAAS, ['frobnicate'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });

  // Every command parses its flags through one helper: an unknown flag is a typed error (exit
  // 2, one line), never a stack trace — buildpacks used node:util directly and crashed.
  it.each([['buildpacks'], ['buildpacks:detect'], ['apps:list'], ['images:gc']])(
    'exits 2 with one line for an unknown flag: %s',
    (cmd) => {
      const r = spawnSync(PAAS, [cmd, '--nope'], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("Unknown option '--nope'");
      expect(r.stderr).not.toContain('    at ');
    },
  );
});
