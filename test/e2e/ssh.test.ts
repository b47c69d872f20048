// Pushing over SSH, end to end: a user adds a fresh ed25519 key with `paas ssh-keys:add`,
// trusts the host key `paas ssh-keys:host` prints (StrictHostKeyChecking=yes), and `git push
// ssh://…` deploys exactly as over HTTP: streamed `remote:` lines, the release and URL last,
// a failing build exits non-zero, a dropped pusher frees the app's lock. Real daemon, router,
// runtime, builder, OpenSSH client and git.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRepo, cli, DOMAIN, get, startPaas, type Paas } from './harness.ts';

let p: Paas;
let dir: string;
let knownHosts: string;
beforeAll(async () => {
  p = await startPaas();
  dir = mkdtempSync(join(tmpdir(), 'paas-e2e-ssh-'));
  knownHosts = join(dir, 'known_hosts');
});
afterAll(async () => {
  await p?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function keygen(name: string): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@laptop`, '-f', path]);
  return path;
}

interface SshPush {
  code: number;
  stderr: string;
  lines: string[];
}

/** `git push ssh://git@127.0.0.1:PORT/APP.git main`; `onLine` may call `drop()`. */
function sshPush(
  key: string,
  cwd: string,
  app: string,
  onLine?: (line: string, drop: () => void) => void,
): Promise<SshPush> {
  return new Promise((resolve) => {
    const c = spawn('git', ['push', `ssh://git@127.0.0.1:${p.sshPort}/${app}.git`, 'main'], {
      cwd,
      detached: true,
      env: {
        ...process.env,
        GIT_SSH_COMMAND: `ssh -F /dev/null -i ${key} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts}`,
      },
    });
    const drop = () => {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    };
    let stderr = '';
    let partial = '';
    const lines: string[] = [];
    c.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      partial += d.toString();
      const parts = partial.split(/\r?\n|\r/);
      partial = parts.pop() ?? '';
      for (const l of parts) {
        if (!l.startsWith('remote:')) continue;
        const line = l.replace(/^remote:\s?/, '').trimEnd();
        lines.push(line);
        onLine?.(line, drop);
      }
    });
    c.on('close', (code) => resolve({ code: code ?? -1, stderr, lines }));
  });
}

const releases = async (app: string) =>
  (JSON.parse((await cli(p, ['releases', app, '--json'])).stdout) as { version: string }[]).map(
    (r) => r.version,
  );

