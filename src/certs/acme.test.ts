// Issue 18, automatic certificates against a real ACME server: Debian's pebble validates
// HTTP-01 against the real router process (two workers) on loopback, through a DNS resolver
// the test controls; certificates go into the real certificate store (which validates each
// one again), read back the way the router gets them.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureRouterRunning, RouterClient } from '../router/index.ts';
import { freePort, startPebble, type Pebble } from '../../test/helpers/pebble.ts';
import { TestCa } from '../../test/helpers/certs.ts';
import { AcmeAccount, AutoCerts, CertStore, type ChallengePort } from './index.ts';
import { acmePaths } from './acme.ts';

/** The router's client, recording every token it was asked to answer. */
class RecordingPort implements ChallengePort {
  readonly added: string[] = [];
  readonly removed: string[] = [];
  private readonly client: RouterClient;
  constructor(client: RouterClient) {
    this.client = client;
  }
  async addChallenge(token: string, keyAuthorization: string): Promise<void> {
    this.added.push(token);
    await this.client.addChallenge(token, keyAuthorization);
  }
  async removeChallenge(token: string): Promise<void> {
    this.removed.push(token);
    await this.client.removeChallenge(token);
  }
}

let dataDir: string;
let routerPort: number;
let routerPid: number;
let client: RouterClient;
let pebble: Pebble;
let app: http.Server;
let account: AcmeAccount;
let store: CertStore;
/** How many times the store pushed its set to the router (once per install). */
let published = 0;
const pemOf = (host: string): { cert: string; key: string } => store.routerCerts().hosts[host]!;
const serial = (host: string): string => new X509Certificate(pemOf(host).cert).serialNumber;
const errorOf = (host: string): string | null | undefined =>
  store.list('shop').find((e) => e.host === host)?.lastError;
let port: RecordingPort;
const DOMAINS = ['app.test', 'www.app.test'];
const lateDomains: string[] = [];

function get(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(
        { host: '127.0.0.1', port: routerPort, path, headers: { host: 'app.test' }, agent: false },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      )
      .on('error', reject);
  });
}

function chainOf(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map(
    (c) => new X509Certificate(c),
  );
}

const autoCerts = (extra: Partial<ConstructorParameters<typeof AutoCerts>[0]> = {}): AutoCerts =>
  new AutoCerts({
    dataDir,
    issuer: account,
    challenges: port,
    sink: store,
    domains: (a) =>
      a === 'shop'
        ? DOMAINS
        : a === 'mixed'
          ? ['own.test', '*.wild.test']
          : a === 'late'
            ? lateDomains
            : [],
    backoff: { minMs: 60_000, maxMs: 3_600_000 },
    ...extra,
  });

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'paas-acme-'));
  store = new CertStore({
    dataDir,
    domain: 'paas.test',
    publish: async () => void published++,
  });
  routerPort = await freePort();
  const r = await ensureRouterRunning({
    dataDir,
    httpPort: routerPort,
    host: '127.0.0.1',
    domain: 'paas.test',
    workers: 2,
    // A busy box (other suites, pebble starting) can take its time to start two workers.
    timeoutMs: 60_000,
  });
  client = r.client;
  routerPid = r.pid;
  app = http.createServer((_req, res) => res.end('hello from shop\n'));
  await new Promise<void>((res) => app.listen(0, '127.0.0.1', res));
  await client.setRoutes({
    domain: 'paas.test',
    apps: {
      shop: {
        domains: DOMAINS,
        backends: [{ host: '127.0.0.1', port: (app.address() as { port: number }).port }],
      },
    },
  });
  port = new RecordingPort(client);
  pebble = await startPebble(routerPort);
  account = await AcmeAccount.open({
    dataDir,
    directoryUrl: pebble.directoryUrl,
    caFile: pebble.caFile,
    pollMinMs: 100,
    pollMaxMs: 500,
  });
});

afterAll(async () => {
  client?.close();
  if (routerPid) process.kill(routerPid, 'SIGTERM');
  await pebble?.close();
  await new Promise((r) => app?.close(r));
  rmSync(dataDir, { recursive: true, force: true });
});

