// Public surface of the container runtime.
import { InvalidArgument } from '../errors/index.ts';
import { NativeRuntime } from './native.ts';
import { RuncRuntime } from './runc.ts';
import type { Runtime, RuntimeName, RuntimeOptions } from './types.ts';

export type * from './types.ts';
export { parseCpus, parseMemory, parsePids } from './spec.ts';
export { Network } from './network.ts';
export { validSize } from './base.ts';
export { detectCgroups } from './cgroups.ts';
export { exitOf } from './exit.ts';

export const RUNTIME_NAMES: readonly RuntimeName[] = ['native', 'runc'];

/** Explicit backend selection: an unknown name is an error, never a fallback. */
export function createRuntime(name: string, opts: RuntimeOptions): Runtime {
  switch (name) {
    case 'native':
      return new NativeRuntime(opts);
    case 'runc':
      return new RuncRuntime(opts);
    default:
      throw new InvalidArgument(
        `unknown runtime "${name}": use one of ${RUNTIME_NAMES.join(', ')}`,
        { runtime: name },
      );
  }
}
