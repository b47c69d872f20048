// Debian's `pebble` (Let's Encrypt's ACME test server) on loopback for the ACME tests: its own
// HTTPS listener under a CA made here, HTTP-01 validation pointed at the router's port, and
// its DNS pointed at a tiny resolver in this process that answers every name with 127.0.0.1
// (or NXDOMAIN for names the test makes unresolvable). provision/test.sh installs pebble.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PEBBLE = '/usr/bin/pebble';

export interface Pebble {
  /** The ACME directory URL (`--acme-directory`). */
  directoryUrl: string;
  /** The CA of pebble's own HTTPS listener (`--acme-ca-file`). */
  caFile: string;
  /** The root that signs the certificates pebble issues (its management /roots/0), as a file. */
  rootFile(): Promise<string>;
  /** Names the DNS resolver answers with NXDOMAIN from now on (an order for them fails). */
  unresolvable: Set<string>;
  /** Every name the resolver was asked for, in order. */
  queries: string[];
  log(): string;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** Start pebble validating HTTP-01 on `httpPort` (the router's HTTP port) of 127.0.0.1. */
export async function startPebble(httpPort: number): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'paas-pebble-'));
  const caFile = join(dir, 'listener-ca.pem');
  makeListenerCert(dir);
  const dns = await startDns();
  const [listen, mgmt, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const config = join(dir, 'pebble-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listen}`,
        managementListenAddress: `127.0.0.1:${mgmt}`,
        certificate: join(dir, 'listener.pem'),
        privateKey: join(dir, 'listener.key'),
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  let output = '';
  const child: ChildProcess = spawn(
    PEBBLE,
    ['-config', config, '-dnsserver', `127.0.0.1:${dns.port}`],
    {
      env: {
        ...process.env,
        // No random sleep before validating, every good nonce accepted, and no reuse of a
        // valid authorization: each order (renewals, the failing one) validates again.
        PEBBLE_VA_NOSLEEP: '1',
        PEBBLE_WFE_NONCEREJECT: '0',
        PEBBLE_AUTHZREUSE: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const ca = readFileSync(caFile);
  const directoryUrl = `https://127.0.0.1:${listen}/dir`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pebble exited at start:\n${output}`);
    try {
      await get(directoryUrl, ca);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`pebble did not answer in time:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  let root: string | null = null;
  return {
    directoryUrl,
    caFile,
    async rootFile() {
      if (root === null) {
        root = join(dir, 'issuing-root.pem');
        writeFileSync(root, await get(`https://127.0.0.1:${mgmt}/roots/0`, ca));
      }
      return root;
    },
    unresolvable: dns.unresolvable,
    queries: dns.queries,
    log: () => output,
    async close() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      dns.socket.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A CA and a 127.0.0.1/localhost certificate for pebble's own HTTPS listener. */
function makeListenerCert(dir: string): void {
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' });
  const p = (f: string): string => join(dir, f);
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    p('listener-ca.key'),
    '-out',
    p('listener-ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=paas test pebble listener CA',
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    p('listener.key'),
    '-out',
    p('listener.csr'),
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(p('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl(
    'x509',
    '-req',
    '-in',
    p('listener.csr'),
    '-CA',
    p('listener-ca.pem'),
    '-CAkey',
    p('listener-ca.key'),
    '-CAcreateserial',
    '-out',
    p('listener.pem'),
    '-days',
    '2',
    '-extfile',
    p('ext.cnf'),
  );
}

function get(url: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
}

// --- a DNS resolver (RFC 1035 §4) just big enough for pebble's A/AAAA/CAA lookups ---

interface Dns {
  port: number;
  socket: dgram.Socket;
  unresolvable: Set<string>;
  queries: string[];
}

async function startDns(): Promise<Dns> {
  const socket = dgram.createSocket('udp4');
  const unresolvable = new Set<string>();
  const queries: string[] = [];
  socket.on('message', (msg, from) => {
    const q = parseQuestion(msg);
    if (q === null) return;
    queries.push(q.name);
    const nx = unresolvable.has(q.name.toLowerCase());
    // Only A gets an answer; AAAA, CAA and the rest are empty (NOERROR, no data).
    const answer = !nx && q.type === 1;
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8000 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | (nx ? 3 : 0), 2);
    header.writeUInt16BE(1, 4); // one question
    header.writeUInt16BE(answer ? 1 : 0, 6);
    const parts = [header, msg.subarray(12, q.end)];
    if (answer)
      // Name: pointer to the question's (offset 12); A, IN, TTL 0, 4 bytes: 127.0.0.1.
      parts.push(Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]));
    socket.send(Buffer.concat(parts), from.port, from.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, socket, unresolvable, queries };
}

function parseQuestion(msg: Buffer): { name: string; type: number; end: number } | null {
  if (msg.length < 17 || msg.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let i = 12;
  while (i < msg.length && msg[i] !== 0) {
    const len = msg[i]!;
    if (len > 63 || i + 1 + len > msg.length) return null;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  if (i + 5 > msg.length) return null;
  return { name: labels.join('.'), type: msg.readUInt16BE(i + 1), end: i + 5 };
}