describe('automatic certificates over ACME HTTP-01 (pebble)', () => {
  it('certs:auto orders a certificate per custom domain, answered by the router', async () => {
    const auto = autoCerts();
    const out = await auto.enable('shop', 'ops@example.com');
    expect(out.map((o) => [o.host, o.status])).toEqual([
      ['app.test', 'issued'],
      ['www.app.test', 'issued'],
    ]);
    const root = new X509Certificate(readFileSync(await pebble.rootFile()));
    for (const host of DOMAINS) {
      const { cert, key } = pemOf(host);
      const { notAfter, source } = store.current(host)!;
      expect(source).toBe('auto');
      const [leaf, ...chain] = chainOf(cert);
      expect(leaf!.checkHost(host)).toBe(host);
      expect(leaf!.checkPrivateKey(createPrivateKey(key))).toBe(true);
      // Leaf → pebble's intermediate → pebble's root.
      expect(leaf!.verify(chain[0]!.publicKey)).toBe(true);
      expect(chain.at(-1)!.verify(root.publicKey)).toBe(true);
      expect(notAfter.getTime()).toBeGreaterThan(Date.now());
      expect(errorOf(host)).toBeNull();
      expect(store.list('shop').find((e) => e.host === host)!.auto).toMatch(/^on: renews from /);
    }
    // The CA fetched each token from the router; every one was taken back after the order.
    expect(port.added.length).toBe(2);
    expect([...port.removed].sort()).toEqual([...port.added].sort());
    for (const t of port.added)
      expect((await get(`/.well-known/acme-challenge/${t}`)).status).toBe(404);
    expect(pebble.queries).toContain('app.test');
    // The app still answers over plain HTTP.
    expect((await get('/')).body).toBe('hello from shop\n');
    // The account key is kept, private to the daemon.
    expect(statSync(acmePaths(dataDir).accountKey).mode & 0o777).toBe(0o600);
    expect(statSync(acmePaths(dataDir).dir).mode & 0o777).toBe(0o700);
  });

  it('does not order again while the certificates are far from expiry', async () => {
    const before = published;
    const out = await autoCerts().tick();
    expect(out.shop!.map((o) => o.status)).toEqual(['valid', 'valid']);
    expect(published).toBe(before);
  });

  it('a domain added to an app with certs:auto on gets its certificate right away', async () => {
    const auto = autoCerts();
    expect(await auto.enable('late')).toEqual([]);
    lateDomains.push('late.test');
    auto.refresh('late'); // what the API's domains:add does
    await auto.idle();
    expect(store.current('late.test')).toMatchObject({ source: 'auto' });
    auto.disable('late');
  });

  it("never replaces an operator's certificate, and leaves wildcards to certs:add", async () => {
    // An operator's certificate for own.test, a day from expiry: well inside the window.
    const leaf = TestCa.root(join(dataDir, 'operator-ca')).leaf(['own.test'], {
      notAfter: new Date(Date.now() + 24 * 3600 * 1000),
    });
    await store.addForApp('mixed', ['own.test'], { cert: leaf.chain, key: leaf.key });
    const fingerprint = store.list('mixed')[0]!.cert!.fingerprint;
    const added = port.added.length;
    const installs = published;
    const out = await autoCerts().enable('mixed');
    expect(out).toEqual([
      { host: 'own.test', status: 'skipped', reason: "an operator's certificate serves it" },
      {
        host: '*.wild.test',
        status: 'skipped',
        reason: 'a wildcard needs a DNS-01 challenge; add its certificate with certs:add',
      },
    ]);
    expect(store.current('own.test')!.source).toBe('manual');
    expect(store.list('mixed')[0]!.cert!.fingerprint).toBe(fingerprint);
    expect(published).toBe(installs);
    expect(port.added.length).toBe(added);
    autoCerts().disable('mixed');
  });

  it('renews inside the renewal window, from the persisted state and account of a restarted daemon', async () => {
    const key = readFileSync(acmePaths(dataDir).accountKey, 'utf8');
    // A key loosened by hand is made private again at the next start.
    chmodSync(acmePaths(dataDir).accountKey, 0o644);
    const accountUrl = JSON.parse(readFileSync(acmePaths(dataDir).account, 'utf8'));
    const old = DOMAINS.map((h) => serial(h));
    // A new account object and scheduler, as after a restart; nothing is enabled again.
    account = await AcmeAccount.open({
      dataDir,
      directoryUrl: pebble.directoryUrl,
      caFile: pebble.caFile,
      pollMinMs: 100,
      pollMaxMs: 500,
    });
    const auto = autoCerts({ renewBeforeMs: 100 * 365 * 24 * 3600 * 1000 });
    const out = await auto.tick();
    expect(out.shop!.map((o) => o.status)).toEqual(['issued', 'issued']);
    expect(DOMAINS.map((h) => serial(h))).not.toEqual(old);
    expect(DOMAINS.map((h) => serial(h))[0]).not.toBe(old[0]);
    expect(readFileSync(acmePaths(dataDir).accountKey, 'utf8')).toBe(key);
    expect(statSync(acmePaths(dataDir).accountKey).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(acmePaths(dataDir).account, 'utf8'))).toEqual(accountUrl);
  });

  it('a failed order keeps the old certificate, shows the error and backs off', async () => {
    let now = Date.now();
    // A new account: pebble 2.4 reuses an account's valid authorization for a name one order
    // in a hundred even at PEBBLE_AUTHZREUSE=0 (its check is `rand.Intn(100) > percent`), and
    // the first account holds valid ones for app.test, so an order for the name it can no
    // longer resolve would now and then be issued without a validation.
    const fresh = await AcmeAccount.open({
      dataDir: mkdtempSync(join(dataDir, 'second-account-')),
      directoryUrl: pebble.directoryUrl,
      caFile: pebble.caFile,
      pollMinMs: 100,
      pollMaxMs: 500,
    });
    const auto = autoCerts({
      issuer: fresh,
      renewBeforeMs: 100 * 365 * 24 * 3600 * 1000,
      now: () => now,
    });
    const oldSerial = serial('app.test');
    const cert = pemOf('app.test').cert;
    pebble.unresolvable.add('app.test');
    const asked = pebble.queries.length;
    const first = await auto.tick();
    const failed = first.shop!.find((o) => o.host === 'app.test')!;
    // The CA looked the name up for this order (no authorization was taken over).
    expect(pebble.queries.slice(asked)).toContain('app.test');
    expect(failed.status).toBe('failed');
    expect(pemOf('app.test').cert).toBe(cert);
    expect(serial('app.test')).toBe(oldSerial);
    // The CA's reason, as `certs APP` will show it.
    expect(errorOf('app.test')).toMatch(/^certificate order for app\.test failed: .*resolve/);
    expect(errorOf('app.test')).toBe((failed as { error: string }).error);
    // The other domain renewed in the same pass.
    expect(first.shop!.find((o) => o.host === 'www.app.test')!.status).toBe('issued');
    expect(auto.status('shop').hosts.find((h) => h.host === 'app.test')).toMatchObject({
      failures: 1,
      lastError: errorOf('app.test'),
    });

    // Inside the backoff nothing is ordered; past it the order is tried again.
    const waiting = await auto.tick();
    expect(waiting.shop!.find((o) => o.host === 'app.test')!.status).toBe('waiting');
    now += 61_000;
    const again = await auto.tick();
    expect(again.shop!.find((o) => o.host === 'app.test')!.status).toBe('failed');
    expect(auto.status('shop').hosts.find((h) => h.host === 'app.test')!.failures).toBe(2);
    // Exponential: the second failure waits twice as long as the first.
    now += 61_000;
    expect((await auto.tick()).shop!.find((o) => o.host === 'app.test')!.status).toBe('waiting');
    expect(serial('app.test')).toBe(oldSerial);
    expect(pemOf('app.test').cert).toBe(cert);
    expect(store.list('shop').find((e) => e.host === 'app.test')!.auto).toMatch(
      /^on: 2 failed orders, next try after /,
    );

    // The name resolves again: the next attempt after the backoff succeeds, the error clears.
    pebble.unresolvable.delete('app.test');
    now += 121_000;
    const healed = await auto.tick();
    expect(healed.shop!.find((o) => o.host === 'app.test')!.status).toBe('issued');
    expect(serial('app.test')).not.toBe(oldSerial);
    expect(errorOf('app.test')).toBeNull();
  });
});
