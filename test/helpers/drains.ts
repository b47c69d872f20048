// Log-drain receivers for tests, on loopback: a syslog listener over TCP or TLS that reads
// RFC 6587 octet-counted frames and parses each message with a strict RFC 5424 parser (a
// frame or a message that breaks the grammar fails the test, it is not skipped); a listener
// that accepts and never reads (a stalled receiver); an HTTPS receiver of JSON batches; and a
// throwaway CA made with openssl, whose certificate a drain is told to trust.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';

export interface Rfc5424 {
  pri: number;
  facility: number;
  severity: number;
  version: number;
  timestamp: string | null;
  hostname: string | null;
  appName: string | null;
  procId: string | null;
  msgId: string | null;
  structuredData: { id: string; params: Record<string, string> }[] | null;
  msg: string;
}

class Rfc5424Error extends Error {}

/**
 * RFC 5424 §6's ABNF, checked field by field: PRI 0..191 without leading zeros, VERSION,
 * TIMESTAMP (a real date and time, ≤ 6 fraction digits, Z or an offset), HOSTNAME ≤ 255,
 * APP-NAME ≤ 48, PROCID ≤ 128, MSGID ≤ 32 (PRINTUSASCII or "-"), STRUCTURED-DATA ("-" or
 * SD-ELEMENTs with escaped PARAM-VALUEs), then SP MSG or nothing.
 */
export function parseRfc5424(s: string): Rfc5424 {
  let i = 0;
  const fail = (what: string): never => {
    throw new Rfc5424Error(
      `RFC 5424: ${what} at offset ${i} in ${JSON.stringify(s.slice(0, 200))}`,
    );
  };
  const m = /^<(0|[1-9][0-9]{0,2})>([1-9][0-9]{0,2}) /.exec(s);
  if (m === null) fail('bad PRI or VERSION');
  const pri = Number(m![1]);
  if (pri > 191) fail('PRIVAL over 191');
  i = m![0].length;
  const token = (name: string, max: number): string | null => {
    const sp = s.indexOf(' ', i);
    if (sp < 0) fail(`${name} not followed by SP`);
    const v = s.slice(i, sp);
    if (v.length === 0) fail(`empty ${name}`);
    if (v.length > max) fail(`${name} longer than ${max}`);
    if (!/^[\x21-\x7e]+$/.test(v)) fail(`${name} is not PRINTUSASCII`);
    i = sp + 1;
    return v === '-' ? null : v;
  };
  const ts = token('TIMESTAMP', 64);
  if (ts !== null) {
    const t = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,6})?(Z|[+-](\d\d):(\d\d))$/.exec(
      ts,
    );
    if (t === null) fail('TIMESTAMP is not FULL-DATE "T" FULL-TIME');
    const [, , mo, d, h, mi, se] = t!.map(Number);
    if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || se! > 59)
      fail('TIMESTAMP out of range');
    if (Number.isNaN(Date.parse(ts))) fail('TIMESTAMP is no date');
  }
  const hostname = token('HOSTNAME', 255);
  const appName = token('APP-NAME', 48);
  const procId = token('PROCID', 128);
  // MSGID is followed by SP STRUCTURED-DATA, which is never empty.
  const msgId = token('MSGID', 32);
  let sd: Rfc5424['structuredData'] = null;
  if (s[i] === '-') {
    i++;
  } else if (s[i] === '[') {
    sd = [];
    while (s[i] === '[') {
      i++;
      // SD-NAME: 1*32 PRINTUSASCII except '=', SP, ']' and '"'.
      const name = /^[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32}/.exec(s.slice(i))?.[0];
      if (name === undefined) fail('bad SD-ID');
      i += name!.length;
      const params: Record<string, string> = {};
      while (s[i] === ' ') {
        i++;
        const pn = /^[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32}/.exec(s.slice(i))?.[0];
        if (pn === undefined) fail('bad PARAM-NAME');
        i += pn!.length;
        if (s.slice(i, i + 2) !== '="') fail('PARAM-NAME not followed by ="');
        i += 2;
        let v = '';
        for (;;) {
          const c = s[i];
          if (c === undefined) fail('unterminated PARAM-VALUE');
          if (c === '\\' && (s[i + 1] === '"' || s[i + 1] === '\\' || s[i + 1] === ']')) {
            v += s[i + 1];
            i += 2;
            continue;
          }
          if (c === '"' || c === ']') break;
          v += c;
          i++;
        }
        if (s[i] !== '"') fail('unescaped ] in PARAM-VALUE');
        i++;
        params[pn!] = v;
      }
      if (s[i] !== ']') fail('SD-ELEMENT not closed');
      i++;
      sd.push({ id: name!, params });
    }
  } else {
    fail('STRUCTURED-DATA is neither "-" nor an SD-ELEMENT');
  }
  let msg = '';
  if (i < s.length) {
    if (s[i] !== ' ') fail('STRUCTURED-DATA not followed by SP MSG');
    msg = s.slice(i + 1);
    if (msg.startsWith('\ufeff')) msg = msg.slice(1);
  }
  return {
    pri,
    facility: pri >> 3,
    severity: pri & 7,
    version: Number(m![2]),
    timestamp: ts,
    hostname,
    appName,
    procId,
    msgId,
    structuredData: sd,
    msg,
  };
}

