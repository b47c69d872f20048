// The process routes of the API: ps, formation (ps:scale), ps:restart/stop/start,
// resources:set, the attached one-off `run`, and images:gc. Inputs are parsed with the one
// validator of each kind; the work is src/deploy's.
import { PassThrough } from 'node:stream';
import type { Express, Request, Response } from 'express';
import {
  parseFormationEntry,
  parseProcessType,
  type AppName,
  type ProcessType,
  type Release,
  type Resources,
} from '../apps/index.ts';
import {
  collectImagesNow,
  resourcesFor,
  restartApp,
  runAttached,
  scale,
  startApp,
  stopApp,
  type DeployDeps,
  type ProcView,
  type ScheduledProcess,
  type SchedulerPort,
} from '../deploy/index.ts';
import { Conflict, InvalidArgument } from '../errors/index.ts';
import { formatGcReport } from '../registry/index.ts';
import {
  parseCpus,
  parseMemory,
  parsePids,
  validSize,
  type RunTerminal,
  type TerminalSize,
} from '../runtime/index.ts';
import {
  encodeFrame,
  FRAME,
  FrameDecoder,
  type FormationChange,
  type ProcessInfo,
} from '../api/index.ts';
import { appParam } from './params.ts';
import { keepBodyOpen } from './server.ts';

/** What `ps` shows of a process: the supervisor's slot and the container's cgroup figures. */
async function procJson(
  deps: DeployDeps,
  p: ProcView,
  before: Map<string, { cpu: number; at: number }>,
): Promise<ProcessInfo> {
  let stats: { memoryBytes: number; memoryLimitBytes: number | null; cpuNanos: number } | null =
    null;
  if (p.state === 'running' || p.state === 'starting')
    stats = await deps.runtime.stats(p.id).catch(() => null);
  const b = before.get(p.id);
  const cpuPercent =
    stats !== null && b !== undefined && performance.now() > b.at
      ? Math.round(((stats.cpuNanos - b.cpu) / 1e6 / (performance.now() - b.at)) * 1000) / 10
      : null;
  const res = resourcesFor(deps, p.app, p.type).limits;
  const up = p.state === 'running' || p.state === 'starting';
  return {
    process: `${p.type}.${p.n}`,
    type: p.type,
    n: p.n,
    release: `v${p.version}`,
    state: p.state,
    startedAt: up ? new Date(p.upSince).toISOString() : null,
    uptimeSeconds: up ? Math.round((Date.now() - p.upSince) / 1000) : null,
    restarts: p.restarts,
    lastExit: p.lastExit,
    ip: p.ip,
    port: p.type === 'web' ? p.port : null,
    inRotation: p.inRotation && p.healthy,
    memoryBytes: stats?.memoryBytes ?? null,
    memoryLimitBytes: stats?.memoryLimitBytes ?? res.memoryBytes ?? null,
    cpuPercent,
    cpuLimit: res.cpus ?? null,
    id: p.id,
  };
}

/**
 * What `ps` shows of a process a scheduler placed (`--scheduler swarm`): its slot, release,
 * state and route; the cgroup figures are the node's, which the manager does not read.
 */
function scheduledJson(deps: DeployDeps, app: AppName, p: ScheduledProcess): ProcessInfo {
  const res = resourcesFor(deps, app, p.type).limits;
  return {
    process: `${p.type}.${p.n}`,
    type: p.type,
    n: p.n,
    release: `v${p.version}`,
    state: p.state,
    startedAt: null,
    uptimeSeconds: null,
    restarts: 0,
    lastExit: null,
    ip: p.address?.host ?? null,
    port: p.address?.port ?? null,
    inRotation: p.address !== null,
    memoryBytes: null,
    memoryLimitBytes: res.memoryBytes ?? null,
    cpuPercent: null,
    cpuLimit: res.cpus ?? null,
    id: p.id,
  };
}

/** `paas run` on a scheduler: a one-off task, its output once it ended; no stdin, no terminal. */
async function runScheduled(
  scheduler: SchedulerPort,
  release: Release,
  command: string[],
  input: { tty?: RunTerminal },
  res: Response,
  gone: AbortController,
): Promise<number> {
  if (input.tty !== undefined)
    res.write(
      encodeFrame(
        FRAME.stderr,
        Buffer.from(`paas: the ${scheduler.name} scheduler runs one-offs without a terminal\r\n`),
      ),
    );
  return scheduler.run(release, command, {
    signal: gone.signal,
    onData: (stream, chunk) =>
      res.write(encodeFrame(stream === 'stdout' ? FRAME.stdout : FRAME.stderr, chunk)),
  });
}

