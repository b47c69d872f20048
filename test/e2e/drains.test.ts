// Log drains, the operator's story: drains are added to an app before its first push, with the
// real CLI against a real daemon; the push, the app's output, the router's access lines and
// the platform's own lines reach a syslog receiver over TCP and one over TLS (a CA made with
// openssl, trusted with --drain-ca), each frame checked by a strict RFC 6587/5424 parser. A
// receiver that accepts and never reads and one that is not there at all cost their own lines
// only: the app keeps answering, `paas logs` and the healthy drains get every line in order,
// and the drops are reported in the app's log. An HTTPS receiver gets JSON batches. Drains
// survive a daemon restart; a malformed URL is refused with a typed error and changes nothing.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DrainEntry } from '../../src/api/index.ts';
import type { DrainJsonLine } from '../../src/logs/index.ts';
import {
  httpsReceiver,
  stalledReceiver,
  syslogReceiver,
  testCa,
  type HttpsReceiver,
  type Rfc5424,
  type SyslogReceiver,
} from '../helpers/drains.ts';
import { waitFor } from '../helpers/host.ts';
import { appRepo, cli, freePort, get, push, startPaas, type Paas } from './harness.ts';

const APP = 'chatty';
const BURST = 4000;
const BUDGET = 6 * 1024 * 1024;
let p: Paas;
let ca: ReturnType<typeof testCa>;
let tcp: SyslogReceiver;
let tls: SyslogReceiver;
let https: HttpsReceiver;
let stalled: Awaited<ReturnType<typeof stalledReceiver>>;
let deadPort: number;
let repoDir = '';

beforeAll(async () => {
  ca = testCa();
  tcp = await syslogReceiver();
  tls = await syslogReceiver({ tls: { key: ca.key, cert: ca.cert } });
  https = await httpsReceiver({ key: ca.key, cert: ca.cert });
  stalled = await stalledReceiver();
  deadPort = await freePort();
  // 6 MiB of buffer per drain: more than the collector hands over at once (4 MiB), less than
  // the app's 16 MiB burst minus what the stalled receiver's kernel buffers take (~4 MiB).
  p = await startPaas({ daemonArgs: ['--drain-ca', ca.caPath, '--drain-buffer', '6m'] });
});

afterAll(async () => {
  await p?.cleanup();
  for (const r of [tcp, tls, https, stalled]) await r?.close();
  ca?.cleanup();
  if (repoDir !== '') rmSync(repoDir, { recursive: true, force: true });
});

const paas = (...args: string[]) => cli(p, args);
async function drains(): Promise<Map<string, DrainEntry>> {
  const r = await paas('drains', APP, '--json');
  expect(r.code, r.stderr).toBe(0);
  return new Map((JSON.parse(r.stdout) as DrainEntry[]).map((d) => [d.url, d]));
}
const burstLines = (msgs: Rfc5424[]) =>
  msgs.filter((m) => m.procId === 'web.1' && /^burst \d+ /.test(m.msg)).map((m) => m.msg);

