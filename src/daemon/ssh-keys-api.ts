// The SSH key routes of the API (admin token, like every route): add, list and remove the
// keys that may push over SSH, and show the SSH server's host key for known_hosts.
import type { Express } from 'express';
import type { SshHostKeyInfo, SshKeyInfo } from '../api/index.ts';
import { parseAppName } from '../apps/index.ts';
import { InvalidArgument } from '../errors/index.ts';
import {
  parseSshKeyName,
  parseSshPublicKey,
  type HostKey,
  type SshKey,
  type SshKeys,
} from '../ssh/index.ts';

export interface SshKeyRoutes {
  keys: SshKeys;
  hostKey: HostKey;
  /** The SSH server's port, known once it listens. */
  port: () => number;
}

function info(k: SshKey): SshKeyInfo {
  return {
    name: k.name,
    type: k.type,
    bits: k.bits,
    fingerprint: k.fingerprint,
    comment: k.comment,
    apps: k.apps,
    createdAt: k.createdAt,
  };
}

export function mountSshKeyRoutes(
  api: Express,
  ssh: SshKeyRoutes,
  log: (msg: string, extra?: Record<string, unknown>) => void,
): void {
  api.get('/api/ssh-keys', (_req, res) => {
    res.json(ssh.keys.list().map(info) satisfies SshKeyInfo[]);
  });
  api.get('/api/ssh-keys/host', (_req, res) => {
    const [type = ''] = ssh.hostKey.publicKey.split(' ');
    res.json({
      type,
      publicKey: ssh.hostKey.publicKey,
      fingerprint: ssh.hostKey.fingerprint,
      port: ssh.port(),
    } satisfies SshHostKeyInfo);
  });
  api.post('/api/ssh-keys', (req, res) => {
    const body = (req.body ?? {}) as { name?: unknown; publicKey?: unknown; apps?: unknown };
    const name = parseSshKeyName(body.name);
    const key = parseSshPublicKey(body.publicKey);
    if (body.apps !== undefined && !Array.isArray(body.apps))
      throw new InvalidArgument('apps must be a list of app names', { field: 'apps' });
    const apps = ((body.apps as unknown[] | undefined) ?? []).map(parseAppName);
    const added = ssh.keys.add(name, key, apps);
    log('ssh key added', { name, fingerprint: key.fingerprint, apps });
    res.status(201).json(info(added) satisfies SshKeyInfo);
  });
  api.delete('/api/ssh-keys/:name', (req, res) => {
    const name = parseSshKeyName(req.params.name);
    ssh.keys.remove(name);
    log('ssh key removed', { name });
    res.json({ name, removed: true });
  });
}