describe('git push over SSH', () => {
  let key: string;
  // One work tree for the whole story, as a developer's would be.
  const repo = appRepo('busybox-web');

  it('ssh-keys:host prints the fingerprint ssh-keygen -lf gives and a known_hosts line', async () => {
    const h = await cli(p, ['ssh-keys:host']);
    expect(h.code, h.stderr).toBe(0);
    const [fingerprintLine, knownLine] = h.stdout.trim().split('\n');
    const lf = execFileSync('ssh-keygen', [
      '-lf',
      join(p.dataDir, 'ssh', 'host_ed25519_key.pub'),
    ]).toString();
    expect(fingerprintLine!.split(' ').slice(0, 2)).toEqual(lf.split(' ').slice(0, 2));
    expect(fingerprintLine).toMatch(/\(ED25519\)$/);
    expect(knownLine).toMatch(new RegExp(`^\\[127\\.0\\.0\\.1\\]:${p.sshPort} ssh-ed25519 `));
    writeFileSync(knownHosts, `${knownLine}\n`);
  });

  it('ssh-keys:add takes a fresh ed25519 key on stdin; ssh-keys lists it', async () => {
    key = keygen('dev');
    const pub = readFileSync(`${key}.pub`, 'utf8');
    const add = await cli(p, ['ssh-keys:add', 'dev'], {}, pub);
    expect(add.code, add.stderr).toBe(0);
    const fp = execFileSync('ssh-keygen', ['-lf', `${key}.pub`])
      .toString()
      .split(' ')[1];
    expect(add.stdout).toContain(`added SSH key dev (${fp}) for every app`);
    const list = JSON.parse((await cli(p, ['ssh-keys', '--json'])).stdout) as {
      name: string;
      fingerprint: string;
      apps: string[];
    }[];
    expect(list).toEqual([
      expect.objectContaining({ name: 'dev', fingerprint: fp, apps: [], type: 'ssh-ed25519' }),
    ]);
    const text = await cli(p, ['ssh-keys']);
    expect(text.stdout).toMatch(
      new RegExp(`^dev +ED25519 256 +${fp!.replace(/[+/]/g, '\\$&')} +\\(all\\) `, 'm'),
    );
    // A private key is refused before it leaves the machine; a weak key by the CLI and the
    // API alike, with its typed error; the API wants the admin token.
    const priv = await cli(p, ['ssh-keys:add', 'oops', key]);
    expect(priv.code).toBe(2);
    expect(priv.stderr).toContain('private key');
    const weakPath = join(dir, 'weak');
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '1024', '-N', '', '-f', weakPath]);
    const weak = await cli(p, ['ssh-keys:add', 'weak', `${weakPath}.pub`]);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toContain('at least 2048 are required');
    const post = (token: string, pub = `${weakPath}.pub`) =>
      fetch(`http://127.0.0.1:${p.apiPort}/api/ssh-keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'sneaky', publicKey: readFileSync(pub, 'utf8') }),
      });
    const api = await post(p.token);
    expect(api.status).toBe(400);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('WeakSshKey');
    expect((await post('not-the-token')).status).toBe(401);
    // A deploy token must not mint itself an SSH key for every app: adding keys is admin's.
    const deploy = await cli(p, [
      'tokens:create',
      '--scope',
      'deploy',
      '--app',
      'sshweb',
      '--quiet',
    ]);
    expect(deploy.code, deploy.stderr).toBe(0);
    const escalate = await post(deploy.stdout.trim(), `${keygen('sneaky')}.pub`);
    expect(escalate.status).toBe(403);
    expect((await cli(p, ['ssh-keys', '--json'])).stdout).not.toContain('sneaky');
    const hostKey = await fetch(`http://127.0.0.1:${p.apiPort}/api/ssh-keys/host`, {
      headers: { authorization: `Bearer ${deploy.stdout.trim()}` },
    });
    expect(hostKey.status).toBe(200);
  });

  it('a push creates the app and deploys with streamed output, the release and URL last', async () => {
    repo.write(
      'Dockerfile',
      "FROM busybox\nRUN sh -c 'echo begun-$0 && sleep 2 && echo ended-$0' x\nCOPY www /www\n" +
        'CMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n',
    );
    repo.commit('slow step');
    // Order, not wall time: when the step's first line arrives, no release exists yet.
    let during: Promise<string[]> | null = null;
    const r = await sshPush(key, repo.dir, 'sshweb', (line) => {
      if (during === null && line.includes('begun-x')) during = releases('sshweb');
    });
    expect(r.code, r.stderr).toBe(0);
    expect(during, 'a remote: line arrived while the push ran').not.toBeNull();
    expect(await during!).toEqual([]);
    expect(r.lines.findIndex((l) => l.includes('ended-x'))).toBeGreaterThan(
      r.lines.findIndex((l) => l.includes('begun-x')),
    );
    expect(r.lines.at(-1)).toBe(`-----> Released v1: http://sshweb.${DOMAIN}:${p.httpPort}/`);
    expect(await get(p, 'sshweb')).toEqual({ status: 200, body: 'hello from v1\n' });
  });

  it('a failing build exits non-zero over SSH and v1 keeps serving', async () => {
    repo.write('Dockerfile', 'FROM busybox\nRUN echo "broken" >&2 && exit 3\n');
    repo.commit('broken');
    const r = await sshPush(key, repo.dir, 'sshweb');
    expect(r.code).not.toBe(0);
    expect(r.lines.join('\n')).toMatch(/push failed: .*exit code 3/);
    expect(r.lines.at(-1)).toContain('v1 is still live');
    expect(await get(p, 'sshweb')).toEqual({ status: 200, body: 'hello from v1\n' });
  });

  it('a pusher that drops mid-build cancels its push; the lock is freed and the next push deploys', async () => {
    repo.write(
      'Dockerfile',
      "FROM busybox\nRUN sh -c 'echo begun-$0 && sleep 2' dropped\nCOPY www /www\n" +
        'CMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n',
    );
    repo.commit('dropped push');
    const dropped = await sshPush(key, repo.dir, 'sshweb', (line, drop) => {
      if (line.includes('begun-dropped')) drop();
    });
    expect(dropped.code).not.toBe(0);
    repo.write('www/index.html', 'hello from v2\n');
    repo.commit('v2');
    const r = await sshPush(key, repo.dir, 'sshweb');
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines.at(-1)).toMatch(/Released v2:/);
    expect(await get(p, 'sshweb')).toEqual({ status: 200, body: 'hello from v2\n' });
    const info = JSON.parse((await cli(p, ['apps:info', 'sshweb', '--json'])).stdout) as {
      lock: unknown;
    };
    expect(info.lock).toBeNull();
  });

  it('a key limited to another app is refused; a removed key no longer logs in', async () => {
    const limited = keygen('limited');
    const add = await cli(p, ['ssh-keys:add', 'limited', `${limited}.pub`, '--app', 'other']);
    expect(add.code, add.stderr).toBe(0);
    const r = await sshPush(limited, repo.dir, 'sshweb');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('the SSH key "limited" may not reach app "sshweb"');
    expect((await cli(p, ['ssh-keys:remove', 'dev'])).code).toBe(0);
    const unknown = await cli(p, ['ssh-keys:remove', 'dev']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('no SSH key named "dev"');
    const gone = await sshPush(key, repo.dir, 'sshweb');
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/Permission denied \(publickey\)/);
    expect(await releases('sshweb')).toEqual(['v2', 'v1']);
  });
});
