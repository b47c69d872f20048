// The `haproxy` data plane: Debian's haproxy, one process without a master, detached from the
// daemon like the node router, so it outlives it. The daemon writes haproxy.cfg from the route table
// (one backend per app, with server slots, and spare backends) and then changes only what the
// runtime socket can change: server addresses, ready/maint states and the maps (hosts, app →
// backend, body limits). A deploy, a new app (it takes a spare), a stopped or removed app
// therefore never reload; running out of spares or of an app's slots is a seamless reload (a
// new haproxy takes the listening sockets over from the old one, nothing is refused), which
// also lays the backends out afresh.
import { execFile, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import net from 'node:net';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { RouterUnavailable } from '../../errors/index.ts';
import { writeFileWhole } from '../../files/index.ts';
import { accessLogPath } from '../access-log.ts';
import {
  assertPortFree,
  type BackendLoad,
  type DataPlane,
  type PlaneConfig,
  type PlaneConnected,
  type PlaneHealth,
  type SwitchOptions,
} from '../data-plane.ts';
import { CertIndex, parseRouterCerts, type RouterCerts } from '../certs.ts';
import { isChallengeToken, parseChallenge } from '../challenge.ts';
import { DEFAULT_LIMITS, type Limits } from '../limits.ts';
import { renderError, type RouterErrorStatus } from '../pages.ts';
import { parseBackends, parseRouteTable, type Backend, type RouteTable } from '../table.ts';
import { isAppName } from '../../apps/name.ts';
import { InvalidArgument } from '../../errors/index.ts';
import {
  backendName,
  HANDOFF_KEY,
  LUA,
  PAGE_STATUSES,
  PAGE_KEY_503,
  renderBackends,
  renderBodyMax,
  renderConfig,
  renderMaps,
  SPARE_BACKENDS,
  SPARE_SLOTS,
  spareName,
  type HaproxyPaths,
  type Slot,
} from './config.ts';
import {
  certFileName,
  certNames,
  crtListLine,
  DEFAULT_CERT_FILE,
  pemBundle,
  renderChallenges,
  renderCovers,
  renderCrtList,
  renderHttpsFlags,
  type CertNames,
} from './https.ts';
import { cli, parseStat } from './runtime.ts';

const run = promisify(execFile);
export const HAPROXY_BIN = process.env.PAAS_HAPROXY ?? '/usr/sbin/haproxy';

export const haproxyPaths = (dataDir: string): HaproxyPaths => {
  const dir = join(dataDir, 'router', 'haproxy');
  return {
    dir,
    cfg: join(dir, 'haproxy.cfg'),
    admin: join(dir, 'admin.sock'),
    pid: join(dir, 'haproxy.pid'),
    exact: join(dir, 'hosts.map'),
    wild: join(dir, 'wildcards.map'),
    backends: join(dir, 'backends.map'),
    bodyMax: join(dir, 'body-limits.map'),
    pages: join(dir, 'pages'),
    lua: join(dir, 'paas.lua'),
    state: join(dir, 'state.json'),
    log: join(dataDir, 'logs', 'router', 'haproxy.log'),
    certs: join(dir, 'certs'),
    crtList: join(dir, 'certs.list'),
    tlsExact: join(dir, 'tls-hosts.map'),
    tlsWild: join(dir, 'tls-wildcards.map'),
    httpsFlags: join(dir, 'https.map'),
    challenges: join(dir, 'acme.map'),
    handoff: join(dir, 'handoff.sock'),
    handoffTls: join(dir, 'handoff-tls.sock'),
    handoffMap: join(dir, 'handoff.map'),
  };
};

interface Persisted {
  /** The generation the configuration on disk is for: its runtime socket is admin-<gen>.sock. */
  gen: number;
  table: RouteTable;
  slots: Record<string, Slot[]>;
  /** App → its backend in the running configuration (its own, or a spare it took). */
  backends: Record<string, string>;
  /** Spare backends of the running configuration no app has taken yet. */
  spares: string[];
  httpPort: number;
  /** The HTTPS listener's port (none without `--https-port`). */
  httpsPort?: number;
  /** The certificates served (names only: the PEMs are files under `certs/`, 0600). */
  certs?: CertNames;
}

const NO_NAMES: CertNames = { hosts: [], default: null };

/** A running haproxy: its generation, its pid, and its runtime socket. */
interface Live {
  gen: number;
  pid: number;
  socket: string;
}

const genSocket = (dir: string, gen: number): string => join(dir, `admin-${gen}.sock`);

/** A fresh layout: each app its own backend, and all spares free. */
function layOut(st: Persisted): void {
  st.backends = Object.fromEntries(Object.keys(st.table.apps).map((a) => [a, backendName(a)]));
  st.spares = Array.from({ length: SPARE_BACKENDS }, (_, i) => spareName(i + 1));
}

const freeSlots = (count: number): Slot[] =>
  Array.from({ length: count }, (_, i) => ({
    n: i + 1,
    host: '127.0.0.1',
    port: 1,
    active: false,
  }));

/**
 * haproxy's threads by default: half the cores (at least one, at most four). The front door
 * shares the box with the apps it serves: on 2 cores, one thread left the upstream a core and
 * served 0.95-1.03x nginx's rate (2 workers) with a lower p99, where two threads served
 * 0.85-0.91x (bench/router, same runs).
 */
export const haproxyThreads = (cores: number): number =>
  Math.max(1, Math.min(4, Math.floor(cores / 2)));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long a stopping haproxy leaves idle kept-alive connections for their next request. */
const IDLE_GRACE_MS = 1000;

export class HaproxyPlane implements DataPlane {
  readonly kind = 'haproxy' as const;
  readonly accessLogPath: string;
  private readonly paths: HaproxyPaths;
  private readonly cfg: PlaneConfig;
  private readonly limits: Limits;
  private st: Persisted | null = null;
  /** Slots retired and not yet drained, per backend: not given to a new process meanwhile. */
  private readonly draining = new Map<string, Set<number>>();
  private lock: Promise<unknown> = Promise.resolve();
  /** ACME HTTP-01 tokens of orders under way (in memory, like the node router's). */
  private readonly challenges = new Map<string, string>();
  /** The last certificate set pushed, written again for a haproxy this plane (re)starts. */
  private lastCerts: RouterCerts | null = null;

  /** The data dir's running plane of the other kind, if any (select.ts: handover). */
  private readonly prior: () => Promise<DataPlane | null>;

  constructor(cfg: PlaneConfig, prior: () => Promise<DataPlane | null> = async () => null) {
    this.cfg = cfg;
    this.prior = prior;
    this.limits = { ...DEFAULT_LIMITS, ...cfg.limits };
    this.paths = haproxyPaths(cfg.dataDir);
    this.accessLogPath = accessLogPath(cfg.dataDir);
  }

  get httpPort(): number {
    return this.st?.httpPort ?? this.cfg.httpPort;
  }

  /**
   * Whether the haproxy plane of `dataDir` answers: on the socket the admin link points at,
   * or on the socket of the configuration on disk (a daemon killed before it re-pointed the
   * link after starting it).
   */
  static async running(dataDir: string): Promise<boolean> {
    const paths = haproxyPaths(dataDir);
    if (await answers(paths.admin)) return true;
    const gen = (JSON.parse(readOr(paths.state) ?? '{}') as { gen?: unknown }).gen;
    return typeof gen === 'number' && answers(genSocket(paths.dir, gen));
  }

  async connect(): Promise<PlaneConnected> {
    mkdirSync(this.paths.pages, { recursive: true, mode: 0o700 });
    mkdirSync(this.paths.certs, { recursive: true, mode: 0o700 });
    mkdirSync(join(this.accessLogPath, '..'), { recursive: true });
    this.st ??= this.loadState();
    const host = this.cfg.host ?? '0.0.0.0';
    if ((await this.findLive()) !== null) {
      await this.refresh(host);
      return { started: false, pid: await pidAt(this.paths.admin) };
    }
    // Not running: take over from the other plane if it serves this data dir, on its table
    // and its ports, bound beside it.
    const replaced = await this.prior();
    let beside: { httpPort: number; httpsPort: number | undefined } | null = null;
    if (replaced !== null) {
      this.seed(await replaced.routes());
      beside = await replaced.health();
    }
    // A haproxy this plane starts runs a fresh layout, and the port asked for (a changed
    // --http-port); an ephemeral one (0) keeps the port it had, or the replaced plane's.
    layOut(this.st);
    if (this.cfg.httpPort !== 0) this.st.httpPort = this.cfg.httpPort;
    else if (beside !== null) this.st.httpPort = beside.httpPort;
    if (this.st.httpPort === 0) this.st.httpPort = await freePort(host);
    // haproxy binds with SO_REUSEPORT: it would share a port another process listens on.
    else if (beside === null) await assertPortFree(host, this.st.httpPort);
    if (this.cfg.httpsPort === undefined) delete this.st.httpsPort;
    else if (this.cfg.httpsPort === 0 && beside?.httpsPort !== undefined)
      this.st.httpsPort = beside.httpsPort;
    else await this.pickHttpsPort(host, beside !== null);
    // A haproxy this plane starts reads its certificates from disk: the last set pushed.
    if (this.lastCerts !== null) this.writeCertFiles(this.lastCerts);
    this.st.gen += 1;
    this.writeFiles();
    this.writePages();
    await this.check();
    const live = await this.spawnHaproxy([]);
    this.point(live);
    return { started: true, pid: live.pid, ...(replaced === null ? {} : { replaced }) };
  }

  revive(): Promise<PlaneConnected | null> {
    return this.serialized(async () => {
      if (this.st !== null && (await this.answers())) return null;
      return this.connect();
    });
  }

  /**
   * Start haproxy on the configuration on disk (generation st.gen), in the foreground of a
   * session of its own, and wait until it answers on its generation's socket.
   */
  private async spawnHaproxy(args: string[]): Promise<Live> {
    const socket = genSocket(this.paths.dir, this.st!.gen);
    const out = openSync(this.accessLogPath, 'a', 0o600);
    const err = openSync(this.paths.log, 'a', 0o600);
    const child = spawn(HAPROXY_BIN, ['-f', this.paths.cfg, ...args], {
      detached: true,
      stdio: ['ignore', out, err],
      cwd: '/',
    });
    closeSync(out);
    closeSync(err);
    child.unref();
    let exited: number | null = null;
    child.once('exit', (code) => (exited = code ?? -1));
    const deadline = Date.now() + 15_000;
    while ((await pidAt(socket)) !== child.pid) {
      if (exited !== null)
        throw new RouterUnavailable(
          `haproxy exited with ${exited} at start; see ${this.paths.log}`,
        );
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new RouterUnavailable(`haproxy did not answer on ${socket} in time`);
      }
      await sleep(50);
    }
    return { gen: this.st!.gen, pid: child.pid!, socket };
  }

  /** Make `live` the haproxy the admin link and the pid file name. */
  private point(live: Live): void {
    const tmp = `${this.paths.admin}.${process.pid}.tmp`;
    rmSync(tmp, { force: true });
    symlinkSync(basename(live.socket), tmp);
    renameSync(tmp, this.paths.admin);
    writeAtomic(this.paths.pid, `${live.pid}\n`);
  }

  /** The haproxy the admin link points at, if it answers. */
  private async current(): Promise<Live | null> {
    const pid = await pidAt(this.paths.admin);
    if (pid === 0) return null;
    let target: string;
    try {
      target = readlinkSync(this.paths.admin);
    } catch {
      // A plain socket: a haproxy in master-worker mode, started by an older paas.
      return { gen: -1, pid, socket: this.paths.admin };
    }
    const gen = Number(/^admin-(\d+)\.sock$/.exec(target)?.[1] ?? -1);
    return { gen, pid, socket: join(this.paths.dir, target) };
  }

  /**
   * The haproxy serving this data dir, if any. First the one the configuration on disk is
   * for: a daemon killed after starting it and before pointing the admin link at it left
   * the link on the old one, which has stopped or is stopping; then the link's.
   */
  private async findLive(): Promise<Live | null> {
    const own = genSocket(this.paths.dir, this.st!.gen);
    const pid = await pidAt(own);
    if (pid !== 0) {
      const live = { gen: this.st!.gen, pid, socket: own };
      this.point(live);
      return live;
    }
    return this.current();
  }

  /** Serve `table` from the start: its backends in the first slots of each app. */
  private seed(table: RouteTable): void {
    const st = this.st!;
    st.table = table;
    st.slots = {};
    for (const [app, route] of Object.entries(table.apps)) {
      const list = route.state === 'stopped' ? [] : route.backends;
      st.slots[app] = [
        ...list.map((b, i) => ({ n: i + 1, host: b.host, port: b.port, id: b.id, active: true })),
        ...freeSlots(SPARE_SLOTS).map((s) => ({ ...s, n: s.n + list.length })),
      ];
    }
  }

  private async pickHttpsPort(host: string, beside = false): Promise<void> {
    const st = this.st!;
    const want = this.cfg.httpsPort!;
    if (want !== 0) st.httpsPort = want;
    else if (!st.httpsPort)
      // Two probes may be handed the same ephemeral port: the HTTPS one must differ.
      for (let i = 0; i < 10 && (!st.httpsPort || st.httpsPort === st.httpPort); i++)
        st.httpsPort = await freePort(host);
    if (!beside) await assertPortFree(host, st.httpsPort!);
  }

  /**
   * An adopted haproxy runs the configuration of the daemon that started it: one written by
   * an older paas (no HTTPS bind, no challenge rules) is brought to this one's by a seamless
   * reload, and an HTTPS listener asked for now is added the same way.
   */
  private async refresh(host: string): Promise<void> {
    const before = readOr(this.paths.cfg);
    if (this.cfg.httpsPort !== undefined && this.st!.httpsPort === undefined)
      await this.pickHttpsPort(host);
    this.writeFiles();
    // A haproxy of another generation than the configuration on disk runs an older one (a
    // daemon killed in a reload before starting the new process).
    const running = await this.current();
    if (readOr(this.paths.cfg) !== before || running?.gen !== this.st!.gen) await this.reload();
  }

  private loadState(): Persisted {
    try {
      const raw = JSON.parse(readFileSync(this.paths.state, 'utf8')) as Persisted;
      const st: Persisted = {
        gen: typeof raw.gen === 'number' ? raw.gen : 0,
        table: parseRouteTable(raw.table),
        slots: raw.slots,
        backends: raw.backends,
        spares: raw.spares,
        httpPort: raw.httpPort,
        ...(typeof raw.httpsPort === 'number' ? { httpsPort: raw.httpsPort } : {}),
        certs: raw.certs ?? NO_NAMES,
      };
      // State written by a paas before spare backends: its configuration is replaced (by
      // refresh's reload, or at the next start) with a fresh layout.
      if (typeof raw.backends !== 'object' || !Array.isArray(raw.spares)) layOut(st);
      return st;
    } catch {
      const st: Persisted = {
        gen: 0,
        table: parseRouteTable({ apps: {}, domain: this.cfg.domain }),
        slots: {},
        backends: {},
        spares: [],
        httpPort: this.cfg.httpPort,
        certs: NO_NAMES,
      };
      layOut(st);
      return st;
    }
  }

  private answers(): Promise<boolean> {
    return answers(this.paths.admin);
  }

  private pidFile(): number {
    try {
      return Number.parseInt(readFileSync(this.paths.pid, 'utf8'), 10) || 0;
    } catch {
      return 0;
    }
  }

  /**
   * Everything haproxy reads, from the current state; written before any reload or start.
   * The error pages are not: haproxy reads them only at a start or reload, which write them
   * (writePages), and rendering them loads handlebars (pages.ts), which an idle daemon
   * should not hold.
   */
  private writeFiles(): void {
    const st = this.st!;
    const threads = this.cfg.workers ?? haproxyThreads(availableParallelism());
    writeAtomic(this.paths.lua, LUA);
    const maps = renderMaps(st.table);
    writeAtomic(this.paths.exact, maps.exact);
    writeAtomic(this.paths.wild, maps.wild);
    writeAtomic(this.paths.backends, renderBackends(st.backends));
    writeAtomic(this.paths.bodyMax, renderBodyMax(st.table));
    // A certificate whose file is gone is left out of the crt-list (haproxy would refuse to
    // start on it); the daemon's push at (re)connection brings it back.
    const names = (st.certs = this.presentCerts(st.certs ?? NO_NAMES));
    const covers = renderCovers(names);
    writeAtomic(this.paths.crtList, renderCrtList(this.paths.certs, names));
    writeAtomic(this.paths.tlsExact, covers.exact);
    writeAtomic(this.paths.tlsWild, covers.wild);
    writeAtomic(this.paths.httpsFlags, renderHttpsFlags(st.table));
    writeAtomic(this.paths.challenges, renderChallenges(this.challenges));
    // Always empty on disk: only a reload's old process is marked, at run time.
    writeAtomic(this.paths.handoffMap, '');
    writeAtomic(
      this.paths.cfg,
      renderConfig({
        backends: [
          ...Object.entries(st.backends).map(([app, name]) => ({
            name,
            slots: st.slots[app] ?? [],
          })),
          ...st.spares.map((name) => ({ name, slots: freeSlots(SPARE_SLOTS) })),
        ],
        paths: this.paths,
        socket: genSocket(this.paths.dir, st.gen),
        host: this.cfg.host ?? '0.0.0.0',
        httpPort: st.httpPort,
        limits: this.limits,
        threads,
        ...(st.httpsPort === undefined
          ? {}
          : { https: { port: st.httpsPort, hasDefault: names.default !== null } }),
      }),
    );
    writeAtomic(this.paths.state, `${JSON.stringify(st, null, 2)}\n`);
  }

  private writePages(): void {
    for (const s of PAGE_STATUSES) this.writePage(s);
  }

  /**
   * Our pages (pages.ts) as haproxy log-format bodies: each page is cut at its request id
   * into two halves kept in a map keyed by format, so one file serves HTML and JSON.
   */
  private writePage(status: RouterErrorStatus): void {
    if (status === 502) return; // served through 503's file, keyed by txn.k
    const MARK = 'PAASREQUESTIDMARK';
    const halves = (s: RouterErrorStatus, fmt: 'html' | 'json'): [string, string] => {
      const body = renderError(s, MARK, undefined, fmt === 'json' ? 'application/json' : undefined)
        .body.toString()
        .replace(/\s*\n\s*/g, ' ');
      const i = body.indexOf(MARK);
      return [body.slice(0, i), body.slice(i + MARK.length)];
    };
    const a: string[] = [];
    const b: string[] = [];
    const keys: [string, RouterErrorStatus, 'html' | 'json'][] =
      status === 503
        ? [
            // Keyed by format and txn.k (PAGE_KEY_503); no txn.k: not routed to an app.
            ['html-', 503, 'html'],
            ['json-', 503, 'json'],
            ['html-503', 503, 'html'],
            ['json-503', 503, 'json'],
            ['html-502', 502, 'html'],
            ['json-502', 502, 'json'],
          ]
        : [
            ['html', status, 'html'],
            ['json', status, 'json'],
          ];
    for (const [k, s, fmt] of keys) {
      const [x, y] = halves(s, fmt);
      a.push(`${k} ${x}`);
      b.push(`${k} ${y}`);
    }
    const base = join(this.paths.pages, String(status));
    writeAtomic(`${base}.a.map`, `${a.join('\n')}\n`);
    writeAtomic(`${base}.b.map`, `${b.join('\n')}\n`);
    const key = status === 503 ? PAGE_KEY_503 : 'var(txn.fmt,html)';
    writeAtomic(
      `${base}.lf`,
      `%[${key},map(${base}.a.map)]%[var(txn.rid)]%[${key},map(${base}.b.map)]`,
    );
  }

  private async check(): Promise<void> {
    try {
      await run(HAPROXY_BIN, ['-c', '-f', this.paths.cfg]);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new RouterUnavailable(
        `haproxy rejected ${this.paths.cfg}: ${(err.stderr || err.message).trim()}`,
      );
    }
  }

  /**
   * Seamless reload: a new haproxy, of the next generation, takes the listening sockets over
   * from the running one through its runtime socket (-x) and tells it to finish (-sf: a soft
   * stop). If the new one fails to start, the old one serves on, told nothing.
   */
  private async reload(): Promise<void> {
    const st = this.st!;
    const old = await this.current();
    if (old === null) throw new RouterUnavailable(`haproxy is not running; see ${this.paths.log}`);
    st.gen = Math.max(st.gen, old.gen) + 1;
    this.writeFiles();
    this.writePages();
    await this.check();
    // The process about to be replaced passes what its kept-alive connections still ask to
    // the new one (config.ts HANDOFF_KEY). One started by an older paas has no such map.
    await cli(old.socket, [`add map ${this.paths.handoffMap} ${HANDOFF_KEY} 1`]);
    const next = await this.spawnHaproxy(['-x', old.socket, '-sf', String(old.pid)]);
    this.point(next);
    // Done when the old process has acted on its soft stop: it closes its listeners and its
    // runtime socket together. Runtime commands after a reload must change how every new
    // connection is routed, and an old process still accepting would route by its older
    // maps and servers. (Connections it already holds get one more answer from it,
    // idle-close-on-response, which it hands to the new one.)
    const deadline = Date.now() + 15_000;
    while ((await pidAt(old.socket)) === old.pid && haproxyAlive(old.pid)) {
      if (Date.now() > deadline)
        throw new RouterUnavailable(`haproxy ${old.pid} did not stop accepting after a reload`);
      await sleep(25);
    }
    if (old.socket !== this.paths.admin) rmSync(old.socket, { force: true });
    // What a master-worker haproxy of an older paas left: its master follows its worker out.
    rmSync(join(this.paths.dir, 'master.sock'), { force: true });
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => {});
    return next;
  }

  setRoutes(table: RouteTable, opts: SwitchOptions = {}): Promise<{ drained: boolean }> {
    const t = parseRouteTable(table);
    return this.apply(() => t, opts);
  }

  switch(
    app: string,
    backends: Backend[],
    opts: SwitchOptions = {},
  ): Promise<{ drained: boolean }> {
    if (!isAppName(app))
      throw new InvalidArgument(`switch: invalid app name ${JSON.stringify(app)}`);
    const list = parseBackends(backends, app);
    return this.apply((cur) => {
      const prev = cur.apps[app] ?? { domains: [], backends: [] };
      return { ...cur, apps: { ...cur.apps, [app]: { ...prev, backends: list } } };
    }, opts);
  }

  private async apply(
    make: (cur: RouteTable) => RouteTable,
    opts: SwitchOptions,
  ): Promise<{ drained: boolean }> {
    if (this.st === null) await this.connect();
    // The next table is made from the current one inside the lock: two apps switching at
    // once must not each start from the table the other is replacing.
    const retired = await this.serialized(() => this.swap(make(this.st!.table)));
    const drained = await this.drain(retired, opts.drainTimeoutMs ?? this.limits.drainTimeoutMs);
    for (const [be, n] of retired) this.draining.get(be)?.delete(n);
    return { drained };
  }

  /** Put `next` in place; returns the slots it retired (backend, slot), still to drain. */
  private async swap(next: RouteTable): Promise<[string, number][]> {
    if (!(await this.answers())) await this.connect();
    const st = this.st!;
    const prev = st.table;
    let reload = prev.domain !== next.domain;
    const commands: string[] = [];
    const retireCmds: string[] = [];
    const retired: [string, number][] = [];
    const slots: Record<string, Slot[]> = {};
    const backends: Record<string, string> = {};
    const spares = [...st.spares];
    const retire = (be: string, s: Slot): void => {
      s.active = false;
      this.busy(be).add(s.n);
      retired.push([be, s.n]);
      retireCmds.push(`set server ${be}/s${s.n} state maint`);
    };
    for (const [app, route] of Object.entries(next.apps)) {
      let be = st.backends[app];
      let old = (st.slots[app] ?? []).map((s) => ({ ...s }));
      if (be === undefined) {
        // A new app takes a spare backend: no reload. Without one, the reload below gives
        // it its own.
        be = spares.shift();
        if (be === undefined) {
          be = backendName(app);
          reload = true;
        } else old = freeSlots(SPARE_SLOTS);
      }
      backends[app] = be;
      const busy = this.busy(be);
      const want = route.state === 'stopped' ? [] : route.backends;
      const keep = new Set<Slot>();
      const placed: Slot[] = [];
      const toPlace: Backend[] = [];
      for (const b of want) {
        const s = old.find(
          (x) => x.active && !keep.has(x) && x.host === b.host && x.port === b.port,
        );
        if (s) {
          keep.add(s);
          s.id = b.id;
        } else toPlace.push(b);
      }
      for (const s of old) if (s.active && !keep.has(s)) retire(be, s);
      for (const b of toPlace) {
        let s = old.find((x) => !x.active && !busy.has(x.n) && !placed.includes(x));
        if (!s) {
          // No free slot: grow the backend (a reload). Double it, so this stays rare.
          const from = old.length;
          const grow = Math.max(4, from);
          for (let i = 1; i <= grow; i++)
            old.push({ n: from + i, host: '127.0.0.1', port: 1, active: false });
          reload = true;
          s = old.find((x) => !x.active && !busy.has(x.n) && !placed.includes(x))!;
        }
        Object.assign(s, { host: b.host, port: b.port, id: b.id, active: true });
        placed.push(s);
        commands.push(
          `set server ${be}/s${s.n} addr ${b.host} port ${b.port}`,
          `set server ${be}/s${s.n} state ready`,
        );
      }
      slots[app] = old;
    }
    // A removed app's servers leave like a retired process's (drained); its backend stays
    // unused until the next reload drops it.
    for (const app of Object.keys(prev.apps))
      if (!(app in next.apps) && st.backends[app] !== undefined)
        for (const s of st.slots[app] ?? []) if (s.active) retire(st.backends[app]!, { ...s });
    const prevBackends = st.backends;
    st.table = next;
    st.slots = slots;
    st.backends = backends;
    st.spares = spares;
    if (reload) {
      layOut(st);
      this.writeFiles();
      await this.reload();
      return retired;
    }
    this.writeFiles();
    // In an order where every request finds somewhere to go: the new apps' backends, their
    // limits and servers first, then the hosts that lead to them, the old servers out, and
    // the removed apps' backends last, after their hosts are gone.
    const backendsBefore = renderBackends(prevBackends);
    const backendsBoth = renderBackends({ ...prevBackends, ...backends });
    const backendsAfter = renderBackends(backends);
    if (backendsBoth !== backendsBefore) await this.replaceMap(this.paths.backends, backendsBoth);
    const bodyMax = renderBodyMax(next);
    if (bodyMax !== renderBodyMax(prev)) await this.replaceMap(this.paths.bodyMax, bodyMax);
    await this.runCommands(commands);
    const mapsBefore = renderMaps(prev);
    const mapsAfter = renderMaps(next);
    if (mapsBefore.exact !== mapsAfter.exact)
      await this.replaceMap(this.paths.exact, mapsAfter.exact);
    if (mapsBefore.wild !== mapsAfter.wild) await this.replaceMap(this.paths.wild, mapsAfter.wild);
    // redirect-https and HSTS are a map too: turning them on or off reloads nothing.
    const flags = renderHttpsFlags(next);
    if (renderHttpsFlags(prev) !== flags) await this.replaceMap(this.paths.httpsFlags, flags);
    await this.runCommands(retireCmds);
    if (backendsAfter !== backendsBoth) await this.replaceMap(this.paths.backends, backendsAfter);
    return retired;
  }

  private busy(be: string): Set<number> {
    let set = this.draining.get(be);
    if (set === undefined) this.draining.set(be, (set = new Set()));
    return set;
  }

  /** Server commands, twenty to a connection; any refusal is RouterUnavailable with it. */
  private async runCommands(all: string[]): Promise<void> {
    for (let i = 0; i < all.length; i += 20) {
      const out = await cli(this.paths.admin, all.slice(i, i + 20));
      const bad = out.split('\n').find((l) => /^(No such|Require|Invalid|Unknown)/.test(l.trim()));
      if (bad) throw new RouterUnavailable(`haproxy runtime: ${bad.trim()}`);
    }
  }

  /** Replace a map's whole content atomically (prepare, fill, commit). */
  private async replaceMap(file: string, content: string): Promise<void> {
    const out = await cli(this.paths.admin, [`prepare map ${file}`]);
    const ver = /New version created: (\d+)/.exec(out)?.[1];
    if (ver === undefined)
      throw new RouterUnavailable(`haproxy: prepare map failed: ${out.trim()}`);
    const adds = content
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => `add map @${ver} ${file} ${l}`);
    for (let i = 0; i < adds.length; i += 50) await cli(this.paths.admin, adds.slice(i, i + 50));
    await cli(this.paths.admin, [`commit map @${ver} ${file}`]);
  }

  /** Wait until no retired slot has a request or connection in flight, or the timeout. */
  private async drain(retired: [string, number][], timeoutMs: number): Promise<boolean> {
    if (retired.length === 0) return true;
    const deadline = Date.now() + timeoutMs;
    let quiet = 0;
    for (;;) {
      const rows = parseStat(await cli(this.paths.admin, ['show stat']));
      const busy = retired.some(([be, n]) => {
        const r = rows.find((x) => x.pxname === be && x.svname === `s${n}`);
        return r !== undefined && (Number(r.scur) > 0 || Number(r.qcur) > 0);
      });
      // Twice in a row: a request being assigned to the server between two polls counts.
      quiet = busy ? 0 : quiet + 1;
      if (quiet >= 2) return true;
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
  }

  // routes() and health() only read: they also serve a plane being replaced (select.ts),
  // which must not be changed (connect's refresh) on its way out.
  async routes(): Promise<RouteTable> {
    this.st ??= this.loadState();
    return this.st.table;
  }

  async load(): Promise<BackendLoad[]> {
    if (this.st === null) await this.connect();
    const rows = parseStat(await cli(this.paths.admin, ['show stat']));
    const out: BackendLoad[] = [];
    for (const [app, slots] of Object.entries(this.st!.slots))
      for (const s of slots) {
        const be = this.st!.backends[app];
        const r = rows.find((x) => x.pxname === be && x.svname === `s${s.n}`);
        const inflight = Number(r?.scur ?? 0) + Number(r?.qcur ?? 0);
        if (!s.active && inflight === 0) continue;
        out.push({
          app,
          upstream: `${s.host}:${s.port}`,
          ...(s.id === undefined ? {} : { id: s.id }),
          inflight,
          requests: Number(r?.stot ?? 0),
          active: s.active,
        });
      }
    return out;
  }

  async health(): Promise<PlaneHealth> {
    this.st ??= this.loadState();
    const info = await cli(this.paths.admin, ['show info']);
    const field = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(info)?.[1]);
    return {
      kind: 'haproxy',
      pid: field('Pid'),
      httpPort: this.st!.httpPort,
      httpsPort: this.st!.httpsPort,
      uptimeMs: field('Uptime_sec') * 1000,
      workers: field('Nbthread'),
    };
  }

  /**
   * Serve `certs` on the HTTPS port. Validated first (the set in service stays if OpenSSL
   * refuses any of it), then changed over the runtime socket: a new host is `new ssl cert`,
   * `set ssl cert`, `commit ssl cert` and `add ssl crt-list`; a changed one `set` + `commit`
   * (new handshakes get it, open connections keep theirs); a removed one `del ssl crt-list`
   * + `del ssl cert`. The files are written after haproxy took them, so what is on disk (what
   * a restart or reload reads) is never ahead of what it serves.
   */
  async setCerts(certs: RouterCerts): Promise<void> {
    const next = parseRouterCerts(certs);
    new CertIndex(next); // throws InvalidArgument on a PEM OpenSSL refuses, before any change
    if (this.st === null) await this.connect();
    await this.serialized(() => this.pushCerts(next));
    this.lastCerts = next;
  }

  private async pushCerts(next: RouterCerts): Promise<void> {
    const st = this.st!;
    const before = st.certs ?? NO_NAMES;
    const names = certNames(next);
    const running = await this.answers();
    // The runtime API changes certificates and crt-list entries, but not a bind line's
    // options (`strict-sni`) nor which certificate is the bind's default context (the first
    // one loaded at start): a default appearing or going is the one certificate change that
    // takes a (seamless) reload.
    if (
      !running ||
      st.httpsPort === undefined ||
      (before.default === null) !== (names.default === null)
    ) {
      this.writeCertFiles(next);
      st.certs = names;
      this.writeFiles();
      if (running && st.httpsPort !== undefined) await this.reload();
      return;
    }
    const admin = this.paths.admin;
    const listed = await this.crtListFiles();
    const shown = await cli(admin, ['show ssl cert']);
    // A transaction left open (a daemon killed between set and commit) would block ours.
    const open = /# transaction\n\*?(\S+)/.exec(shown)?.[1];
    if (open !== undefined) await cli(admin, [`abort ssl cert ${open}`]);
    const loaded = new Set(
      shown
        .split('\n')
        .map((l) => l.trim().replace(/^\*/, ''))
        .filter((l) => l !== '' && !l.startsWith('#')),
    );
    const want = new Map<string, { pem: string; host: string | null }>();
    if (next.default !== null)
      want.set(join(this.paths.certs, DEFAULT_CERT_FILE), {
        pem: pemBundle(next.default),
        host: null,
      });
    for (const [host, c] of Object.entries(next.hosts))
      want.set(join(this.paths.certs, certFileName(host)), { pem: pemBundle(c), host });
    for (const [file, { pem, host }] of want) {
      const isNew = !loaded.has(file);
      if (isNew) await this.runtime([`new ssl cert ${file}`], /New empty certificate store/);
      if (isNew || readOr(file) !== pem) await this.commitCert(file, pem, isNew);
      if (host !== null && !listed.has(file))
        await this.runtime(
          [`add ssl crt-list ${this.paths.crtList} <<\n${crtListLine(this.paths.certs, host)}\n`],
          /Success!/,
        );
    }
    // Redirects follow what is served: on for the new names now, off for the removed ones
    // before their certificates go.
    const covers = renderCovers(names);
    const coversBefore = renderCovers(before);
    if (covers.exact !== coversBefore.exact)
      await this.replaceMap(this.paths.tlsExact, covers.exact);
    if (covers.wild !== coversBefore.wild) await this.replaceMap(this.paths.tlsWild, covers.wild);
    for (const file of listed)
      if (!want.has(file)) {
        await this.runtime([`del ssl crt-list ${this.paths.crtList} ${file}`], /deleted/);
        await this.runtime([`del ssl cert ${file}`], /deleted/);
      }
    this.writeCertFiles(next);
    st.certs = names;
    this.writeFiles();
  }

  /** One runtime command whose answer must match `ok`, else RouterUnavailable with it. */
  private async runtime(commands: string[], ok: RegExp): Promise<string> {
    const out = await cli(this.paths.admin, commands);
    if (!ok.test(out))
      throw new RouterUnavailable(`haproxy runtime: ${commands[0]!.split('\n')[0]}: ${out.trim()}`);
    return out;
  }

  /** `set ssl cert` + `commit ssl cert`; a refusal aborts the transaction and is the caller's. */
  private async commitCert(file: string, pem: string, isNew: boolean): Promise<void> {
    const set = await cli(this.paths.admin, [`set ssl cert ${file} <<\n${pem}`]);
    const commit = /Transaction (created|updated)/.test(set)
      ? await cli(this.paths.admin, [`commit ssl cert ${file}`])
      : '';
    if (/Success!/.test(commit)) return;
    await cli(this.paths.admin, [`abort ssl cert ${file}`]).catch(() => '');
    if (isNew) await cli(this.paths.admin, [`del ssl cert ${file}`]).catch(() => '');
    throw new InvalidArgument(
      `certificate ${file} refused by haproxy: ${(commit || set).trim().replace(/\s+/g, ' ')}`,
    );
  }

  /** The certificate files in the bind's crt-list, as haproxy holds it now. */
  private async crtListFiles(): Promise<Set<string>> {
    const out = await cli(this.paths.admin, [`show ssl crt-list ${this.paths.crtList}`]);
    return new Set(
      out
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('#'))
        .map((l) => l.trim().split(/\s+/)[0]!),
    );
  }

  private presentCerts(names: CertNames): CertNames {
    const has = (f: string): boolean => existsSync(join(this.paths.certs, f));
    return {
      hosts: names.hosts.filter((h) => has(certFileName(h))),
      default: names.default !== null && has(DEFAULT_CERT_FILE) ? names.default : null,
    };
  }

  /** The PEM files of a set (0600 in a 0700 dir); files of hosts no longer in it are removed. */
  private writeCertFiles(certs: RouterCerts): void {
    const dir = this.paths.certs;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keep = new Set<string>();
    if (certs.default !== null) {
      writeAtomic(join(dir, DEFAULT_CERT_FILE), pemBundle(certs.default));
      keep.add(DEFAULT_CERT_FILE);
    }
    for (const [host, c] of Object.entries(certs.hosts)) {
      writeAtomic(join(dir, certFileName(host)), pemBundle(c));
      keep.add(certFileName(host));
    }
    for (const f of readdirSync(dir))
      if (f.endsWith('.pem') && !keep.has(f)) rmSync(join(dir, f), { force: true });
  }

  /**
   * The certificate set served, without keys, read back from haproxy's crt-list (the hosts
   * by their SNI filter; the default by its `!*` fallback line).
   */
  async certs(): Promise<{ hosts: string[]; default: string[] | null }> {
    if (this.st === null) await this.connect();
    const out = await cli(this.paths.admin, [`show ssl crt-list ${this.paths.crtList}`]);
    const hosts: string[] = [];
    let hasDefault = false;
    for (const l of out.split('\n')) {
      if (l.trim() === '' || l.startsWith('#')) continue;
      const [, ...filters] = l.trim().split(/\s+/);
      if (filters.includes('!*')) hasDefault = true;
      else hosts.push(...filters.filter((f) => !f.startsWith('!') && !f.startsWith('[')));
    }
    return {
      hosts: hosts.sort(),
      default: hasDefault ? (this.st!.certs?.default ?? []) : null,
    };
  }

  /**
   * ACME HTTP-01: the challenge map (path → key authorization) replaced as a whole over
   * the runtime socket, so haproxy answers the token before routing; the file is rewritten
   * too, so a reload keeps it.
   */
  async addChallenge(token: string, keyAuthorization: string): Promise<void> {
    const c = parseChallenge({ token, keyAuthorization });
    if (this.st === null) await this.connect();
    await this.serialized(async () => {
      this.challenges.set(c.token, c.keyAuthorization);
      await this.pushChallenges();
    });
  }

  async removeChallenge(token: string): Promise<void> {
    if (!isChallengeToken(token))
      throw new InvalidArgument('removeChallenge: token is not an ACME token');
    if (this.st === null) await this.connect();
    await this.serialized(async () => {
      this.challenges.delete(token);
      await this.pushChallenges();
    });
  }

  private async pushChallenges(): Promise<void> {
    const content = renderChallenges(this.challenges);
    writeAtomic(this.paths.challenges, content);
    if (!(await this.answers())) await this.connect();
    else await this.replaceMap(this.paths.challenges, content);
  }

  close(): void {
    // Nothing held open between calls: each command is its own socket connection.
  }

  async stop(): Promise<void> {
    const pid = (await pidAt(this.paths.admin)) || this.pidFile();
    if (pid <= 0 || !haproxyAlive(pid)) return;
    const st = (this.st ??= this.loadState());
    const ports = new Set([st.httpPort, st.httpsPort ?? 0]);
    const signal = (s: NodeJS.Signals): void => {
      try {
        process.kill(pid, s);
      } catch {
        // gone already
      }
    };
    // A soft stop: the listeners close at once, requests in flight finish, and each
    // kept-alive connection gets its next answer with `Connection: close`
    // (idle-close-on-response) rather than being closed under a request its client is
    // sending. Connections still idle after a grace are cut once nothing is in flight. A
    // stopping haproxy closes its runtime socket too, so what is in flight is read from
    // its connections to servers (/proc).
    signal('SIGUSR1');
    const start = Date.now();
    const deadline = start + this.limits.drainTimeoutMs;
    let quiet = 0;
    while (haproxyAlive(pid) && Date.now() < deadline && quiet < 2) {
      if (Date.now() - start >= IDLE_GRACE_MS) quiet = upstreamBusy(pid, ports) ? 0 : quiet + 1;
      await sleep(25);
    }
    signal('SIGTERM');
    while (haproxyAlive(pid)) await sleep(25);
  }
}

