// The checks a new process passes before it gets traffic (ARCHITECTURE.md's zero-downtime
// deploy). In order of precedence: app.json `healthchecks.<type>` startup checks (Dokku's
// fields: path, content, command, uptime, attempts, timeout, wait, initialDelay), the image's
// HEALTHCHECK (Docker's CMD / CMD-SHELL), else for web the default: its port accepts TCP and
// answers HTTP within the start timeout; other types must still be running a moment later.
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import type { Release } from '../apps/index.ts';
import { DeployFailed, type PaasError } from '../errors/index.ts';
import type { Healthcheck } from '../registry/index.ts';
import type { ContainerInfo, ExitStatus } from '../runtime/index.ts';
import type { ProcessDeps } from './types.ts';

// node:http through require, not `import`: Node's ESM view of node:http reads every export,
// and three (WebSocket, CloseEvent, MessageEvent) load Node's bundled undici, ~10 MB resident
// that the daemon never uses (README: Footprint; test/lazy-imports.test.ts).
const { request } = createRequire(import.meta.url)('node:http') as typeof Http;

export type Probe =
  | { kind: 'http'; path: string; content?: string; port?: number }
  | { kind: 'default' }
  | { kind: 'exec'; argv: string[] }
  | { kind: 'uptime'; seconds: number };

export interface HealthCheck {
  name: string;
  probe: Probe;
  attempts: number;
  timeoutMs: number;
  waitMs: number;
  initialDelayMs: number;
}

/** The process under check: its container and its $PORT. */
export interface Checked {
  id: string;
  type: string;
  n: number;
  port: number;
}

// Dokku's documented defaults for a startup check.
const DOKKU = { attempts: 5, timeout: 5, wait: 5, initialDelay: 0 };

function num(v: unknown, dflt: number, field: string, min = 0): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
    throw new DeployFailed(`app.json healthchecks: "${field}" must be a number ≥ ${min}`, {
      step: 'check',
    });
  return v;
}

/** app.json `healthchecks[type]`: the startup checks (liveness/readiness are not run at deploy). */
export function parseAppJsonChecks(raw: unknown, type: string): HealthCheck[] | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new DeployFailed(
      'app.json healthchecks must be an object of process type → list of checks',
      { step: 'check' },
    );
  const list = (raw as Record<string, unknown>)[type];
  if (list === undefined) return null;
  if (!Array.isArray(list))
    throw new DeployFailed(`app.json healthchecks.${type} must be a list`, { step: 'check' });
  const out: HealthCheck[] = [];
  for (const [i, c] of list.entries()) {
    if (c === null || typeof c !== 'object')
      throw new DeployFailed(`app.json healthchecks.${type}[${i}] must be an object`, {
        step: 'check',
      });
    const o = c as Record<string, unknown>;
    if (o.type !== undefined && o.type !== 'startup') continue;
    let probe: Probe;
    if (typeof o.path === 'string') {
      if (!o.path.startsWith('/'))
        throw new DeployFailed(`app.json healthchecks.${type}[${i}].path must start with /`, {
          step: 'check',
        });
      probe = {
        kind: 'http',
        path: o.path,
        content: typeof o.content === 'string' ? o.content : undefined,
        port: o.port === undefined ? undefined : num(o.port, 0, 'port', 1),
      };
    } else if (
      Array.isArray(o.command) &&
      o.command.length > 0 &&
      o.command.every((a) => typeof a === 'string')
    ) {
      probe = { kind: 'exec', argv: o.command as string[] };
    } else if (typeof o.command === 'string') {
      probe = { kind: 'exec', argv: ['/bin/sh', '-c', o.command] };
    } else if (o.uptime !== undefined) {
      probe = { kind: 'uptime', seconds: num(o.uptime, 0, 'uptime') };
    } else if (o.listening === true) {
      probe = { kind: 'default' };
    } else {
      throw new DeployFailed(
        `app.json healthchecks.${type}[${i}] needs one of path, command, uptime or listening`,
        { step: 'check' },
      );
    }
    out.push({
      name: typeof o.name === 'string' ? o.name : `${type} check ${i + 1}`,
      probe,
      attempts: Math.max(1, Math.floor(num(o.attempts, DOKKU.attempts, 'attempts', 1))),
      timeoutMs: num(o.timeout, DOKKU.timeout, 'timeout') * 1000,
      waitMs: num(o.wait, DOKKU.wait, 'wait') * 1000,
      initialDelayMs: num(o.initialDelay, DOKKU.initialDelay, 'initialDelay') * 1000,
    });
  }
  return out;
}

