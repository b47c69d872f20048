// Log drains against real receivers on loopback: syslog over TCP and TLS (a CA made with
// openssl, trusted through the drain options), HTTPS JSON batches, a receiver that is not
// there and one that accepts and never reads. Frames are checked with a strict RFC 6587 and
// RFC 5424 parser (test/helpers/drains.ts), never by substring.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openState, parseAppName, type State } from '../apps/index.ts';
import { InvalidDrainUrl, DrainExists, DrainNotFound } from '../errors/index.ts';
import {
  httpsReceiver,
  parseRfc5424,
  stalledReceiver,
  syslogReceiver,
  testCa,
  type Rfc5424,
} from '../../test/helpers/drains.ts';
import { freePort, waitFor } from '../../test/helpers/host.ts';
import {
  DrainManager,
  LogStore,
  parseDrainUrl,
  syslogMessage,
  type DrainJsonLine,
  type DrainOptions,
  type LogLine,
} from './index.ts';

const app = parseAppName('shop');
let ca: ReturnType<typeof testCa>;
beforeAll(() => {
  ca = testCa();
});
afterAll(() => ca.cleanup());

interface World {
  dir: string;
  state: State;
  logs: LogStore;
  drains: DrainManager;
  /** What `paas logs -t` would have shown: every line the store emitted, in order. */
  followed: LogLine[];
}
const worlds: World[] = [];
const closers: (() => Promise<void> | void)[] = [];

/** A daemon's worth of state, logs and drains; its drains trust the test CA unless told not to. */
function world(opts: DrainOptions = {}, dir?: string, trustTestCa = true): World {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'paas-drains-'));
  const state = openState(d);
  if (!state.apps.exists(app)) state.apps.create(app);
  const logs = new LogStore({ dir: join(d, 'logs') });
  const drains = new DrainManager({
    db: state.db,
    logs,
    drain: { ...(trustTestCa ? { ca: [ca.caCert] } : {}), ...opts },
  });
  drains.start();
  const followed: LogLine[] = [];
  logs.follow(app, {}, (l) => followed.push(l));
  const w = { dir: d, state, logs, drains, followed };
  worlds.push(w);
  return w;
}

function shut(w: World): void {
  w.drains.close();
  w.state.close();
}

afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  for (const w of worlds.splice(0)) {
    shut(w);
    rmSync(w.dir, { recursive: true, force: true });
  }
});

const texts = (ms: Rfc5424[]) => ms.map((m) => m.msg);
/** The drains' buffer in the overflow test: 200 lines of 4 KiB. */
const BUDGET = 200 * 4100;

