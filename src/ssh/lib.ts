// ssh2, loaded when first needed (a connection, a key to check, a host key to read), not at
// import: with its ciphers it is ~14 MB resident, and an idle daemon serves no SSH.
import { createRequire } from 'node:module';
import type Ssh2 from 'ssh2';

let lib: typeof Ssh2 | undefined;

export function ssh2(): typeof Ssh2 {
  // ssh2 is CommonJS: require gives what an ESM default import would.
  return (lib ??= createRequire(import.meta.url)('ssh2') as typeof Ssh2);
}