/**
 * RFC 6587 §3.4.1 octet counting: MSG-LEN (a non-zero-led decimal) SP, then exactly MSG-LEN
 * bytes. Returns whole frames and the bytes left over; anything else throws.
 */
export function deframe(buf: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let at = 0;
  for (;;) {
    const sp = buf.indexOf(0x20, at);
    if (sp < 0) {
      if (buf.length - at > 10 || !/^[0-9]*$/.test(buf.subarray(at).toString('latin1')))
        throw new Error(
          `RFC 6587: bad MSG-LEN ${JSON.stringify(buf.subarray(at, at + 20).toString())}`,
        );
      break;
    }
    const len = buf.subarray(at, sp).toString('latin1');
    if (!/^[1-9][0-9]{0,9}$/.test(len))
      throw new Error(`RFC 6587: bad MSG-LEN ${JSON.stringify(len.slice(0, 20))}`);
    const n = Number(len);
    if (buf.length < sp + 1 + n) break;
    frames.push(buf.subarray(sp + 1, sp + 1 + n));
    at = sp + 1 + n;
  }
  return { frames, rest: Buffer.from(buf.subarray(at)) };
}

export interface SyslogReceiver {
  port: number;
  messages: Rfc5424[];
  /** Grammar violations seen (a test asserts none). */
  errors: string[];
  connections: number;
  close(): Promise<void>;
}

function collect(sock: Socket, r: SyslogReceiver): void {
  let rest: Buffer = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    try {
      const { frames, rest: left } = deframe(Buffer.concat([rest, d]));
      rest = left;
      for (const f of frames) r.messages.push(parseRfc5424(f.toString('utf8')));
    } catch (e) {
      r.errors.push((e as Error).message);
      sock.destroy();
    }
  });
  sock.on('error', () => undefined);
}

function closeServer(srv: Server | HttpsServer, socks: Set<Socket>): Promise<void> {
  for (const s of socks) s.destroy();
  return new Promise((res) => srv.close(() => res()));
}

/** A syslog receiver on 127.0.0.1 (`port` 0: any free port); TLS when given a key and cert. */
export async function syslogReceiver(
  opts: { port?: number; tls?: { key: string; cert: string } } = {},
): Promise<SyslogReceiver> {
  const socks = new Set<Socket>();
  const r: SyslogReceiver = {
    port: 0,
    messages: [],
    errors: [],
    connections: 0,
    close: () => closeServer(srv, socks),
  };
  const onSocket = (s: Socket): void => {
    r.connections++;
    socks.add(s);
    s.on('close', () => socks.delete(s));
    collect(s, r);
  };
  const srv: Server =
    opts.tls === undefined
      ? createServer(onSocket)
      : createTlsServer({ key: opts.tls.key, cert: opts.tls.cert }, onSocket);
  await new Promise<void>((res) => srv.listen(opts.port ?? 0, '127.0.0.1', () => res()));
  r.port = (srv.address() as { port: number }).port;
  return r;
}

/** Accepts connections and never reads from them: the kernel's buffers fill, then the sender's. */
export async function stalledReceiver(): Promise<{
  port: number;
  connections: () => number;
  close(): Promise<void>;
}> {
  const socks = new Set<Socket>();
  let n = 0;
  const srv = createServer({ pauseOnConnect: true }, (s) => {
    n++;
    socks.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
  return {
    port: (srv.address() as { port: number }).port,
    connections: () => n,
    close: () => closeServer(srv, socks),
  };
}

export interface HttpsReceiver {
  port: number;
  batches: { headers: Record<string, string | string[] | undefined>; body: unknown }[];
  /** Statuses to answer the next requests with, in order (then 200). */
  failNext: number[];
  close(): Promise<void>;
}

export async function httpsReceiver(tls: { key: string; cert: string }): Promise<HttpsReceiver> {
  const socks = new Set<Socket>();
  const r: HttpsReceiver = {
    port: 0,
    batches: [],
    failNext: [],
    close: () => closeServer(srv, socks),
  };
  const srv = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = r.failNext.shift() ?? 200;
      if (status === 200) {
        r.batches.push({
          headers: req.headers,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
        });
      }
      res.writeHead(status).end();
    });
  });
  srv.on('connection', (s: Socket) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
  r.port = (srv.address() as { port: number }).port;
  return r;
}

/** A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (openssl). */
export function testCa(): {
  caCert: string;
  caPath: string;
  key: string;
  cert: string;
  cleanup: () => void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'paas-drain-ca-'));
  const ssl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=paas drain test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'srv.key',
    '-out',
    'srv.csr',
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(
    join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    'srv.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'srv.pem',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  );
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    caCert: read('ca.pem'),
    caPath: join(dir, 'ca.pem'),
    key: read('srv.key'),
    cert: read('srv.pem'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
