// The framing of `paas run`'s streams: [type: 1 byte][length: 4 bytes BE][payload].
// Down, stdout and stderr stay apart and in order, and the exit status ends the stream
// in-band (an HTTP status is sent before the command runs, so it cannot carry it). Up, with
// a terminal, the request body is frames too: keystrokes, and resizes as "ROWS COLS".
import { InvalidArgument } from '../errors/index.ts';

export const FRAME = { stdout: 1, stderr: 2, exit: 3, stdin: 4, resize: 5 } as const;

export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export function encodeFrame(type: FrameType, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Incremental decoder: feed chunks as they arrive, get whole frames. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private readonly maxPayload: number;

  /** `maxPayload`: frames from an untrusted peer must not make us buffer without bound. */
  constructor(opts: { maxPayload?: number } = {}) {
    this.maxPayload = opts.maxPayload ?? 0xffffffff;
  }

  push(chunk: Buffer): { type: number; payload: Buffer }[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: { type: number; payload: Buffer }[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (len > this.maxPayload)
        throw new InvalidArgument(`frame of ${len} bytes is over the limit of ${this.maxPayload}`);
      if (this.buf.length < 5 + len) break;
      out.push({ type: this.buf.readUInt8(0), payload: this.buf.subarray(5, 5 + len) });
      this.buf = this.buf.subarray(5 + len);
    }
    return out;
  }

  /** Bytes of an unfinished frame (non-zero at the end of the stream: it was cut). */
  get pending(): number {
    return this.buf.length;
  }
}
