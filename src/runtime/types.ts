// The Runtime interface and its value types: what every backend (native, runc) implements
// and what the shared contract suite (contract.case.ts) holds them to.

export type RuntimeName = 'native' | 'runc';
export type NetMode = 'none' | 'bridge' | 'host';

export interface Limits {
  /** Memory limit in bytes (swap is held to the same limit). */
  memoryBytes?: number;
  /** CPU quota in cores, e.g. 0.5. */
  cpus?: number;
  /** Maximum number of tasks (processes + threads). */
  pids?: number;
}

export interface Volume {
  /** Absolute host path. */
  source: string;
  /** Absolute path inside the container; resolved inside the rootfs, never through a symlink leaving it. */
  target: string;
  readonly?: boolean;
  /**
   * A volume the platform made for the container (storage:mount's named volumes): while its
   * directory is still empty and root's, create() hands it to the container's user (the
   * shifted host ids under `userns`), as Docker does for a fresh named volume.
   */
  initOwner?: boolean;
}

export type RootfsSpec =
  /** A plain directory used as the root (bind-mounted). */
  | { dir: string }
  /**
   * Image layers, topmost first (overlayfs lowerdir order); a fresh writable layer goes on
   * top, or the caller's own `upper`/`work` dirs (same filesystem), which outlive the
   * container — how the builder captures what a RUN step changed.
   */
  | { lowers: string[]; upper?: string; work?: string };

/**
 * A user namespace: container uids/gids 0..count-1 are host hostUid.. / hostGid.., so the
 * container's root is an unprivileged host uid (native/SPEC.md `userns`). Image layers are
 * seen through idmapped mounts, not chowned; what the container writes (writable layer,
 * volumes) is owned by the shifted host ids.
 */
export interface UsernsMapping {
  hostUid: number;
  hostGid: number;
  count: number;
}

/** What a caller asks for. Validated and normalized by parseSpec before any backend sees it. */
export interface ContainerSpec {
  id?: string;
  rootfs: RootfsSpec;
  readonly?: boolean;
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** `name`, `uid`, `name:group`, `uid:gid`, resolved against the image's /etc/passwd and /etc/group. */
  user?: string;
  hostname?: string;
  net?: NetMode;
  limits?: Limits;
  volumes?: Volume[];
  /** Signal name sent by stop(), default SIGTERM. */
  stopSignal?: string;
  /** Free-form labels (app, process type, release…) kept with the container for list/adoption. */
  labels?: Record<string, string>;
  /** Run in a user namespace with this mapping (native backend only). */
  userns?: UsernsMapping;
  /** Grant CAP_NET_RAW (raw sockets: ping, traceroute); off by default (policy.ts). */
  netRaw?: boolean;
}

export type ContainerState = 'created' | 'running' | 'exited';

export interface ExitStatus {
  exitCode: number;
  signal: string | null;
  oomKilled: boolean;
  finishedAt: string;
}

export interface ContainerInfo {
  id: string;
  runtime: RuntimeName;
  state: ContainerState;
  /** Host pid of the container's init (PID 1 inside) while running. */
  pid: number | null;
  ip: string | null;
  createdAt: string;
  startedAt: string | null;
  exit: ExitStatus | null;
  labels: Record<string, string>;
  logPath: string;
}

export interface Stats {
  memoryBytes: number;
  memoryLimitBytes: number | null;
  cpuNanos: number;
  pids: number;
  oomKills: number;
  /** Times a fork or clone was refused because the pids limit was reached (pids.events `max`). */
  pidsLimitHits: number;
}

export interface ExecOptions {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** 'inherit' passes the caller's stdio through; 'pipe' captures stdout/stderr. */
  stdio?: 'inherit' | 'pipe';
  stdin?: string | Buffer;
}

export interface ProcessResult {
  exitCode: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  /**
   * run() only: what the container's cgroup saw before it was removed, so a caller can say
   * which limit a failed command ran into (the cgroup is gone once run() returns).
   */
  limitsHit?: { memory: boolean; pids: boolean };
}

export interface TerminalSize {
  rows: number;
  cols: number;
}

/** A pseudo-terminal for a foreground run (native backend): stdin, stdout and stderr become one terminal. */
export interface RunTerminal extends TerminalSize {
  /** Gets the function that resizes the terminal while the command runs. */
  control?: (resize: (size: TerminalSize) => void) => void;
}

export interface RunOptions {
  /** 'inherit' passes stdio through (container:run); 'pipe' streams lines to onLine. */
  stdio?: 'inherit' | 'pipe';
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** 'pipe' only: raw output chunks as they arrive (`paas run` relays them unsplit). */
  onData?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** 'pipe' only: the command's stdin, whole or streamed (ended when the stream ends). */
  stdin?: string | Buffer | NodeJS.ReadableStream;
  /** 'pipe' only: run under a terminal of this size; all output arrives as stdout. */
  tty?: RunTerminal;
  /** Kills the command (and so the container) when aborted, at any point of the run. */
  signal?: AbortSignal;
}

/** What a backend can do, so callers ask the backend instead of testing its name. */
export interface RuntimeFeatures {
  /** A terminal for foreground runs (`paas run` at a terminal). */
  readonly tty: boolean;
  /** A user namespace with idmapped layers (spec `userns`). */
  readonly userns: boolean;
}

export interface Runtime {
  readonly name: RuntimeName;
  readonly features: RuntimeFeatures;
  /** Prepares bundle, rootfs, cgroups and network; nothing runs yet. */
  create(spec: ContainerSpec): Promise<ContainerInfo>;
  /** Starts a created container detached; its shim outlives this process. */
  start(id: string): Promise<ContainerInfo>;
  /** Sends the stop signal, then SIGKILL after graceMs; resolves with the exit status. */
  stop(id: string, opts?: { graceMs?: number }): Promise<ExitStatus>;
  kill(id: string, signal?: string): Promise<void>;
  /** Resolves when the container exits; rejects on timeout or when `signal` aborts (the caller stopped caring). */
  wait(id: string, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<ExitStatus>;
  inspect(id: string): Promise<ContainerInfo>;
  list(): Promise<ContainerInfo[]>;
  stats(id: string): Promise<Stats>;
  exec(id: string, opts: ExecOptions): Promise<ProcessResult>;
  /** Frees everything the container holds: mounts, cgroups, network, IP, writable layer. */
  remove(id: string, opts?: { force?: boolean }): Promise<void>;
  /**
   * Frees what creates cut short by a crash left behind (a bundle that never got its meta: a
   * kill -9 between attaching the network and writing it): network namespace, IP lease,
   * cgroup, bundle. Only while no create is under way in this data dir (at daemon start).
   * Returns the ids it freed.
   */
  sweep(): Promise<string[]>;
  /** create + run in the foreground + remove: the exit status of the command. */
  run(spec: ContainerSpec, opts?: RunOptions): Promise<ProcessResult>;
}

export interface RuntimeOptions {
  dataDir: string;
  /** Bridge name and subnet for `net: bridge`. */
  bridge?: string;
  subnet?: string;
  /** Host-wide directory of IP leases (default /var/lib/paas-net): the bridge is shared. */
  networkStateDir?: string;
  /** Path of native/build (defaults to the checkout's). */
  nativeDir?: string;
  /** Parent cgroup name under each hierarchy, default `paas`. */
  cgroupParent?: string;
  /** A container's log file becomes `log.1` past this size (one older generation kept); default 8 MiB. */
  logMaxBytes?: number;
}
