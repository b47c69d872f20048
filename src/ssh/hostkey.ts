// The SSH server's host key: ed25519, made once into `<data-dir>/ssh/` (the private half
// 0600, in a 0700 directory) and reused on every start, so a client's known_hosts entry
// stays valid across restarts and upgrades. Its fingerprint is what `paas ssh-keys:host`
// and provision/setup.sh print for the user to compare on first connect.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ssh2 } from './lib.ts';
import { fingerprintOf } from './keys.ts';

export interface HostKey {
  /** OpenSSH private key text, for ssh2's Server. */
  privateKey: string;
  /** `ssh-ed25519 <base64>` */
  publicKey: string;
  /** `SHA256:…`, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  path: string;
}

export function hostKeyPath(dataDir: string): string {
  return join(dataDir, 'ssh', 'host_ed25519_key');
}

export function ensureHostKey(dataDir: string): HostKey {
  const path = hostKeyPath(dataDir);
  mkdirSync(join(dataDir, 'ssh'), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) {
    const kp = ssh2().utils.generateKeyPairSync('ed25519', { comment: 'paas host key' });
    try {
      // `wx`: two daemons starting at once on one data dir cannot both write a key.
      writeFileSync(path, kp.private, { mode: 0o600, flag: 'wx' });
      writeFileSync(`${path}.pub`, `${kp.public}\n`, { mode: 0o644 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  chmodSync(path, 0o600);
  const privateKey = readFileSync(path, 'utf8');
  const parsed = ssh2().utils.parseKey(privateKey);
  if (parsed instanceof Error || Array.isArray(parsed))
    throw new Error(`the SSH host key ${path} is unreadable; move it away to make a new one`);
  const blob = parsed.getPublicSSH();
  return {
    privateKey,
    publicKey: `${parsed.type} ${blob.toString('base64')}`,
    fingerprint: fingerprintOf(blob),
    path,
  };
}
