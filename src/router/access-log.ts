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

/** A logged path (with its query) is cut here: a line stays one bounded JSON line. */
export const LOGGED_PATH_MAX = 2048;
/** A logged Host (the header as sent, when it is not a valid name) is cut here. */
export const LOGGED_HOST_MAX = 255;

export function accessLogPath(dataDir: string): string {
  return join(dataDir, 'logs', 'router', 'access.log');
}

export class AccessLog {
  private readonly dest: pino.DestinationStream &
    NodeJS.EventEmitter & {
      reopen(): void;
      flush(cb?: (err?: Error) => void): void;
      end(): void;
      fd: number;
    };
  private failed = false;
  private readonly log: pino.Logger;

  constructor(path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    // Buffered and asynchronous: a line per request must not cost a write(2) per request.
    // periodicFlush: a quiet router still shows its last requests within a second.
    this.dest = pino.destination({
      dest: path,
      append: true,
      sync: false,
      minLength: 8192,
      mkdir: true,
      periodicFlush: 1000,
    }) as never;
    // A full disk or a removed directory must cost log lines, not the router.
    this.dest.on('error', (err: Error) => {
      if (!this.failed) process.stderr.write(`router: access log ${path}: ${err.message}\n`);
      this.failed = true;
    });
    this.log = pino({ base: { source: 'router' }, messageKey: 'msg' }, this.dest);
  }

  write(e: AccessEntry): void {
    this.log.info(e);
  }

  reopen(): void {
    this.dest.reopen();
  }

  /** Write out what is buffered and close the file. */
  async close(): Promise<void> {
    // The file is opened asynchronously: a logger closed right after creation waits for it.
    if (this.dest.fd < 0 && !this.failed)
      await new Promise((r) => {
        this.dest.once('ready', r);
        this.dest.once('error', r);
      });
    await new Promise<void>((resolve) => {
      this.dest.once('close', () => resolve());
      this.dest.once('error', () => resolve());
      this.dest.end();
    });
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