/** Parses `{ web: 3, worker: 0 }`. */
function parseFormation(raw: unknown): Map<ProcessType, number> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new InvalidArgument('formation must be an object of TYPE: count');
  const out = new Map<ProcessType, number>();
  for (const [k, v] of Object.entries(raw)) {
    const [t, n] = parseFormationEntry(k, v);
    out.set(t, n);
  }
  if (out.size === 0) throw new InvalidArgument('give at least one TYPE=COUNT');
  return out;
}

/** `on`/`off` (also true/false as JSON): resources:set --cap-net-raw. */
function parseSwitch(raw: unknown, flag: string): boolean {
  if (raw === true || raw === 'on') return true;
  if (raw === false || raw === 'off') return false;
  throw new InvalidArgument(`${flag}: "${String(raw)}" must be on or off`, { field: flag });
}

function parseResources(raw: unknown): { type: ProcessType | '*'; res: Resources } {
  const b = (raw ?? {}) as {
    memory?: unknown;
    cpus?: unknown;
    pids?: unknown;
    capNetRaw?: unknown;
    ps?: unknown;
  };
  const res: Resources = {};
  if (b.memory !== undefined) res.memoryBytes = parseMemory(String(b.memory), '--memory');
  if (b.cpus !== undefined) res.cpus = parseCpus(String(b.cpus), '--cpus');
  if (b.pids !== undefined) res.pids = parsePids(String(b.pids), '--pids');
  if (b.capNetRaw !== undefined) res.netRaw = parseSwitch(b.capNetRaw, '--cap-net-raw');
  if (Object.keys(res).length === 0)
    throw new InvalidArgument('give --memory, --cpus, --pids and/or --cap-net-raw on|off');
  return { type: b.ps === undefined || b.ps === null ? '*' : parseProcessType(b.ps), res };
}

export function mountProcessRoutes(api: Express, deps: DeployDeps): void {
  const { state } = deps;
  const app = (req: Request): AppName => appParam(state, req);

  api.get('/api/apps/:app/ps', async (req, res) => {
    const name = app(req);
    if (deps.scheduler !== undefined) {
      res.json((await deps.scheduler.processes(name)).map((p) => scheduledJson(deps, name, p)));
      return;
    }
    const procs = deps.supervisor.list(name);
    // CPU usage is the cgroup's CPU time over a short window.
    const before = new Map<string, { cpu: number; at: number }>();
    await Promise.all(
      procs.map(async (p) => {
        const s = await deps.runtime.stats(p.id).catch(() => null);
        if (s !== null) before.set(p.id, { cpu: s.cpuNanos, at: performance.now() });
      }),
    );
    await new Promise((r) => setTimeout(r, 250));
    res.json(await Promise.all(procs.map((p) => procJson(deps, p, before))));
  });

  api.get('/api/apps/:app/formation', (req, res) => void res.json(state.apps.formation(app(req))));
  api.patch('/api/apps/:app/formation', async (req, res) => {
    const name = app(req);
    const changes = parseFormation(req.body);
    res.json({ formation: await scale(deps, name, changes) } satisfies FormationChange);
  });

  api.post('/api/apps/:app/ps/:action', async (req, res) => {
    const name = app(req);
    switch (req.params.action) {
      case 'restart': {
        const type = (req.body as { type?: unknown } | undefined)?.type;
        await restartApp(
          deps,
          name,
          undefined,
          type === undefined ? undefined : parseProcessType(type),
        );
        break;
      }
      case 'stop':
        await stopApp(deps, name);
        break;
      case 'start':
        await startApp(deps, name);
        break;
      default:
        throw new InvalidArgument('action must be restart, stop or start');
    }
    res.json({ app: name, action: req.params.action, stopped: state.apps.get(name).stopped });
  });

  api.get('/api/apps/:app/resources', (req, res) => void res.json(state.apps.resources(app(req))));
  api.patch('/api/apps/:app/resources', (req, res) => {
    const name = app(req);
    const { type, res: limits } = parseResources(req.body);
    state.apps.setResources(name, type, limits);
    deps.logs.append(name, {
      source: 'system',
      text: `resources of ${type === '*' ? 'every type' : type} set; applied when a process next starts`,
    });
    res.json(state.apps.resources(name));
  });

  // `paas run`: the request body is the command's stdin, the response its output as frames
  // (frames.ts) ending with the exit status. Both stream at once over one HTTP/1.1 exchange.
  // With `tty=ROWSxCOLS` the command gets a terminal and the body is frames as well.
  api.post('/api/apps/:app/run', async (req: Request, res: Response) => {
    // Authenticated by now: stdin at a terminal may stay silent for as long as the user thinks.
    keepBodyOpen(req);
    const name = app(req);
    let command: unknown;
    try {
      command = JSON.parse(String(req.query.command ?? ''));
    } catch {
      command = null;
    }
    if (
      !Array.isArray(command) ||
      command.length === 0 ||
      !command.every((a) => typeof a === 'string') ||
      command.join('').length > 64 * 1024
    ) {
      throw new InvalidArgument('command must be a non-empty JSON list of strings');
    }
    const size = req.query.tty === undefined ? undefined : parseTerminalSize(req.query.tty);
    const live = state.apps.get(name).liveRelease;
    if (live === null)
      throw new Conflict(`${name} has no release yet: push one before "paas run"`, { app: name });
    const release = state.releases.get(name, live);
    res.writeHead(200, {
      'content-type': 'application/vnd.paas.frames',
      'cache-control': 'no-store',
    });
    res.flushHeaders();
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    deps.logs.append(name, {
      source: 'system',
      text: `run: ${command.join(' ').slice(0, 200)} (v${live})`,
    });
    const input: { stdin: NodeJS.ReadableStream; tty?: RunTerminal } =
      size === undefined
        ? { stdin: req }
        : terminalInput(req, size, (message) => {
            res.write(encodeFrame(FRAME.stderr, Buffer.from(`paas: ${message}\r\n`)));
            gone.abort();
          });
    if (input.tty !== undefined && !deps.runtime.features.tty) {
      // The command still runs, on pipes: better than refusing an operator at a terminal.
      res.write(
        encodeFrame(
          FRAME.stderr,
          Buffer.from(
            `paas: the ${deps.runtime.name} runtime has no terminals; running without one\r\n`,
          ),
        ),
      );
      delete input.tty;
    }
    let code: number;
    try {
      code =
        deps.scheduler !== undefined
          ? await runScheduled(deps.scheduler, release, command as string[], input, res, gone)
          : await runAttached(deps, release, command as string[], {
              ...input,
              signal: gone.signal,
              onData: (stream, chunk) =>
                res.write(encodeFrame(stream === 'stdout' ? FRAME.stdout : FRAME.stderr, chunk)),
            });
    } catch (e) {
      res.write(encodeFrame(FRAME.stderr, Buffer.from(`paas: ${(e as Error).message}\n`)));
      code = 125;
    }
    res.end(encodeFrame(FRAME.exit, Buffer.from(String(code))));
  });

  api.post('/api/images/gc', async (req, res) => {
    const dryRun = (req.body as { dryRun?: unknown } | undefined)?.dryRun === true;
    const r = await collectImagesNow(deps, dryRun);
    res.json({
      ...r,
      lines: [
        ...r.untagged.map((t) => `${dryRun ? 'would untag' : 'untagged'} ${t}`),
        ...formatGcReport(r),
      ],
    });
  });
}