describe('log drains', () => {
  it('a malformed drain URL is refused with a typed error and changes nothing', async () => {
    expect((await paas('apps:create', APP)).code).toBe(0);
    for (const bad of [
      'http://user:s3cret@logs.example.com/in',
      'syslog+tcp://logs.example.com',
      'syslog+tls://u:s3cret@logs.example.com:6514',
      'not a url',
    ]) {
      const r = await paas('drains:add', APP, bad);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/invalid drain URL/);
      expect(r.stderr).not.toContain('s3cret');
    }
    // The daemon refuses it too (a client that skips the CLI's check), with the error's code.
    const res = await fetch(`http://127.0.0.1:${p.apiPort}/api/apps/${APP}/drains`, {
      method: 'POST',
      headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'ftp://user:s3cret@logs.example.com/' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('InvalidDrainUrl');
    expect(JSON.stringify(body)).not.toContain('s3cret');
    expect((await paas('drains:add', 'nosuchapp', `syslog+tcp://127.0.0.1:${tcp.port}`)).code).toBe(
      3,
    );
    expect((await drains()).size).toBe(0);
    expect(p.daemonLog()).not.toContain('s3cret');
  }, 120_000);

  it('ships the build, the app, the router and the platform to syslog over TCP and TLS', async () => {
    for (const url of [
      `syslog+tcp://127.0.0.1:${tcp.port}`,
      `syslog+tls://localhost:${tls.port}`,
      `syslog+tcp://127.0.0.1:${stalled.port}`,
      `syslog+tcp://127.0.0.1:${deadPort}`,
    ]) {
      const r = await paas('drains:add', APP, url);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/ \(d\.[0-9a-f-]{36}\)\n$/);
    }
    expect((await paas('drains:add', APP, `syslog+tcp://127.0.0.1:${tcp.port}`)).code).toBe(5);

    const repo = appRepo('drain-chatty');
    repoDir = repo.dir;
    const pushed = await push(p, repo.dir, APP);
    expect(pushed.code, pushed.stderr).toBe(0);
    // Requests keep being answered while one drain is stalled and one is dead.
    for (let i = 0; i < 5; i++) expect((await get(p, APP, '/')).status).toBe(200);

    for (const r of [tcp, tls]) {
      await waitFor(
        'the router line and the end of the burst',
        () =>
          r.messages.some((m) => m.procId === 'router') &&
          r.messages.some((m) => m.msg === 'burst done'),
        120_000,
        250,
      );
      expect(r.errors).toEqual([]);
      for (const m of r.messages) expect(m.hostname).toBe(APP);
      const build = r.messages.filter((m) => m.procId === 'build');
      expect(build.length).toBeGreaterThan(0);
      expect(build.every((m) => m.appName === 'app' && m.pri === 190)).toBe(true);
      expect(build.some((m) => /FROM busybox/.test(m.msg))).toBe(true);
      expect(r.messages.find((m) => m.msg === `listening on 5000`)).toMatchObject({
        appName: 'app',
        procId: 'web.1',
        pri: 190,
      });
      const router = r.messages.filter((m) => m.procId === 'router');
      expect(router[0]).toMatchObject({ appName: 'heroku', pri: 158 });
      expect(router[0]!.msg).toMatch(/method=GET path="\/".* status=200 /);
      const platform = r.messages.filter((m) => m.procId === 'paas');
      expect(platform.every((m) => m.appName === 'heroku' && m.pri === 134)).toBe(true);
      expect(
        platform.some((m) => /drain d\..* added: syslog\+tcp:\/\/127\.0\.0\.1:/.test(m.msg)),
      ).toBe(true);
    }

    // `paas logs` holds every burst line in order, and the healthy drains the same lines.
    const logged = (await paas('logs', APP, '-n', '100000', '--source', 'app')).stdout
      .split('\n')
      .map((l) => /^\S+ app\[web\.1\]: (burst \d+ .*)$/.exec(l)?.[1])
      .filter((x): x is string => x !== undefined);
    // (Compared by number, after checking every line whole, so a failure prints little.)
    const numbers = (ls: string[]) =>
      ls.map((l) => (/^burst (\d+) x{4000}$/.exec(l) ?? ['', 'malformed'])[1]).join(',');
    // The collector can miss output past the runtime log's rotation when the box is very busy
    // (seen at load 20: a 16 MiB burst against 8 MiB generations); that is the log store's
    // to fix. What is asserted here is the drains': every line the app's log has, in order.
    expect(logged.length).toBeGreaterThan(BURST / 2);
    expect(logged[0]).toMatch(/^burst 0 x{4000}$/);
    expect(numbers(burstLines(tcp.messages))).toBe(numbers(logged));
    expect(numbers(burstLines(tls.messages))).toBe(numbers(logged));

    // The stalled and the dead drain lost lines, and the app's log says how many.
    const report =
      /^Error L10 \(drain buffer overflow\): drain d\.\S+ \((syslog\+tcp:\/\/127\.0\.0\.1:(\d+))\) dropped (\d+) lines since \S+$/;
    const reports = await waitFor(
      'drop reports for the stalled and the dead drain',
      async () => {
        const lines = (await paas('logs', APP, '-n', '500', '--source', 'system')).stdout
          .split('\n')
          .map((l) => report.exec(l.replace(/^\S+ paas: /, '')))
          .filter((m) => m !== null);
        const ports = new Set(lines.map((m) => Number(m[2])));
        return ports.has(stalled.port) && ports.has(deadPort) ? lines : null;
      },
      60_000,
      500,
    );
    expect(reports.every((m) => Number(m[3]) > 0)).toBe(true);
    expect(reports.some((m) => Number(m[2]) === tcp.port || Number(m[2]) === tls.port)).toBe(false);
    const d = await drains();
    expect(d.get(`syslog+tcp://127.0.0.1:${tcp.port}`)).toMatchObject({ state: 'up', dropped: 0 });
    expect(d.get(`syslog+tls://localhost:${tls.port}`)).toMatchObject({ state: 'up', dropped: 0 });
    expect(d.get(`syslog+tcp://127.0.0.1:${stalled.port}`)!.dropped).toBeGreaterThan(0);
    const dead = d.get(`syslog+tcp://127.0.0.1:${deadPort}`)!;
    expect(dead).toMatchObject({ state: 'down', delivered: 0 });
    expect(dead.dropped).toBeGreaterThanOrEqual(logged.length - Math.ceil(BUDGET / 4000));
    expect(dead.lastError).toMatch(/ECONNREFUSED/);
    for (const x of d.values()) expect(x.bufferedBytes).toBeLessThanOrEqual(BUDGET);
    // The healthy drains hear the reports too, as platform lines.
    await waitFor('the reports at the TCP receiver', () =>
      tcp.messages.some((m) => m.procId === 'paas' && report.test(m.msg)),
    );
  }, 400_000);

  it('posts JSON batches to an HTTPS drain, its credentials never shown', async () => {
    const url = `https://drain:s3cret@localhost:${https.port}/logs?token=t0ps3cret`;
    const r = await paas('drains:add', APP, url);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('s3cret');
    const listed = await paas('drains', APP);
    expect(listed.stdout).toContain(`https://drain:***@localhost:${https.port}/logs?token=***`);
    expect(listed.stdout).not.toContain('s3cret');
    expect(p.daemonLog()).not.toContain('s3cret');

    expect((await get(p, APP, '/index.html')).status).toBe(200);
    const lines = () => https.batches.flatMap((b) => b.body as DrainJsonLine[]);
    await waitFor(
      'the router line over HTTPS',
      () => lines().some((l) => l.source === 'router' && l.message.includes('path="/index.html"')),
      30_000,
    );
    for (const b of https.batches) {
      expect(Array.isArray(b.body)).toBe(true);
      expect(b.headers.authorization).toBe(
        `Basic ${Buffer.from('drain:s3cret').toString('base64')}`,
      );
    }
    expect(lines().find((l) => l.source === 'router')).toMatchObject({ app: APP, proc: 'router' });
    expect(lines().find((l) => l.source === 'system')!.message).toMatch(
      /^drain d\.\S+ added: https:\/\/drain:\*\*\*@/,
    );
  }, 120_000);

  it('drains survive a daemon restart, and drains:remove takes a URL or an id', async () => {
    const before = await drains();
    await p.stop();
    await p.start();
    const after = await drains();
    expect([...after.values()].map((d) => [d.id, d.url])).toEqual(
      [...before.values()].map((d) => [d.id, d.url]),
    );
    const seen = tcp.messages.length;
    expect((await get(p, APP, '/after-restart')).status).toBe(404);
    await waitFor(
      'a router line after the restart',
      () =>
        tcp.messages
          .slice(seen)
          .some((m) => m.procId === 'router' && m.msg.includes('path="/after-restart"')),
      30_000,
    );

    expect((await paas('drains:remove', APP, `syslog+tcp://127.0.0.1:${deadPort}`)).code).toBe(0);
    const stalledId = after.get(`syslog+tcp://127.0.0.1:${stalled.port}`)!.id;
    expect((await paas('drains:remove', APP, stalledId)).code).toBe(0);
    expect((await paas('drains:remove', APP, stalledId)).code).toBe(3);
    expect([...(await drains()).keys()].sort()).toEqual(
      [
        `syslog+tcp://127.0.0.1:${tcp.port}`,
        `syslog+tls://localhost:${tls.port}`,
        `https://drain:***@localhost:${https.port}/logs?token=***`,
      ].sort(),
    );
  }, 180_000);
});
