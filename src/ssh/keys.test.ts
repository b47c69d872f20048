// The SSH public key validator and store against keys made by OpenSSH's own ssh-keygen.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openState, parseAppName } from '../apps/index.ts';
import { parseGitCommand, parseSshKeyName, parseSshPublicKey, SshKeys } from './index.ts';

const dir = mkdtempSync(join(tmpdir(), 'paas-sshkeys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keygen(name: string, ...args: string[]): { pub: string; priv: string; lf: string } {
  const f = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-N', '', '-C', `${name}@box`, '-f', f, ...args]);
  return {
    pub: readFileSync(`${f}.pub`, 'utf8'),
    priv: readFileSync(f, 'utf8'),
    lf: execFileSync('ssh-keygen', ['-lf', `${f}.pub`]).toString(),
  };
}

describe('SSH public keys', () => {
  it.each([
    ['ed25519', ['-t', 'ed25519'], 'ssh-ed25519', 256],
    ['ecdsa', ['-t', 'ecdsa', '-b', '384'], 'ecdsa-sha2-nistp384', 384],
    ['rsa', ['-t', 'rsa', '-b', '2048'], 'ssh-rsa', 2048],
  ])('takes %s with the fingerprint and bits ssh-keygen -lf prints', (name, args, type, bits) => {
    const k = keygen(name, ...args);
    const p = parseSshPublicKey(k.pub);
    expect(p.type).toBe(type);
    expect(p.bits).toBe(bits);
    const [lfBits, lfFp] = k.lf.split(' ');
    expect(p.fingerprint).toBe(lfFp);
    expect(String(p.bits)).toBe(lfBits);
    expect(p.comment).toBe(`${name}@box`);
  });

  it('refuses RSA under 2048 bits, DSA and security keys, private keys, several keys, junk, each typed', () => {
    const weak = keygen('weak', '-t', 'rsa', '-b', '1024');
    expect(() => parseSshPublicKey(weak.pub)).toThrow(
      expect.objectContaining({ code: 'WeakSshKey', details: { bits: 1024, min: 2048 } }),
    );
    expect(() => parseSshPublicKey('ssh-dss AAAAB3NzaC1kc3MAAACBAP==')).toThrow(
      expect.objectContaining({ code: 'UnsupportedSshKeyType' }),
    );
    expect(() =>
      parseSshPublicKey('sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t'),
    ).toThrow(expect.objectContaining({ code: 'UnsupportedSshKeyType' }));
    const ed = keygen('ed', '-t', 'ed25519');
    const reason = (raw: string) => {
      try {
        parseSshPublicKey(raw);
        return 'accepted';
      } catch (e) {
        return `${(e as { code: string }).code}:${String((e as { details: { reason?: string } }).details.reason)}`;
      }
    };
    expect(reason(ed.priv)).toBe('InvalidSshKey:private-key');
    expect(reason(ed.pub + ed.pub)).toBe('InvalidSshKey:several-lines');
    expect(reason('')).toBe('InvalidSshKey:empty');
    expect(reason(`command="id" ${ed.pub}`)).toBe('InvalidSshKey:format');
    expect(reason('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==')).toBe('InvalidSshKey:corrupt');
    // A valid key with bytes appended to its blob.
    const [t, b64] = ed.pub.split(' ');
    const padded = Buffer.concat([Buffer.from(b64!, 'base64'), Buffer.from('extra')]);
    expect(reason(`${t} ${padded.toString('base64')}`)).toBe('InvalidSshKey:corrupt');
    expect(reason(`\n  ${ed.pub}\n\n`)).toBe('accepted');
  });

  it('stores keys by unique name and fingerprint; removes them by name', () => {
    const state = openState(join(dir, 'data'));
    try {
      const keys = new SshKeys(state.db);
      const k = parseSshPublicKey(keygen('stored', '-t', 'ed25519').pub);
      const added = keys.add(parseSshKeyName('alice@laptop'), k, [parseAppName('web')]);
      expect(keys.byFingerprint(k.fingerprint)).toEqual(added);
      expect(() => keys.add(parseSshKeyName('again'), k, [])).toThrow(
        expect.objectContaining({ code: 'SshKeyExists', details: { name: 'alice@laptop' } }),
      );
      expect(() => keys.remove(parseSshKeyName('nobody'))).toThrow(
        expect.objectContaining({ code: 'SshKeyNotFound' }),
      );
      keys.remove(parseSshKeyName('alice@laptop'));
      expect(keys.list()).toEqual([]);
      expect(() => parseSshKeyName('../x')).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
    } finally {
      state.close();
    }
  });
});

describe('the git command over SSH', () => {
  it.each([
    ["git-receive-pack '/web.git'", 'git-receive-pack'],
    ["git-receive-pack 'web.git'", 'git-receive-pack'],
    ["git-upload-pack '/web.git'", 'git-upload-pack'],
    ['git-upload-pack "web.git"', 'git-upload-pack'],
    ['git-upload-pack web.git', 'git-upload-pack'],
  ])('%s', (cmd, service) => {
    expect(parseGitCommand(cmd)).toEqual({ service, app: 'web' });
  });
});