/** The image's HEALTHCHECK (durations in ns, as in the image config) as a startup gate. */
export function imageCheck(hc: Healthcheck | undefined): HealthCheck | null {
  if (hc === undefined || hc.Test.length === 0 || hc.Test[0] === 'NONE') return null;
  const [kind, ...rest] = hc.Test;
  const argv =
    kind === 'CMD-SHELL' ? ['/bin/sh', '-c', rest.join(' ')] : kind === 'CMD' ? rest : null;
  if (argv === null || argv.length === 0) return null;
  const ms = (ns: number | undefined) => (ns === undefined || ns === 0 ? undefined : ns / 1e6);
  // Until the first success, Docker probes at StartInterval during StartPeriod; a deploy is
  // that start phase, so probe each second (or StartInterval) for the period plus the retries.
  const waitMs = ms(hc.StartInterval) ?? Math.min(ms(hc.Interval) ?? 30_000, 1000);
  const retries = hc.Retries === undefined || hc.Retries === 0 ? 3 : hc.Retries;
  return {
    name: 'image HEALTHCHECK',
    probe: { kind: 'exec', argv },
    waitMs,
    initialDelayMs: 0,
    timeoutMs: ms(hc.Timeout) ?? 30_000,
    attempts: retries + Math.ceil((ms(hc.StartPeriod) ?? 0) / waitMs),
  };
}

/** What a process of `type` must pass; `startTimeoutMs` bounds the default web check. */
export function checksFor(
  release: Release,
  type: string,
  healthcheck: Healthcheck | undefined,
  startTimeoutMs: number,
): HealthCheck[] {
  const fromJson = parseAppJsonChecks(release.appJson.healthchecks, type);
  if (fromJson !== null && fromJson.length > 0) return fromJson;
  const img = imageCheck(healthcheck);
  if (img !== null) return [img];
  if (type === 'web')
    return [
      {
        name: 'default',
        probe: { kind: 'default' },
        attempts: Math.max(1, Math.ceil(startTimeoutMs / 200)),
        timeoutMs: 2000,
        waitMs: 200,
        initialDelayMs: 0,
      },
    ];
  return [
    {
      name: 'default',
      probe: { kind: 'uptime', seconds: 1 },
      attempts: 1,
      timeoutMs: 0,
      waitMs: 0,
      initialDelayMs: 0,
    },
  ];
}

