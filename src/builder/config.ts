// Metadata instructions: they change the image config (OCI image spec config.md, Docker's
// shapes for Healthcheck and Shell), not the filesystem. Each returns its text after
// substitution, which feeds the step's cache key.
import { InvalidDockerfile } from '../errors/index.ts';
import type { ContainerConfig, Healthcheck } from '../registry/index.ts';
import type { Instr } from './parse.ts';
import { expandWord, expandWords, type Vars } from './words.ts';

export const DEFAULT_SHELL = ['/bin/sh', '-c'];

function fail(line: number, why: string): never {
  throw new InvalidDockerfile(`Dockerfile line ${line}: ${why}`, { line });
}

export function envMap(config: ContainerConfig): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of config.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
    else m.set(kv, '');
  }
  return m;
}

/** Variables visible to substitution: ARGs in scope, overridden by ENV (Dockerfile reference §ARG). */
export function substitutionVars(config: ContainerConfig, args: ReadonlyMap<string, string>): Vars {
  return new Map([...args, ...envMap(config)]);
}

function setEnv(config: ContainerConfig, name: string, value: string): void {
  const env = (config.Env ?? []).filter((kv) => kv.split('=')[0] !== name);
  env.push(`${name}=${value}`);
  config.Env = env;
}

/** Shell form → `[...SHELL, text]`; exec form as written. */
export function commandOf(instr: Instr, config: ContainerConfig): string[] {
  if (instr.json !== null) return instr.json;
  return [...(config.Shell ?? DEFAULT_SHELL), instr.args];
}

