// Waiting for a container's exit the way a supervisor must: for as long as it cares, through
// anything short of the container's removal.
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerNotFound, WaitTimeout } from '../errors/index.ts';
import type { ExitStatus, Runtime } from './types.ts';

/** Each wait's timeout: `keepWaiting` is asked again after it. */
const WAIT_SLICE_MS = 30_000;
/** After a wait that failed for another reason than a timeout or a removed container. */
const WAIT_RETRY_MS = 1000;

/**
 * How container `id` ended; null once it was removed (on purpose: a retired process, a
 * destroyed service) or `keepWaiting()` turned false. A wait that fails otherwise (the
 * runtime could not watch the container: out of inotify watches or files) is tried again
 * after a second: a process whose exit nobody waits for is never restarted.
 */
export async function exitOf(
  runtime: Runtime,
  id: string,
  opts: { signal?: AbortSignal; keepWaiting: () => boolean },
): Promise<ExitStatus | null> {
  while (opts.keepWaiting()) {
    try {
      return await runtime.wait(id, { timeoutMs: WAIT_SLICE_MS, signal: opts.signal });
    } catch (e) {
      if (e instanceof WaitTimeout) continue;
      if (e instanceof ContainerNotFound || !opts.keepWaiting()) return null;
      await sleep(WAIT_RETRY_MS, undefined, { ref: false });
    }
  }
  return null;
}