export function describeExit(exit: ExitStatus | null): string {
  if (exit === null) return 'exited';
  if (exit.oomKilled) return 'was killed: out of memory (OOM)';
  if (exit.signal !== null) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.exitCode}`;
}

export function lastOutput(logPath: string, n = 5): string {
  try {
    const lines = readFileSync(logPath, 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-n)
      .map((l) => l.replace(/^\S+ (stdout|stderr) ?/, ''));
    return lines.length > 0 && lines[0] !== ''
      ? `; its last output:\n${lines.map((l) => `  ${l.slice(0, 300)}`).join('\n')}`
      : '';
  } catch {
    return '';
  }
}

/**
 * Runs the checks in order; each passes on its first successful attempt. Throws DeployFailed
 * naming the check, its last reason and the process's last output lines; a process that exits
 * fails at once, with how it ended in `details.exited` (the supervisor logs that as the crash).
 */
export async function runChecks(
  deps: ProcessDeps,
  p: Checked,
  checks: readonly HealthCheck[],
  onInfo?: (line: string) => void,
): Promise<void> {
  const startedAt = Date.now();
  for (const c of checks) {
    if (c.initialDelayMs > 0) await sleep(c.initialDelayMs);
    let reason = '';
    let ok = false;
    for (let attempt = 1; attempt <= c.attempts && !ok; attempt++) {
      const info = await deps.runtime.inspect(p.id);
      if (info.state !== 'running') throw exitedDuring(p, c, info);
      reason = await probe(deps, info, p, c, startedAt);
      ok = reason === '';
      if (!ok && c.name !== 'default')
        onInfo?.(`${p.type}.${p.n}: ${c.name} attempt ${attempt}/${c.attempts}: ${reason}`);
      if (!ok && attempt < c.attempts) await sleep(c.waitMs);
    }
    if (!ok) {
      const info = await deps.runtime.inspect(p.id).catch(() => null);
      // A process that ended during the last attempt failed by ending, not by the probe.
      if (info !== null && info.state !== 'running') throw exitedDuring(p, c, info);
      const what =
        c.name === 'default'
          ? `${p.type}.${p.n} did not answer HTTP on port ${p.port} within ${Math.round((Date.now() - startedAt) / 1000)}s (does it listen on $PORT?): ${reason}`
          : `health check "${c.name}" of ${p.type}.${p.n} failed after ${c.attempts} attempt${c.attempts === 1 ? '' : 's'}: ${reason}`;
      throw new DeployFailed(`${what}${info === null ? '' : lastOutput(info.logPath)}`, {
        step: 'check',
      });
    }
  }
}

/** A process that ended before it passed check `c`: how it ended, and when. */
function exitedDuring(p: Checked, c: HealthCheck, info: ContainerInfo): PaasError {
  let before: string;
  if (c.name !== 'default') before = `passed its health check "${c.name}"`;
  else if (c.probe.kind === 'uptime') before = `stayed up for ${c.probe.seconds}s`;
  else before = `accepted connections on port ${p.port}`;
  const exited = `${describeExit(info.exit)} before it ${before}`;
  return new DeployFailed(`${p.type}.${p.n} ${exited}${lastOutput(info.logPath)}`, {
    step: 'check',
    exitCode: info.exit?.exitCode ?? null,
    exited,
  });
}

async function probe(
  deps: ProcessDeps,
  info: ContainerInfo,
  p: Checked,
  c: HealthCheck,
  startedAt: number,
): Promise<string> {
  const pr = c.probe;
  switch (pr.kind) {
    case 'uptime': {
      const left = startedAt + pr.seconds * 1000 - Date.now();
      if (left > 0) await sleep(left);
      const now = await deps.runtime.inspect(p.id);
      return now.state === 'running' ? '' : `${describeExit(now.exit)} within ${pr.seconds}s`;
    }
    case 'exec': {
      const r = await withTimeout(deps.runtime.exec(p.id, { command: pr.argv }), c.timeoutMs);
      if (r === null) return `${pr.argv.join(' ')} did not finish within ${c.timeoutMs / 1000}s`;
      return r.exitCode === 0
        ? ''
        : `${pr.argv.join(' ')} exited with code ${r.exitCode}${(r.stdout + r.stderr).trim() === '' ? '' : `: ${(r.stdout + r.stderr).trim().slice(-300)}`}`;
    }
    case 'http':
    case 'default': {
      if (info.ip === null) return 'the process has no IP address';
      const port = pr.kind === 'http' ? (pr.port ?? p.port) : p.port;
      const path = pr.kind === 'http' ? pr.path : '/';
      const r = await httpGet(info.ip, port, path, c.timeoutMs, `${deps.domain}`);
      if ('error' in r) return r.error;
      // Any answer counts for the default check; a configured path wants Dokku's 2xx/3xx.
      if (pr.kind === 'default') return '';
      if (r.status >= 400) return `GET ${path} answered ${r.status}`;
      if (pr.content !== undefined && !r.body.includes(pr.content))
        return `GET ${path} answered ${r.status} without "${pr.content}"`;
      return '';
    }
  }
}

function httpGet(
  host: string,
  port: number,
  path: string,
  timeoutMs: number,
  hostHeader: string,
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        path,
        headers: { host: hostHeader, 'user-agent': 'paas-healthcheck' },
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 65536) body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (e) => resolve({ error: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)));
    req.on('error', (e) =>
      resolve({
        error:
          (e as NodeJS.ErrnoException).code === 'ECONNREFUSED'
            ? `connection refused on port ${port}`
            : e.message,
      }),
    );
    req.end();
  });
}

/** TCP accept only (kept for callers that must not send a request). */
export function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    p,
    new Promise<null>((res) => {
      t = setTimeout(() => res(null), ms);
    }),
  ]);
  clearTimeout(t);
  return r;
}
