// Public surface of SSH git access: the server, its host key, the key validator and store.
export { startSshServer, type SshServer, type SshServerOptions } from './server.ts';
export { ensureHostKey, hostKeyPath, type HostKey } from './hostkey.ts';
export {
  parseSshPublicKey,
  parseSshKeyName,
  fingerprintOf,
  MIN_RSA_BITS,
  type SshPublicKey,
  type SshKeyName,
  type SshKeyType,
} from './keys.ts';
export { parseGitCommand, type GitCommand, type GitService } from './command.ts';
export { SshKeys, type SshKey } from './store.ts';
