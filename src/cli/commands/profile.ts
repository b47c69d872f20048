// What `paas login` keeps (issue 19): the API URL, the server's certificate pinned at login
// and a token, in `$XDG_CONFIG_HOME/paas/` (default ~/.config/paas/), the directory 0700 and
// every file 0600, so no other user of the laptop reads the token.
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgument } from '../../errors/index.ts';
import { writeFileWhole } from '../../files/index.ts';

export interface Profile {
  /** `https://host:7070`, no trailing slash. */
  api: string;
  /** SHA256:AB:CD:… of the pinned certificate (null for a loopback http:// login). */
  fingerprint: string | null;
  /** Path of the pinned certificate (PEM), the CA for the CLI and for git's remote. */
  caPath: string | null;
  token: string;
}

export function profileDir(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'paas');
}

/** The stored login, or null when `paas login` was never run. */
export function loadProfile(): Profile | null {
  const dir = profileDir();
  const cfg = join(dir, 'config.json');
  if (!existsSync(cfg)) return null;
  const c = JSON.parse(readFileSync(cfg, 'utf8')) as { api?: unknown; fingerprint?: unknown };
  if (typeof c.api !== 'string') return null;
  let token = '';
  try {
    token = readFileSync(join(dir, 'token'), 'utf8').trim();
  } catch {
    // A profile without a token: the CLI falls back to PAAS_TOKEN or the admin-token file.
  }
  const caPath = join(dir, 'ca.pem');
  return {
    api: c.api,
    fingerprint: typeof c.fingerprint === 'string' ? c.fingerprint : null,
    caPath: existsSync(caPath) ? caPath : null,
    token,
  };
}

function writePrivate(path: string, text: string): void {
  // 0600 from its creation: no moment where the token sits in a wider file.
  writeFileWhole(path, text, { mode: 0o600 });
}

export function saveProfile(p: {
  api: string;
  fingerprint: string | null;
  pem: string | null;
  token: string;
}): Profile {
  const dir = profileDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (p.pem !== null) writePrivate(join(dir, 'ca.pem'), p.pem);
  writePrivate(join(dir, 'token'), `${p.token}\n`);
  writePrivate(
    join(dir, 'config.json'),
    `${JSON.stringify({ api: p.api, fingerprint: p.fingerprint }, null, 2)}\n`,
  );
  return loadProfile()!;
}

/**
 * The `--fingerprint` validator: the SHA-256 of a certificate as `SHA256:` + hex (with or
 * without colons, as openssl and browsers print it) or + base64 (as OpenSSH prints key
 * fingerprints), or bare hex. Returns the canonical `SHA256:AB:CD:…`.
 */
export function parseFingerprint(raw: string): string {
  const v = raw.trim().replace(/^(sha256\s*fingerprint\s*=|sha256:)/i, '');
  let hex: string | null = null;
  if (/^([0-9a-f]{2}:?){31}[0-9a-f]{2}$/i.test(v)) hex = v.replace(/:/g, '');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(v)) {
    const b = Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) hex = b.toString('hex');
  }
  if (hex === null)
    throw new InvalidArgument(
      `login: --fingerprint "${raw}" is not a SHA-256 fingerprint (SHA256:AB:CD:… as setup.sh prints it)`,
    );
  return formatFingerprint(hex);
}

export function formatFingerprint(hex: string): string {
  return `SHA256:${hex.toUpperCase().match(/../g)!.join(':')}`;
}