async function answers(admin: string): Promise<boolean> {
  return (await pidAt(admin)) !== 0;
}

/** The pid of the haproxy answering on runtime socket `path`, or 0. */
async function pidAt(path: string): Promise<number> {
  try {
    return Number(/^Pid: (\d+)$/m.exec(await cli(path, ['show info'], 2000))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Whether `pid` is a haproxy that has not exited (a pid file may outlive its process). */
function haproxyAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^\d+ \(haproxy\) [^Z]/.test(stat);
  } catch {
    return false;
  }
}

/**
 * Whether haproxy `pid` holds a TCP connection it opened to a server (established or being
 * made): one whose local port is not a port it listens on, which its clients' are.
 */
function upstreamBusy(pid: number, listenPorts: Set<number>): boolean {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const link = readOr(`/proc/${pid}/fd/${fd}`, readlinkSync);
      const m = /^socket:\[(\d+)\]$/.exec(link ?? '');
      if (m) inodes.add(m[1]!);
    }
  } catch {
    return false; // gone
  }
  for (const table of ['tcp', 'tcp6']) {
    const rows = readOr(`/proc/${pid}/net/${table}`)?.split('\n').slice(1) ?? [];
    for (const row of rows) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || (f[3] !== '01' && f[3] !== '02') || !inodes.has(f[9]!)) continue;
      if (!listenPorts.has(Number.parseInt(f[1]!.split(':').pop()!, 16))) return true;
    }
  }
  return false;
}

function readOr(
  path: string,
  read: (p: string, enc: 'utf8') => string = readFileSync,
): string | null {
  try {
    return read(path, 'utf8');
  } catch {
    return null;
  }
}

/** The plane's files (maps, certificates, its state) are the daemon's and haproxy's only. */
function writeAtomic(path: string, text: string): void {
  writeFileWhole(path, text, { mode: 0o600 });
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
