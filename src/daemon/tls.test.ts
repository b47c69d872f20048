// The API port with TLS on (issue 19): one port answers HTTPS and, from loopback, plain HTTP,
// told apart by the first byte. Refusal of plain HTTP from another address needs another
// address: test/e2e/remote.test.ts tries it from a network namespace.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTlsPortServer, isLoopback, type PortServer } from './tls.ts';

let dir = '';
let server: PortServer;
let port = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'paas-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '1', '-subj', '/CN=t', '-keyout', join(dir, 'k'), '-out', join(dir, 'c'),
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'pipe' }); // prettier-ignore
  server = createTlsPortServer(
    (req, res) => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => res.end(`${'encrypted' in req.socket ? 'tls' : 'plain'} ${n}`));
    },
    { certPath: join(dir, 'c'), keyPath: join(dir, 'k') },
    () => undefined,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('the TLS port', () => {
  it('serves HTTPS and loopback plain HTTP on one port, bodies intact', async () => {
    // Run curl outside this event loop's turn: the server lives in this process.
    const run = (args: string[]) =>
      new Promise<string>((resolve, reject) =>
        import('node:child_process').then(({ execFile }) =>
          execFile('curl', ['-sS', '-m', '10', ...args], (e, out) =>
            e ? reject(e) : resolve(out),
          ),
        ),
      );
    const body = join(dir, 'body');
    execFileSync('sh', ['-c', `head -c 3000000 /dev/urandom > ${body}`]);
    expect(await run([`http://127.0.0.1:${port}/`, '--data-binary', `@${body}`])).toBe(
      'plain 3000000',
    );
    expect(
      await run([
        '--cacert',
        join(dir, 'c'),
        `https://127.0.0.1:${port}/`,
        '--data-binary',
        `@${body}`,
      ]),
    ).toBe('tls 3000000');
  });

  it('knows loopback addresses, also IPv4-mapped', () => {
    for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1'])
      expect(isLoopback(a)).toBe(true);
    for (const a of [
      '10.0.0.1',
      '::ffff:10.0.0.1',
      '192.168.1.127',
      '::',
      '0.0.0.0',
      undefined,
      '127.0.0.1.nip.io',
    ])
      expect(isLoopback(a)).toBe(false);
  });
});