/** `tty=ROWSxCOLS` of an interactive `paas run`. */
function parseTerminalSize(v: unknown): TerminalSize {
  const m = typeof v === 'string' ? /^(\d{1,5})x(\d{1,5})$/.exec(v) : null;
  const size = { rows: Number(m?.[1]), cols: Number(m?.[2]) };
  if (m === null || !validSize(size)) {
    throw new InvalidArgument(
      `tty must be ROWSxCOLS (1-65535 each), not ${JSON.stringify(String(v)).slice(0, 40)}`,
      { field: 'tty' },
    );
  }
  return size;
}

/**
 * The request body of a run with a terminal: stdin frames become the command's input (with
 * backpressure), resize frames resize its terminal. A malformed stream ends the run.
 */
function terminalInput(
  req: Request,
  size: TerminalSize,
  bad: (message: string) => void,
): { stdin: NodeJS.ReadableStream; tty?: RunTerminal } {
  const stdin = new PassThrough();
  const dec = new FrameDecoder({ maxPayload: 64 * 1024 });
  let resize: ((s: TerminalSize) => void) | undefined;
  req.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = dec.push(chunk);
    } catch (e) {
      req.pause();
      return bad((e as Error).message);
    }
    for (const f of frames) {
      if (f.type === FRAME.stdin) {
        if (!stdin.write(f.payload)) {
          req.pause();
          stdin.once('drain', () => req.resume());
        }
      } else if (f.type === FRAME.resize) {
        const m = /^(\d{1,5}) (\d{1,5})$/.exec(f.payload.toString('latin1'));
        if (m !== null) resize?.({ rows: Number(m[1]), cols: Number(m[2]) });
      }
    }
  });
  req.on('end', () => stdin.end());
  return { stdin, tty: { ...size, control: (fn) => (resize = fn) } };
}
