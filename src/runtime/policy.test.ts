// native/seccomp.list as the runc backend reads it: the same rules seccomp-gen compiles for
// the native backend (escape.test.ts shows both enforce them alike).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../test/helpers/host.ts';
import { seccompFromList } from './policy.ts';

describe('seccompFromList', () => {
  const profile = seccompFromList(readFileSync(join(REPO, 'native', 'seccomp.list'), 'utf8'));
  const rules = (n: string) => profile.syscalls.filter((r) => r.names.includes(n));

  it('is an allowlist: EPERM by default, the plain names allowed as one rule', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(profile.defaultErrnoRet).toBe(1);
    expect(profile.syscalls[0]?.action).toBe('SCMP_ACT_ALLOW');
    expect(profile.syscalls[0]?.names).toEqual(expect.arrayContaining(['read', 'execve']));
    for (const refused of ['mount', 'unshare', 'bpf', 'io_uring_setup', 'lsm_list_modules'])
      expect(rules(refused)).toEqual([]);
  });

  it('keeps the argument filters: AF_VSOCK, namespaces in clone, clone3, device nodes', () => {
    expect(rules('socket')).toEqual([
      {
        names: ['socket'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }],
      },
    ]);
    expect(rules('clone')[0]?.args).toEqual([
      { index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' },
    ]);
    expect(rules('clone3')).toEqual([
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, args: undefined },
    ]);
    expect(rules('mknodat').map((r) => r.args?.[0]?.valueTwo)).toEqual([
      0, 0o100000, 0o10000, 0o140000,
    ]);
    expect(rules('personality')).toHaveLength(5);
  });

  it('names the line of a malformed rule', () => {
    expect(() => seccompFromList('read\nsocket a0~40\n')).toThrow(/seccomp.list:2: bad condition/);
    expect(() => seccompFromList('clone3 errno:EINVAL\n')).toThrow(/seccomp.list:1: errno/);
  });
});
