// The one validator for SSH public keys (STYLE.md §6): `ssh-keys:add` input is parsed here
// into an SshPublicKey once. Only key types OpenSSH itself still recommends are taken:
// ssh-ed25519, ECDSA on the NIST curves, and RSA of at least 2048 bits (NIST SP 800-57
// Part 1 Rev. 5 §5.6.1: RSA-1024 gives 80 bits of security; SP 800-131A disallows it since 2013).
// DSA is gone from OpenSSH 9.8, and security-key (sk-*) types need a verifier ssh2 lacks.
import { createHash, createPublicKey } from 'node:crypto';
import { ssh2 } from './lib.ts';
import {
  InvalidArgument,
  InvalidSshKey,
  UnsupportedSshKeyType,
  WeakSshKey,
} from '../errors/index.ts';

export type SshKeyType =
  'ssh-ed25519' | 'ecdsa-sha2-nistp256' | 'ecdsa-sha2-nistp384' | 'ecdsa-sha2-nistp521' | 'ssh-rsa';

const BITS: Record<Exclude<SshKeyType, 'ssh-rsa'>, number> = {
  'ssh-ed25519': 256,
  'ecdsa-sha2-nistp256': 256,
  'ecdsa-sha2-nistp384': 384,
  'ecdsa-sha2-nistp521': 521,
};

export const MIN_RSA_BITS = 2048;
// A 16384-bit RSA key is about 3 KB of base64; anything much longer is not a public key.
const MAX_INPUT = 16 * 1024;

export interface SshPublicKey {
  type: SshKeyType;
  bits: number;
  /** `SHA256:<base64 without padding>` of the key blob, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** `<type> <base64>`: the key without its comment, as stored. */
  line: string;
  comment: string;
}

/** OpenSSH's fingerprint of a key blob (sshkey_fingerprint, SSH_FP_BASE64). */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function isSupported(t: string): t is SshKeyType {
  return t === 'ssh-rsa' || t in BITS;
}

/**
 * One public key in OpenSSH's one-line format (`type base64 [comment]`, as in a `.pub`
 * file): blank lines around it are fine, a second key, authorized_keys options or a private
 * key are not.
 */
export function parseSshPublicKey(raw: unknown): SshPublicKey {
  if (typeof raw !== 'string' || raw.trim() === '')
    throw new InvalidSshKey('no SSH public key given: pass the contents of a .pub file', {
      reason: 'empty',
    });
  if (raw.length > MAX_INPUT)
    throw new InvalidSshKey(`an SSH public key is not ${raw.length} bytes long`, {
      reason: 'too-long',
    });
  if (raw.includes('PRIVATE KEY'))
    throw new InvalidSshKey('this is a private key: give the .pub file, and keep this one secret', {
      reason: 'private-key',
    });
  const lines = raw.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length !== 1)
    throw new InvalidSshKey(`expected one SSH public key line, got ${lines.length}`, {
      reason: 'several-lines',
    });
  const m = /^([A-Za-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?: +([\x20-\x7e]*))?$/.exec(
    lines[0]!.trim(),
  );
  if (m === null)
    throw new InvalidSshKey('not an OpenSSH public key line ("ssh-ed25519 AAAA… comment")', {
      reason: 'format',
    });
  const [, type, b64, comment = ''] = m as unknown as [string, string, string, string?];
  if (!isSupported(type))
    throw new UnsupportedSshKeyType(
      `SSH key type "${type}" is not accepted: use ssh-ed25519 (ssh-keygen -t ed25519), ECDSA or RSA of at least ${MIN_RSA_BITS} bits`,
      { type },
    );
  const parsed = ssh2().utils.parseKey(`${type} ${b64}`);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.type !== type)
    throw new InvalidSshKey(`the ${type} key data is corrupt`, { reason: 'corrupt' });
  if (parsed.isPrivateKey())
    throw new InvalidSshKey('this is a private key: give the .pub file', { reason: 'private-key' });
  const blob = parsed.getPublicSSH();
  // The blob must be exactly what was given: no trailing bytes smuggled after the key.
  if (!blob.equals(Buffer.from(b64, 'base64')))
    throw new InvalidSshKey(`the ${type} key data is corrupt`, { reason: 'corrupt' });
  let bits: number;
  if (type === 'ssh-rsa') {
    bits = createPublicKey(parsed.getPublicPEM()).asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS)
      throw new WeakSshKey(
        `this RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required (or use ssh-keygen -t ed25519)`,
        { bits, min: MIN_RSA_BITS },
      );
  } else bits = BITS[type];
  return { type, bits, fingerprint: fingerprintOf(blob), line: `${type} ${b64}`, comment };
}

export type SshKeyName = string & { readonly __brand: 'SshKeyName' };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** A key's label (`alice`, `ci@build-1`): shown in lists and logs, so plain characters only. */
export function parseSshKeyName(raw: unknown): SshKeyName {
  if (typeof raw !== 'string' || !NAME.test(raw))
    throw new InvalidArgument(
      `SSH key name ${typeof raw === 'string' ? `"${raw.slice(0, 80)}" ` : ''}is invalid: 1-64 of letters, digits, '.', '_', '@', '-', starting with a letter or digit`,
      { field: 'name' },
    );
  return raw as SshKeyName;
}