describe('drain URLs', () => {
  it.each([
    ['http://logs.example.com/in', 'http'],
    ['syslog://logs.example.com:514', 'syslog'],
    ['ftp://logs.example.com:21', 'ftp'],
    ['syslog+udp://logs.example.com:514', 'syslog+udp'],
    ['syslog+tcp://logs.example.com', 'needs a port'],
    ['syslog+tls://u:s3cret@logs.example.com:6514', 'no credentials'],
    ['syslog+tcp://logs.example.com:514/path', 'no path'],
    ['syslog+tcp://logs.example.com:514?x=1', 'no path'],
    ['syslog+tcp://logs.example.com:0', 'out of range'],
    ['syslog+tcp://logs.example.com:70000', 'not a URL'],
    ['https://logs.example.com/in#frag', 'fragment'],
    ['https://bad_host!.example.com/', 'not a host name'],
    ['syslog+tcp://-bad-.example.com:514', 'not a host name'],
    ['https://user:s3cret@exa mple.com/', 'spaces'],
    ['not a url with s3cret', 'spaces'],
    ['nourl:s3cret', 'scheme'],
    ['', 'required'],
  ])('refuses %s with InvalidDrainUrl, without repeating a password', (raw, why) => {
    let err: unknown;
    try {
      parseDrainUrl(raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidDrainUrl);
    expect((err as Error).message).toContain(why);
    expect((err as Error).message).not.toContain('s3cret');
    expect(JSON.stringify((err as InstanceType<typeof InvalidDrainUrl>).details)).not.toContain(
      's3cret',
    );
  });

  it('refuses what is not a string', () => {
    for (const v of [undefined, null, 42, { url: 'https://x.example.com' }])
      expect(() => parseDrainUrl(v)).toThrow(InvalidDrainUrl);
  });

  it('accepts the three kinds and shows them with their secrets hidden', () => {
    expect(parseDrainUrl('syslog+tcp://Logs.Example.com:514')).toMatchObject({
      kind: 'syslog+tcp',
      host: 'logs.example.com',
      port: 514,
      href: 'syslog+tcp://logs.example.com:514',
      redacted: 'syslog+tcp://logs.example.com:514',
    });
    expect(parseDrainUrl('syslog+tls://[::1]:6514/')).toMatchObject({
      kind: 'syslog+tls',
      host: '::1',
      port: 6514,
    });
    const u = parseDrainUrl(
      'https://user:s3cret@logs.example.com:8443/bulk/a1b2c3d4e5f6a7b8c9d0/tag/x?token=hush&app=1',
    );
    expect(u).toMatchObject({ kind: 'https', host: 'logs.example.com', port: 8443 });
    expect(u.href).toContain('s3cret');
    expect(u.redacted).toBe(
      'https://user:***@logs.example.com:8443/bulk/***/tag/x?token=***&app=***',
    );
    expect(parseDrainUrl('https://tok3nlikeusername@h.example.com/').redacted).toBe(
      'https://***@h.example.com/',
    );
  });
});

describe('syslog drains', () => {
  it('ship app, build, router and platform lines as RFC 5424 frames with octet counting, over TCP and TLS', async () => {
    const tcp = await syslogReceiver();
    const tls = await syslogReceiver({ tls: { key: ca.key, cert: ca.cert } });
    closers.push(tcp.close, tls.close);
    const w = world();
    w.drains.add(app, parseDrainUrl(`syslog+tcp://127.0.0.1:${tcp.port}`));
    w.drains.add(app, parseDrainUrl(`syslog+tls://localhost:${tls.port}`));
    w.logs.append(app, { source: 'app', ps: 'web.1', text: 'listening on 5000 — ünïcode' });
    w.logs.append(app, { source: 'build', ps: 'build', text: 'Step 1/3 : FROM node:24-slim' });
    w.logs.append(app, {
      source: 'router',
      text: 'method=GET path="/" host=shop.paas.test status=200',
      ts: '2026-12-02T07:00:00.123Z',
    });
    w.logs.append(app, { source: 'system', text: 'Deploy v3 succeeded' });
    for (const r of [tcp, tls]) {
      await waitFor(
        '4 app lines',
        () => r.messages.filter((m) => m.procId !== 'paas').length >= 3 && r.messages.length >= 5,
      );
      expect(r.errors).toEqual([]);
      const byText = new Map(r.messages.map((m) => [m.msg, m]));
      // The first line a drain hears is its own creation.
      expect(r.messages[0]!.msg).toMatch(/^drain d\.[0-9a-f-]{36} added: syslog\+t(cp|ls):\/\//);
      expect(byText.get('listening on 5000 — ünïcode')).toMatchObject({
        pri: 190,
        facility: 23,
        severity: 6,
        version: 1,
        hostname: 'shop',
        appName: 'app',
        procId: 'web.1',
        msgId: null,
        structuredData: null,
      });
      expect(byText.get('Step 1/3 : FROM node:24-slim')).toMatchObject({
        pri: 190,
        hostname: 'shop',
        appName: 'app',
        procId: 'build',
      });
      expect(byText.get('method=GET path="/" host=shop.paas.test status=200')).toMatchObject({
        pri: 158,
        facility: 19,
        hostname: 'shop',
        appName: 'heroku',
        procId: 'router',
        timestamp: '2026-12-02T07:00:00.123Z',
      });
      expect(byText.get('Deploy v3 succeeded')).toMatchObject({
        pri: 134,
        facility: 16,
        hostname: 'shop',
        appName: 'heroku',
        procId: 'paas',
      });
    }
    expect(w.drains.list(app).map((d) => [d.kind, d.state, d.dropped])).toEqual([
      ['syslog+tcp', 'up', 0],
      ['syslog+tls', 'up', 0],
    ]);
  });

  it('a message is valid RFC 5424 even for a line our strict parser would find hard', () => {
    const m = parseRfc5424(
      syslogMessage('shop', {
        ts: 'not a time',
        source: 'app',
        ps: null,
        text: '[brackets] "quotes" \\ back- slash',
      }),
    );
    expect(m).toMatchObject({ procId: 'run', msg: '[brackets] "quotes" \\ back- slash' });
    expect(Date.parse(m.timestamp!)).toBeGreaterThan(0);
  });

  it('refuses a TLS receiver whose certificate the drain does not trust', async () => {
    const tls = await syslogReceiver({ tls: { key: ca.key, cert: ca.cert } });
    closers.push(tls.close);
    const w = world({ backoffMinMs: 50, backoffMaxMs: 200 }, undefined, false);
    const { drains, logs } = w;
    drains.add(app, parseDrainUrl(`syslog+tls://127.0.0.1:${tls.port}`));
    logs.append(app, { source: 'app', ps: 'web.1', text: 'secret business' });
    const d = await waitFor('a TLS failure', () => {
      const x = drains.list(app)[0]!;
      return x.lastError !== null && x.state === 'down' ? x : null;
    });
    expect(d.lastError).toMatch(/certificate/);
    expect(tls.messages).toEqual([]);
  });

  it('a dead and a stalled drain cost their own lines only: the healthy drain and the log follower get every line, in order, and the drops are reported', async () => {
    const healthy = await syslogReceiver();
    const healthyTls = await syslogReceiver({ tls: { key: ca.key, cert: ca.cert } });
    closers.push(healthyTls.close);
    const stalled = await stalledReceiver();
    const deadPort = await freePort();
    closers.push(healthy.close, stalled.close);
    const w = world({
      bufferBytes: BUDGET,
      firstReportMs: 200,
      reportEveryMs: 60_000,
      backoffMinMs: 50,
      backoffMaxMs: 200,
    });
    const good = w.drains.add(app, parseDrainUrl(`syslog+tcp://127.0.0.1:${healthy.port}`));
    w.drains.add(app, parseDrainUrl(`syslog+tls://127.0.0.1:${healthyTls.port}`));
    const slow = w.drains.add(app, parseDrainUrl(`syslog+tcp://127.0.0.1:${stalled.port}`));
    const dead = w.drains.add(app, parseDrainUrl(`syslog+tcp://127.0.0.1:${deadPort}`));
    // 3000 lines of 4 KiB (12 MiB): more than loopback's socket buffers hold for the stalled
    // receiver. Written in bursts, as an app does, so the healthy receiver can read between them.
    const N = 3000;
    const pad = 'x'.repeat(4096);
    // What a buffer of BUDGET bytes holds of these lines at most.
    const HELD = Math.floor(BUDGET / 4100) + 1;
    // Each healthy drain is connected (it delivered its "drain added" line) before the burst.
    await waitFor('the healthy drains to connect', () =>
      healthy.messages.length > 0 && healthyTls.messages.length > 0 ? true : null,
    );
    for (let i = 0; i < N; i++) {
      w.logs.append(app, { source: 'app', ps: 'web.1', text: `line ${i} ${pad}` });
      // The receivers share this process with the drains: let the healthy ones keep within
      // 100 lines (half what the buffer holds), as a receiver on its own machine would.
      if (i % 50 === 49)
        await waitFor(
          'the healthy receivers to keep up',
          () => Math.min(healthy.messages.length, healthyTls.messages.length) >= i - 100,
          60_000,
          2,
        );
    }
    const sent = (ms: Rfc5424[]) => texts(ms).filter((t) => t.startsWith('line '));
    await waitFor(
      'the healthy drain to get every line',
      () => sent(healthy.messages).length >= N,
      60_000,
    );
    expect(healthy.errors).toEqual([]);
    expect(sent(healthy.messages)).toEqual(Array.from({ length: N }, (_, i) => `line ${i} ${pad}`));
    await waitFor(
      'the healthy TLS drain to get every line',
      () => sent(healthyTls.messages).length >= N,
      60_000,
    );
    expect(healthyTls.errors).toEqual([]);
    expect(sent(healthyTls.messages)).toEqual(sent(healthy.messages));
    // The follower (`paas logs -t`) saw every line, in order, before any drain got it.
    expect(w.followed.filter((l) => l.text.startsWith('line ')).map((l) => l.text)).toEqual(
      Array.from({ length: N }, (_, i) => `line ${i} ${pad}`),
    );
    const stats = () => new Map(w.drains.list(app).map((d) => [d.id, d]));
    await waitFor(
      'drops to be counted',
      () => stats().get(slow.id)!.dropped > 0 && stats().get(dead.id)!.dropped > 0,
    );
    const s = stats();
    expect(s.get(good.id)).toMatchObject({ state: 'up', dropped: 0 });
    expect(s.get(dead.id)).toMatchObject({ state: 'down', delivered: 0 });
    expect(s.get(dead.id)!.lastError).toMatch(/ECONNREFUSED/);
    // Each buffer stays within its bound (frames already handed to a socket aside, ≤ 1 MiB).
    for (const d of s.values()) expect(d.bufferedBytes).toBeLessThanOrEqual(BUDGET);
    expect(s.get(dead.id)!.dropped).toBeGreaterThanOrEqual(N - HELD);
    expect(stalled.connections()).toBeGreaterThanOrEqual(1);
    // The drops show up as platform lines, in the app's log and at the healthy drain.
    const report = (id: string) =>
      new RegExp(
        `^Error L10 \\(drain buffer overflow\\): drain ${id.replace('.', '\\.')} \\(syslog\\+tcp://127\\.0\\.0\\.1:\\d+\\) dropped (\\d+) lines since \\S+$`,
      );
    await waitFor('drop reports', () =>
      [slow.id, dead.id].every((id) =>
        w.logs.tail(app, 50, { source: 'system' }).some((l) => report(id).test(l.text)),
      ),
    );
    await waitFor('the healthy drain to hear the reports', () =>
      [slow.id, dead.id].every((id) =>
        healthy.messages.some(
          (m) => report(id).test(m.msg) && m.appName === 'heroku' && m.procId === 'paas',
        ),
      ),
    );

    // The dead receiver comes up: the drain reconnects, delivers what it held (the newest
    // lines) and says at once how many it lost.
    const back = await syslogReceiver({ port: deadPort });
    closers.push(back.close);
    w.logs.append(app, { source: 'app', ps: 'web.1', text: 'after the outage' });
    await waitFor(
      'the revived drain',
      () => back.messages.some((m) => m.msg === 'after the outage'),
      30_000,
    );
    expect(back.errors).toEqual([]);
    const got = sent(back.messages);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThanOrEqual(HELD);
    expect(got.at(-1)).toBe(`line ${N - 1} ${pad}`);
    // Every line it lost is in a report: the first came while it was down, the rest now.
    const reported = () =>
      w.logs
        .tail(app, 100, { source: 'system' })
        .map((l) => report(dead.id).exec(l.text))
        .reduce((n, m) => n + (m === null ? 0 : Number(m[1])), 0);
    await waitFor(
      'the revived drain to report all its drops',
      () =>
        back.messages.some((m) => report(dead.id).test(m.msg)) &&
        reported() === stats().get(dead.id)!.dropped,
    );
    expect(reported()).toBeGreaterThanOrEqual(N - HELD);
    expect(stats().get(dead.id)!.state).toBe('up');
  });
});

describe('https drains', () => {
  it('POST JSON arrays with Basic auth from the URL, and send a refused batch again', async () => {
    const r = await httpsReceiver({ key: ca.key, cert: ca.cert });
    closers.push(r.close);
    const w = world({ backoffMinMs: 50, backoffMaxMs: 200 });
    r.failNext.push(503, 500);
    const d = w.drains.add(
      app,
      parseDrainUrl(`https://drain:pa%3Ass@localhost:${r.port}/logs?token=t0k`),
    );
    expect(d.url).toBe(`https://drain:***@localhost:${r.port}/logs?token=***`);
    for (let i = 0; i < 20; i++)
      w.logs.append(app, { source: 'app', ps: 'worker.2', text: `job ${i}` });
    w.logs.append(app, { source: 'router', text: 'method=GET status=200' });
    const lines = () => r.batches.flatMap((b) => b.body as DrainJsonLine[]);
    await waitFor(
      'every line',
      () =>
        lines().filter((l) => l.message.startsWith('job ') || l.source === 'router').length >= 21,
    );
    for (const b of r.batches) {
      expect(Array.isArray(b.body)).toBe(true);
      expect(b.headers['content-type']).toBe('application/json');
      expect(b.headers.authorization).toBe(
        `Basic ${Buffer.from('drain:pa:ss').toString('base64')}`,
      );
      expect(Number(b.headers['paas-msg-count'])).toBe((b.body as unknown[]).length);
      expect(b.headers['paas-drain-id']).toBe(d.id);
    }
    const jobs = lines().filter((l) => l.message.startsWith('job '));
    expect(jobs.map((l) => l.message)).toEqual(Array.from({ length: 20 }, (_, i) => `job ${i}`));
    expect(jobs[0]).toMatchObject({ app: 'shop', source: 'app', proc: 'worker.2', drain: d.id });
    expect(Date.parse(jobs[0]!.time)).toBeGreaterThan(0);
    expect(lines().find((l) => l.source === 'router')).toMatchObject({
      proc: 'router',
      message: 'method=GET status=200',
    });
    expect(w.drains.list(app)[0]).toMatchObject({
      state: 'up',
      dropped: 0,
      lastError: 'the receiver answered HTTP 500',
    });
  });

  it('refuse a receiver whose certificate the drain does not trust, and send it nothing', async () => {
    const r = await httpsReceiver({ key: ca.key, cert: ca.cert });
    closers.push(r.close);
    const w = world({ backoffMinMs: 50, backoffMaxMs: 200 }, undefined, false);
    w.drains.add(app, parseDrainUrl(`https://drain:s3cret@localhost:${r.port}/logs`));
    w.logs.append(app, { source: 'app', ps: 'web.1', text: 'secret business' });
    const d = await waitFor('a TLS failure', () => {
      const x = w.drains.list(app)[0]!;
      return x.lastError !== null && x.state === 'down' ? x : null;
    });
    expect(d.lastError).toMatch(/certificate/);
    expect(d.lastError).not.toContain('s3cret');
    expect(r.batches).toEqual([]);
  });
});

describe('drain state', () => {
  it('survives a restart: a new manager on the same state ships to the same drains', async () => {
    const r = await syslogReceiver();
    closers.push(r.close);
    const w = world();
    const d = w.drains.add(app, parseDrainUrl(`syslog+tcp://127.0.0.1:${r.port}`));
    shut(w);
    worlds.splice(worlds.indexOf(w), 1);
    const w2 = world({}, w.dir);
    expect(w2.drains.list(app).map((x) => x.id)).toEqual([d.id]);
    w2.logs.append(app, { source: 'app', ps: 'web.1', text: 'after restart' });
    await waitFor('the line', () => r.messages.some((m) => m.msg === 'after restart'));
  });

  it('refuses a duplicate, a sixth drain and an unknown one with typed errors, changing nothing', () => {
    const w = world();
    w.drains.add(app, parseDrainUrl('syslog+tcp://127.0.0.1:9'));
    expect(() => w.drains.add(app, parseDrainUrl('syslog+tcp://127.0.0.1:9'))).toThrow(DrainExists);
    for (let p = 10; p < 14; p++) w.drains.add(app, parseDrainUrl(`syslog+tcp://127.0.0.1:${p}`));
    expect(() => w.drains.add(app, parseDrainUrl('syslog+tcp://127.0.0.1:14'))).toThrow(
      DrainExists,
    );
    expect(() => w.drains.remove(app, 'syslog+tcp://127.0.0.1:99')).toThrow(DrainNotFound);
    expect(() => w.drains.remove(app, 'd.nope')).toThrow(DrainNotFound);
    expect(w.drains.list(app)).toHaveLength(5);
    const first = w.drains.list(app)[0]!;
    w.drains.remove(app, 'syslog+tcp://127.0.0.1:9');
    w.drains.remove(app, w.drains.list(app)[0]!.id);
    expect(w.drains.list(app).map((x) => x.url)).not.toContain(first.url);
    expect(w.drains.list(app)).toHaveLength(3);
  });

  it('an app destroyed takes its drains with it; a new app of the same name has none', () => {
    const w = world();
    w.drains.add(app, parseDrainUrl('syslog+tcp://127.0.0.1:9'));
    w.state.apps.destroy(app);
    w.drains.forgetApp(app);
    w.state.apps.create(app);
    expect(w.drains.list(app)).toEqual([]);
  });
});
