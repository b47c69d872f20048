// Container security policy: the capability set both backends are given (native through its
// spec's `caps` list, runc through config.json), and for the runc backend what native/
// enforces in C: masked and read-only /proc paths, and the seccomp allowlist
// native/seccomp.list (the effect of Docker's default profile, moby
// profiles/seccomp/default.json, for a container without CAP_SYS_ADMIN) that paas-shim's
// filter is compiled from.
import { RuntimeError } from '../errors/index.ts';

/**
 * Docker's default set less CAP_NET_RAW, for apps and builds alike. Raw sockets let a
 * container forge packets on the bridge (ARP and source-address spoofing towards its
 * neighbours and the host) and sniff what reaches its veth; few apps need them (ping,
 * traceroute), so a container gets the capability only when its spec asks (`netRaw`).
 */
export const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const;

/** The capabilities of a container: the default set, plus CAP_NET_RAW when asked for. */
export function containerCaps(opts: { netRaw: boolean }): string[] {
  return opts.netRaw ? [...DEFAULT_CAPS, 'CAP_NET_RAW'] : [...DEFAULT_CAPS];
}

export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
] as const;

export const READONLY_PATHS = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
] as const;

/** The OCI `linux.seccomp` section: native/seccomp.list, the allowlist paas-shim's filter is
 * compiled from (its header says what is allowed and why), as runc reads it. runc answers
 * EPERM for an unlisted call (defaultErrnoRet) and prepends the same ENOSYS stub for calls
 * above the list that native/tools/seccomp-gen.c builds, so both backends answer alike. */
export interface OciSeccomp {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: OciSyscallRule[];
}
export interface OciSyscallRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
}

const ERRNO: Record<string, number> = { EPERM: 1, ENOSYS: 38 };
const OPS: Record<string, string> = {
  '==': 'SCMP_CMP_EQ',
  '!=': 'SCMP_CMP_NE',
  '<=': 'SCMP_CMP_LE',
  '>=': 'SCMP_CMP_GE',
  '<': 'SCMP_CMP_LT',
  '>': 'SCMP_CMP_GT',
};

/** Parses seccomp.list (the format is in its header; seccomp-gen.c reads the same). */
export function seccompFromList(text: string): OciSeccomp {
  const plain: string[] = [];
  const rules: OciSyscallRule[] = [];
  text.split('\n').forEach((raw, i) => {
    const [name, ...tokens] = (raw.split('#')[0] ?? '').trim().split(/\s+/).filter(Boolean);
    if (name === undefined) return;
    const bad = (what: string) => new RuntimeError(`seccomp.list:${i + 1}: ${what}`);
    const rule: OciSyscallRule = { names: [name], action: 'SCMP_ACT_ALLOW', args: [] };
    for (const t of tokens) {
      const errno = /^errno:(\w+)$/.exec(t);
      const masked = /^a([0-5])&(\w+)==(\w+)$/.exec(t);
      const cmp = /^a([0-5])(==|!=|<=|>=|<|>)(\w+)$/.exec(t);
      if (errno) {
        const e = ERRNO[errno[1] as string];
        if (e === undefined) throw bad(`errno: EPERM or ENOSYS, not ${errno[1]}`);
        rule.action = 'SCMP_ACT_ERRNO';
        rule.errnoRet = e;
      } else if (masked) {
        // OCI (libseccomp-golang): for MASKED_EQ, value is the mask and valueTwo the datum.
        rule.args?.push({
          index: Number(masked[1]),
          value: number(masked[2] as string),
          valueTwo: number(masked[3] as string),
          op: 'SCMP_CMP_MASKED_EQ',
        });
      } else if (cmp) {
        rule.args?.push({
          index: Number(cmp[1]),
          value: number(cmp[3] as string),
          op: OPS[cmp[2] as string] as string,
        });
      } else throw bad(`bad condition "${t}"`);
    }
    if (rule.action === 'SCMP_ACT_ALLOW' && rule.args?.length === 0) plain.push(name);
    else rules.push(rule.args?.length === 0 ? { ...rule, args: undefined } : rule);
  });
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: ERRNO.EPERM as number,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [{ names: plain, action: 'SCMP_ACT_ALLOW' }, ...rules],
  };
}

/** C's strtoull(…, 0): 0x… hex, 0… octal, else decimal. */
function number(s: string): number {
  const n = /^0x/i.test(s) ? parseInt(s, 16) : /^0[0-7]+$/.test(s) ? parseInt(s, 8) : Number(s);
  if (!Number.isSafeInteger(n)) throw new RuntimeError(`seccomp.list: bad number "${s}"`);
  return n;
}
