// Automatic certificates (`certs:auto`): which apps have them, and the daemon's scheduler that
// orders a certificate for each custom domain that has none and renews one `renewBeforeMs`
// before it expires (30 days, as certbot and Caddy do for 90-day certificates). A failed order
// backs off exponentially per host and leaves whatever served the host serving: a certificate
// is only ever replaced by a newer one, never by nothing. State lives in <dataDir>/acme/auto.json,
// so a restarted daemon keeps the apps, the backoff and the errors.
import { mkdirSync, readFileSync } from 'node:fs';
import type { CertSink } from './store.ts';
import { writeFileWhole } from '../files/index.ts';
import { acmePaths, type IssuedCertificate } from './acme.ts';
import type { ChallengePort } from './challenges.ts';

export const DEFAULT_RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
export const DEFAULT_CHECK_EVERY_MS = 3600 * 1000;
/** First retry 5 minutes after a failure, doubling up to a day (Let's Encrypt's failed-validation limit is per hour). */
export const DEFAULT_BACKOFF = { minMs: 5 * 60 * 1000, maxMs: 24 * 3600 * 1000 };

/** The store (CertStore): CertSink, plus the plain `auto` field `certs APP` shows per host. */
export type AutoSink = CertSink & {
  setAuto?(app: string, host: string, auto: string | null): void;
};

/** What orders certificates: AcmeAccount, in the daemon. */
export interface Issuer {
  order(host: string, port: ChallengePort, email?: string): Promise<IssuedCertificate>;
}

export interface AutoCertsOptions {
  dataDir: string;
  issuer: Issuer;
  challenges: ChallengePort;
  sink: AutoSink;
  /** The app's custom domains now; empty once the app is gone. */
  domains(app: string): readonly string[];
  renewBeforeMs?: number;
  checkEveryMs?: number;
  backoff?: { minMs: number; maxMs: number };
  log?(msg: string, extra?: Record<string, unknown>): void;
  now?(): number;
}

interface HostState {
  app: string;
  failures: number;
  /** Epoch ms before which no order is tried again (backoff), or null. */
  retryAt: number | null;
  lastError: string | null;
}

interface AutoState {
  apps: Record<string, { email: string | null; since: string }>;
  hosts: Record<string, HostState>;
}

export type HostOutcome =
  | { host: string; status: 'issued' | 'valid'; notAfter: string }
  | { host: string; status: 'failed'; error: string; retryAt: string }
  | { host: string; status: 'waiting'; error: string | null; retryAt: string }
  | { host: string; status: 'skipped'; reason: string };

export interface AutoStatus {
  enabled: boolean;
  email: string | null;
  hosts: { host: string; failures: number; retryAt: string | null; lastError: string | null }[];
}

