// A small client of the Docker Engine API over its unix socket (node:http with socketPath):
// the Swarm backend's only way to the engine, so no docker CLI is in the product path.
// API v1.41 is Debian bookworm's docker.io (20.10) and every later engine speaks it.
// https://docs.docker.com/engine/api/v1.41/
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type { IncomingMessage } from 'node:http';
import { RuntimeError } from '../errors/index.ts';

// node:http through require, not `import`: Node's ESM view of node:http reads every export,
// and three (WebSocket, CloseEvent, MessageEvent) load Node's bundled undici, ~10 MB resident
// that the daemon never uses (README: Footprint; test/lazy-imports.test.ts).
const { request } = createRequire(import.meta.url)('node:http') as typeof Http;

export const ENGINE_API = '/v1.41';

export class Engine {
  readonly socketPath: string;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  /** One JSON call; a non-2xx answer throws with the engine's own message. */
  async call<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const res = await this.send(method, path, body, headers);
    const text = (await collect(res)).toString('utf8');
    if ((res.statusCode ?? 500) >= 300) {
      let message = text.trim();
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        // not JSON: the raw text says it
      }
      throw new RuntimeError(`docker engine: ${method} ${path}: ${res.statusCode} ${message}`, {
        status: res.statusCode,
      });
    }
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** A raw answer (logs): the caller reads the stream. */
  async raw(method: string, path: string): Promise<Buffer> {
    const res = await this.send(method, path);
    const buf = await collect(res);
    if ((res.statusCode ?? 500) >= 300)
      throw new RuntimeError(
        `docker engine: ${method} ${path}: ${res.statusCode} ${buf.toString('utf8').trim()}`,
        { status: res.statusCode },
      );
    return buf;
  }

  private send(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path: `${ENGINE_API}${path}`,
          headers: {
            ...headers,
            ...(payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': payload.length }),
          },
          timeout: 60_000,
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 60 s')));
      req.on('error', (e) =>
        reject(
          new RuntimeError(
            `docker engine at ${this.socketPath}: ${method} ${path}: ${e.message}`,
            {},
            { cause: e },
          ),
        ),
      );
      req.end(payload);
    });
  }
}

function collect(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    res.on('data', (b: Buffer) => parts.push(b));
    res.on('end', () => resolve(Buffer.concat(parts)));
    res.on('error', reject);
  });
}

/**
 * Splits a non-TTY log or attach stream into its frames: an 8-byte header (stream type,
 * 3 zero bytes, big-endian length) before each payload (API docs, "Stream format").
 */
export function demux(buf: Buffer): { stream: 'stdout' | 'stderr'; data: Buffer }[] {
  const out: { stream: 'stdout' | 'stderr'; data: Buffer }[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const size = buf.readUInt32BE(i + 4);
    const stream = buf[i] === 2 ? 'stderr' : 'stdout';
    out.push({ stream, data: buf.subarray(i + 8, i + 8 + size) });
    i += 8 + size;
  }
  return out;
}

/**
 * The X-Registry-Auth header: the credentials the nodes pull with, in Go's
 * base64.URLEncoding, which is the URL alphabet *with* `=` padding (Node's `base64url` has
 * none, and the engine then drops the credentials as "invalid authconfig: unexpected EOF").
 */
export function registryAuth(server: string, username: string, password: string): string {
  return Buffer.from(JSON.stringify({ username, password, serveraddress: server }))
    .toString('base64')
    .replace(/\+/g, '-')
    .replace(/\//g, '_');
}
