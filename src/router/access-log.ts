// Access log: one pino JSON line per request in <dataDir>/logs/router/access.log, the file
// the logs subsystem tails as source `router`. Every worker appends to the same file
// (O_APPEND keeps whole lines whole); the primary alone rotates it by size and then tells
// the workers to reopen.
import { mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';

export interface AccessEntry {
  app: string | null;
  host: string | null;
  method: string;
  path: string;
  status: number;
  bytes: number;
  duration: number;
  upstream: string | null;
  requestId: string;
  remote: string | undefined;
}

export function accessLogPath(dataDir: string): string {
  return join(dataDir, 'logs', 'router', 'access.log');
}

export class AccessLog {
  private readonly dest: pino.DestinationStream & { reopen(): void; flushSync(): void; flush(cb?: (err?: Error) => void): void; end(): void };
  private readonly log: pino.Logger;
  private readonly timer: NodeJS.Timeout;

  constructor(path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    // Buffered and asynchronous: a line per request must not cost a write(2) per request.
    this.dest = pino.destination({ dest: path, append: true, sync: false, minLength: 8192, mkdir: true }) as never;
    this.log = pino({ base: { source: 'router' }, messageKey: 'msg' }, this.dest);
    // A quiet router still shows its last requests within a second.
    this.timer = setInterval(() => this.dest.flush(), 1000);
    this.timer.unref();
  }

  write(e: AccessEntry): void {
    this.log.info(e);
  }

  reopen(): void {
    this.dest.reopen();
  }

  close(): void {
    clearInterval(this.timer);
    try {
      this.dest.flushSync();
    } catch {
      // Nothing buffered, or the file went away: nothing to lose.
    }
    this.dest.end();
  }
}

/**
 * Rotate `path` to `path.1` (shifting older ones up to `keep`) once it is past `maxBytes`.
 * Returns true if it rotated, so the caller can make the writers reopen.
 */
export function rotateIfLarge(path: string, maxBytes: number, keep: number): boolean {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return false;
  }
  if (size < maxBytes) return false;
  for (let i = keep - 1; i >= 1; i--) {
    try {
      renameSync(`${path}.${i}`, `${path}.${i + 1}`);
    } catch {
      // That generation does not exist yet.
    }
  }
  renameSync(path, `${path}.1`);
  return true;
}
