// Test certificates made by the real openssl CLI: a root CA, intermediates, and leaves
// with the names, validity window and issuer a test asks for.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestLeaf {
  /** The leaf alone. */
  leaf: string;
  /** The leaf, then every intermediate up to (not including) the root. */
  chain: string;
  key: string;
  certPath: string;
  keyPath: string;
}

let seq = 0;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const CA_CONF = `[ca]
default_ca = ca
[ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
[leaf]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
[inter]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
`;

/** `YYYYMMDDHHMMSSZ`, the form `openssl ca -startdate/-enddate` take. */
function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

export class TestCa {
  readonly dir: string;
  readonly crt: string;
  readonly keyPath: string;
  /** What follows a leaf it signs in a bundle: this CA and the intermediates up to the root (empty for the root). */
  readonly chainPems: string[];

  /** The root's certificate file: what a client trusts (`curl --cacert`). */
  readonly rootPath: string;

  private constructor(dir: string, chainPems: string[], rootPath?: string) {
    this.dir = dir;
    this.crt = join(dir, 'ca.crt');
    this.keyPath = join(dir, 'ca.key');
    this.chainPems = chainPems;
    this.rootPath = rootPath ?? this.crt;
    writeFileSync(join(dir, 'ca.cnf'), CA_CONF);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(
      join(dir, 'serial'),
      `${(Date.now() * 1000 + seq++).toString(16).padStart(16, '0')}\n`,
    );
  }

  static root(dir: string, name = 'paas test root'): TestCa {
    mkdirSync(dir, { recursive: true });
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '30',
        '-subj',
        `/CN=${name}`,
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
      ],
      dir,
    );
    return new TestCa(dir, []);
  }

  get rootPem(): string {
    return readFileSync(this.rootPath, 'utf8');
  }

  get pem(): string {
    return readFileSync(this.crt, 'utf8');
  }

  /** A CA signed by this one. */
  intermediate(name: string): TestCa {
    const dir = join(this.dir, `int-${seq++}`);
    mkdirSync(dir, { recursive: true });
    openssl(
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        `/CN=${name}`,
        '-keyout',
        'ca.key',
        '-out',
        'ca.csr',
      ],
      dir,
    );
    this.sign(
      join(dir, 'ca.csr'),
      join(dir, 'ca.crt'),
      'inter',
      new Date(Date.now() - 3600e3),
      new Date(Date.now() + 20 * 86400e3),
    );
    const own = readFileSync(join(dir, 'ca.crt'), 'utf8');
    return new TestCa(dir, [own, ...this.chainPems], this.rootPath);
  }

  /** A server certificate for `names` (DNS SANs), valid in [notBefore, notAfter]. */
  leaf(names: string[], opts: { notBefore?: Date; notAfter?: Date; name?: string } = {}): TestLeaf {
    const base = join(this.dir, opts.name ?? `leaf-${seq++}`);
    openssl(
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        `/CN=${names[0]}`,
        '-addext',
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
        '-keyout',
        `${base}.key`,
        '-out',
        `${base}.csr`,
      ],
      this.dir,
    );
    this.sign(
      `${base}.csr`,
      `${base}.leaf.crt`,
      'leaf',
      opts.notBefore ?? new Date(Date.now() - 3600e3),
      opts.notAfter ?? new Date(Date.now() + 10 * 86400e3),
    );
    const leaf = readFileSync(`${base}.leaf.crt`, 'utf8');
    const chain = [leaf, ...this.chainPems].join('');
    writeFileSync(`${base}.crt`, chain);
    return {
      leaf,
      chain,
      key: readFileSync(`${base}.key`, 'utf8'),
      certPath: `${base}.crt`,
      keyPath: `${base}.key`,
    };
  }

  private sign(csr: string, out: string, ext: string, from: Date, to: Date): void {
    openssl(
      [
        'ca',
        '-batch',
        '-notext',
        '-config',
        'ca.cnf',
        '-cert',
        'ca.crt',
        '-keyfile',
        'ca.key',
        '-extensions',
        ext,
        '-startdate',
        asn1Time(from),
        '-enddate',
        asn1Time(to),
        '-in',
        csr,
        '-out',
        out,
      ],
      this.dir,
    );
  }
}