/** Go duration (`30s`, `1m30s`, `500ms`) → nanoseconds, as Docker stores Healthcheck times. */
export function parseDuration(raw: string, line: number, flag: string): number {
  const units: Record<string, number> = {
    ns: 1,
    us: 1e3,
    µs: 1e3,
    ms: 1e6,
    s: 1e9,
    m: 60e9,
    h: 3600e9,
  };
  let rest = raw.trim();
  let total = 0;
  if (rest === '' || rest === '0') return 0;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (m === null)
      fail(line, `HEALTHCHECK --${flag}=${raw} is not a duration (examples: 30s, 1m30s, 500ms)`);
    total += Number(m[1]) * (units[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

function healthcheck(instr: Instr, vars: Vars, escape: string): Healthcheck {
  const { line } = instr;
  const first = instr.args.split(/\s+/)[0]?.toUpperCase();
  if (first === 'NONE') {
    if (instr.args.trim().split(/\s+/).length > 1 || instr.flags.size > 0)
      fail(line, 'HEALTHCHECK NONE takes no arguments');
    return { Test: ['NONE'] };
  }
  if (first !== 'CMD')
    fail(line, 'HEALTHCHECK must be "HEALTHCHECK [options] CMD command" or "HEALTHCHECK NONE"');
  const rest = instr.args.trim().slice(3).trim();
  if (rest === '') fail(line, 'HEALTHCHECK CMD needs a command');
  const json = rest.startsWith('[')
    ? (() => {
        try {
          const v: unknown = JSON.parse(rest);
          return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
        } catch {
          return null;
        }
      })()
    : null;
  const hc: Healthcheck = { Test: json !== null ? ['CMD', ...json] : ['CMD-SHELL', rest] };
  for (const [flag, rawValue] of instr.flags) {
    const value = expandWord(rawValue, vars, escape, line);
    if (flag === 'retries') {
      if (!/^\d+$/.test(value)) fail(line, `HEALTHCHECK --retries=${value} must be a whole number`);
      hc.Retries = Number(value);
    } else {
      const ns = parseDuration(value, line, flag);
      if (flag === 'interval') hc.Interval = ns;
      else if (flag === 'timeout') hc.Timeout = ns;
      else if (flag === 'start-period') hc.StartPeriod = ns;
      else if (flag === 'start-interval') hc.StartInterval = ns;
    }
  }
  return hc;
}

function exposed(word: string, line: number): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(word);
  if (m === null)
    fail(line, `EXPOSE ${word}: use port[/tcp|udp|sctp] or a range such as 8000-8010/tcp`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (from < 1 || to > 65535 || to < from) fail(line, `EXPOSE ${word}: ports must be 1-65535`);
  const out: string[] = [];
  for (let p = from; p <= to; p++) out.push(`${p}/${proto}`);
  return out;
}

export type MetaState = {
  config: ContainerConfig;
  /** CMD set in this stage (an ENTRYPOINT resets an inherited CMD, as Docker does). */
  cmdSet: boolean;
};

/** Applies ENV, LABEL, MAINTAINER, USER, EXPOSE, VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK. */
export function applyMeta(st: MetaState, instr: Instr, vars: Vars, escape: string): string {
  const c = st.config;
  const { line } = instr;
  const word = (s: string): string => expandWord(s, vars, escape, line);
  switch (instr.keyword) {
    case 'ENV': {
      // Every value in one ENV sees the variables as they were before it (Docker's rule).
      const pairs = instr.props.map((p) => {
        if (p.value === null) fail(line, `ENV ${p.name} needs a value`);
        return [word(p.name), word(p.value)] as const;
      });
      for (const [k, v] of pairs) setEnv(c, k, v);
      return `ENV ${pairs.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}`;
    }
    case 'LABEL': {
      const pairs = instr.props.map((p) => [word(p.name), word(p.value ?? '')] as const);
      c.Labels = { ...(c.Labels ?? {}) };
      for (const [k, v] of pairs) c.Labels[k] = v;
      return `LABEL ${pairs.map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ')}`;
    }
    case 'MAINTAINER': {
      c.Labels = { ...(c.Labels ?? {}), maintainer: instr.args };
      return `MAINTAINER ${instr.args}`;
    }
    case 'USER': {
      const user = word(instr.args).trim();
      if (user === '') fail(line, 'USER needs a user name or uid[:gid]');
      c.User = user;
      return `USER ${user}`;
    }
    case 'EXPOSE': {
      const ports = expandWords(instr.args, vars, escape, line).flatMap((w) => exposed(w, line));
      if (ports.length === 0) fail(line, 'EXPOSE needs at least one port');
      c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
      for (const p of ports) c.ExposedPorts[p] = {};
      return `EXPOSE ${ports.join(' ')}`;
    }
    case 'VOLUME': {
      const paths = (instr.json ?? expandWords(instr.args, vars, escape, line)).map((p) =>
        instr.json ? word(p) : p,
      );
      if (paths.length === 0 || paths.some((p) => p.trim() === ''))
        fail(line, 'VOLUME needs at least one path');
      c.Volumes = { ...(c.Volumes ?? {}) };
      for (const p of paths) c.Volumes[p] = {};
      return `VOLUME ${JSON.stringify(paths)}`;
    }
    case 'STOPSIGNAL': {
      const sig = word(instr.args).trim();
      if (!/^(SIG)?[A-Z0-9+-]+$/.test(sig))
        fail(line, `STOPSIGNAL ${sig}: use a signal name such as SIGTERM or a number`);
      c.StopSignal = sig;
      return `STOPSIGNAL ${sig}`;
    }
    case 'CMD': {
      c.Cmd = commandOf(instr, c);
      st.cmdSet = true;
      return `CMD ${JSON.stringify(c.Cmd)}`;
    }
    case 'ENTRYPOINT': {
      c.Entrypoint = commandOf(instr, c);
      if (!st.cmdSet) c.Cmd = null;
      return `ENTRYPOINT ${JSON.stringify(c.Entrypoint)}`;
    }
    case 'SHELL': {
      if (instr.json === null || instr.json.length === 0)
        fail(line, 'SHELL must be written as a JSON array, e.g. SHELL ["/bin/bash", "-c"]');
      c.Shell = instr.json;
      return `SHELL ${JSON.stringify(c.Shell)}`;
    }
    case 'HEALTHCHECK': {
      c.Healthcheck = healthcheck(instr, vars, escape);
      return `HEALTHCHECK ${JSON.stringify(c.Healthcheck)}`;
    }
    default:
      return fail(line, `${instr.keyword} is not a metadata instruction`);
  }
}
