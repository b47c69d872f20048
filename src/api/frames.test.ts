import { describe, expect, it } from 'vitest';
import { encodeFrame, FRAME, FrameDecoder } from './frames.ts';

describe('run frames', () => {
  it('decodes frames split at any byte boundary, in order', () => {
    const wire = Buffer.concat([
      encodeFrame(FRAME.stdout, Buffer.from('hello\n')),
      encodeFrame(FRAME.stderr, Buffer.from('oops')),
      encodeFrame(FRAME.stdout, Buffer.alloc(0)),
      encodeFrame(FRAME.exit, Buffer.from('7')),
    ]);
    for (const step of [1, 2, 3, 7, wire.length]) {
      const d = new FrameDecoder();
      const got: string[] = [];
      for (let i = 0; i < wire.length; i += step)
        for (const f of d.push(wire.subarray(i, i + step)))
          got.push(`${f.type}:${f.payload.toString()}`);
      expect(got).toEqual(['1:hello\n', '2:oops', '1:', '3:7']);
      expect(d.pending).toBe(0);
    }
  });

  it('refuses a frame longer than the limit before buffering it', () => {
    const d = new FrameDecoder({ maxPayload: 16 });
    expect(d.push(encodeFrame(FRAME.stdin, Buffer.from('a'.repeat(16))))).toHaveLength(1);
    const head = Buffer.from([FRAME.stdin, 0xff, 0xff, 0xff, 0xff]);
    expect(() => d.push(head)).toThrow(/frame of 4294967295 bytes is over the limit of 16/);
  });

  it('reports a cut stream as pending bytes', () => {
    const d = new FrameDecoder();
    expect(d.push(encodeFrame(FRAME.stdout, Buffer.from('abcdef')).subarray(0, 8))).toEqual([]);
    expect(d.pending).toBe(8);
  });
});