export class AutoCerts {
  private readonly o: Required<Omit<AutoCertsOptions, 'log'>> & Pick<AutoCertsOptions, 'log'>;
  private state: AutoState;
  private timer: NodeJS.Timeout | null = null;
  /** Orders run one at a time: a tick and a `certs:auto` never order the same host twice. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: AutoCertsOptions) {
    this.o = {
      renewBeforeMs: DEFAULT_RENEW_BEFORE_MS,
      checkEveryMs: DEFAULT_CHECK_EVERY_MS,
      backoff: DEFAULT_BACKOFF,
      now: Date.now,
      ...opts,
    };
    this.state = this.load();
  }

  /** Check now, then every `checkEveryMs`, until stop(). */
  start(): void {
    if (this.timer !== null) return;
    const run = (): void =>
      void this.tick().catch((e: unknown) =>
        this.o.log?.('automatic certificates: check failed', { err: String(e) }),
      );
    this.timer = setInterval(run, this.o.checkEveryMs);
    this.timer.unref();
    run();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Wait for the order in progress, if any (tests, shutdown). */
  idle(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  /**
   * `certs:auto APP`: turn automatic certificates on and order now for every domain that
   * needs one, ignoring any backoff (the operator asked for it now).
   */
  enable(app: string, email?: string): Promise<HostOutcome[]> {
    const prev = this.state.apps[app];
    this.state.apps[app] = {
      email: email ?? prev?.email ?? null,
      since: prev?.since ?? new Date(this.o.now()).toISOString(),
    };
    for (const h of Object.values(this.state.hosts)) if (h.app === app) h.retryAt = null;
    this.save();
    return this.serial(() => this.runApp(app));
  }

  /**
   * A domain was added to `app`: if it has automatic certificates, order for what is missing
   * now, in the background, rather than at the next check.
   */
  refresh(app: string): void {
    if (this.state.apps[app] === undefined) return;
    this.serial(() => this.runApp(app)).catch((e: unknown) =>
      this.o.log?.('automatic certificates: order failed', { app, err: String(e) }),
    );
  }

  /** `certs:auto APP --off`: stop ordering; certificates already issued keep serving. */
  disable(app: string): void {
    delete this.state.apps[app];
    for (const [host, h] of Object.entries(this.state.hosts))
      if (h.app === app) delete this.state.hosts[host];
    for (const host of this.o.domains(app)) this.mark(app, host, null);
    this.save();
  }

  status(app: string): AutoStatus {
    const a = this.state.apps[app];
    return {
      enabled: a !== undefined,
      email: a?.email ?? null,
      hosts: Object.entries(this.state.hosts)
        .filter(([, h]) => h.app === app)
        .map(([host, h]) => ({
          host,
          failures: h.failures,
          retryAt: h.retryAt === null ? null : new Date(h.retryAt).toISOString(),
          lastError: h.lastError,
        })),
    };
  }

  /** One pass over every app with automatic certificates: order what is missing or due. */
  tick(): Promise<Record<string, HostOutcome[]>> {
    return this.serial(async () => {
      const out: Record<string, HostOutcome[]> = {};
      for (const app of Object.keys(this.state.apps)) out[app] = await this.runApp(app);
      return out;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runApp(app: string): Promise<HostOutcome[]> {
    const entry = this.state.apps[app];
    if (entry === undefined) return [];
    const hosts = this.o.domains(app);
    // Domains removed from the app take their backoff and errors with them.
    for (const [host, h] of Object.entries(this.state.hosts))
      if (h.app === app && !hosts.includes(host)) delete this.state.hosts[host];
    const out: HostOutcome[] = [];
    for (const host of hosts) out.push(await this.runHost(app, host, entry.email ?? undefined));
    this.save();
    return out;
  }

  private async runHost(
    app: string,
    host: string,
    email: string | undefined,
  ): Promise<HostOutcome> {
    const now = this.o.now();
    if (host.startsWith('*.'))
      return {
        host,
        status: 'skipped',
        reason: 'a wildcard needs a DNS-01 challenge; add its certificate with certs:add',
      };
    const cur = this.o.sink.current(host);
    if (cur !== null && cur.source === 'manual')
      return { host, status: 'skipped', reason: "an operator's certificate serves it" };
    if (cur !== null && cur.notAfter.getTime() - now > this.o.renewBeforeMs)
      return { host, status: 'valid', notAfter: cur.notAfter.toISOString() };
    const h = (this.state.hosts[host] ??= { app, failures: 0, retryAt: null, lastError: null });
    h.app = app;
    if (h.retryAt !== null && h.retryAt > now)
      return {
        host,
        status: 'waiting',
        error: h.lastError,
        retryAt: new Date(h.retryAt).toISOString(),
      };
    try {
      const issued = await this.o.issuer.order(host, this.o.challenges, email);
      await this.o.sink.install(app, host, { cert: issued.cert, key: issued.key }, 'auto');
      h.failures = 0;
      h.retryAt = null;
      h.lastError = null;
      this.note(app, host, null);
      this.mark(app, host, `on: renews from ${this.renewsFrom(issued.notAfter)}`);
      this.o.log?.('certificate issued', { app, host, notAfter: issued.notAfter.toISOString() });
      return { host, status: 'issued', notAfter: issued.notAfter.toISOString() };
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      h.failures += 1;
      const wait = Math.min(
        this.o.backoff.maxMs,
        this.o.backoff.minMs * 2 ** Math.min(h.failures - 1, 30),
      );
      h.retryAt = this.o.now() + wait;
      h.lastError = message;
      // What served the host (if anything) keeps serving; the error is shown beside it.
      this.note(app, host, message);
      this.mark(
        app,
        host,
        `on: ${h.failures} failed order${h.failures === 1 ? '' : 's'}, next try after ${new Date(h.retryAt).toISOString()}`,
      );
      this.o.log?.('certificate order failed', { app, host, failures: h.failures, err: message });
      return { host, status: 'failed', error: message, retryAt: new Date(h.retryAt).toISOString() };
    }
  }

  private renewsFrom(notAfter: Date): string {
    return new Date(notAfter.getTime() - this.o.renewBeforeMs).toISOString();
  }

  /**
   * The store refuses a host another app holds a certificate for (Conflict); that must not
   * stop the pass over the other hosts, and the order's outcome already says what happened.
   */
  private note(app: string, host: string, message: string | null): void {
    try {
      this.o.sink.recordError(app, host, message);
    } catch (e) {
      this.o.log?.('could not record the order outcome', { app, host, err: String(e) });
    }
  }

  private mark(app: string, host: string, auto: string | null): void {
    try {
      this.o.sink.setAuto?.(app, host, auto);
    } catch (e) {
      this.o.log?.('could not record the auto state', { app, host, err: String(e) });
    }
  }

  private load(): AutoState {
    try {
      const s = JSON.parse(readFileSync(acmePaths(this.o.dataDir).auto, 'utf8')) as AutoState;
      return { apps: s.apps ?? {}, hosts: s.hosts ?? {} };
    } catch {
      return { apps: {}, hosts: {} };
    }
  }

  private save(): void {
    mkdirSync(acmePaths(this.o.dataDir).dir, { recursive: true, mode: 0o700 });
    writeFileWhole(acmePaths(this.o.dataDir).auto, `${JSON.stringify(this.state, null, 2)}\n`, {
      mode: 0o600,
      fsync: true,
    });
  }
}
