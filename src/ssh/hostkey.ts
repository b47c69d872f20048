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
  if (!privateKey.includes('-----BEGIN OPENSSH PRIVATE KEY-----')) throw unreadable(path);
  // The public half comes from the .pub written beside the key, so a start needs no ssh2
  // (~14 MB resident, loaded by the SSH server's first connection, which reads the private
  // half then). A missing or mangled .pub is made again from the private key.
  const pub = readPublic(`${path}.pub`) ?? publicOf(privateKey, path);
  return {
    privateKey,
    publicKey: `${pub.type} ${pub.blob.toString('base64')}`,
    fingerprint: fingerprintOf(pub.blob),
    path,
  };
}

function unreadable(path: string): Error {
  return new Error(`the SSH host key ${path} is unreadable; move it away to make a new one`);
}

function readPublic(file: string): { type: string; blob: Buffer } | null {
  let line: string;
  try {
    line = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const m = /^(ssh-ed25519) ([A-Za-z0-9+/]+={0,2})(?: [^\n]*)?\n?$/.exec(line);
  return m === null ? null : { type: m[1]!, blob: Buffer.from(m[2]!, 'base64') };
}

function publicOf(privateKey: string, path: string): { type: string; blob: Buffer } {
  const parsed = ssh2().utils.parseKey(privateKey);
  if (parsed instanceof Error || Array.isArray(parsed)) throw unreadable(path);
  const out = { type: parsed.type, blob: parsed.getPublicSSH() };
  writeFileSync(`${path}.pub`, `${out.type} ${out.blob.toString('base64')} paas host key\n`, {
    mode: 0o644,
  });
  return out;
}
