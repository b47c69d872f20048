// Spawning helper processes (the native shim, runc) with captured or passed-through stdio.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { ProcessResult, RunOptions } from './types.ts';
import { constants } from 'node:os';

export interface SpawnOptions extends RunOptions {
  /** Keep at most this many bytes of each captured stream. */
  captureLimit?: number;
  /** Opens a pipe at the child's fd 3 and hands its writing end over. */
  fd3?: (w: Writable) => void;
}

/** Runs a command to completion. 'pipe' captures (and streams lines to onLine); 'inherit' passes stdio through. */
export function runProcess(
  cmd: string,
  args: string[],
  opts: SpawnOptions = {},
): Promise<ProcessResult> {
  const inherit = opts.stdio === 'inherit';
  const limit = opts.captureLimit ?? 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const stdin = opts.stdin === undefined ? 'ignore' : 'pipe';
    const child = spawn(cmd, args, {
      stdio: inherit
        ? 'inherit'
        : opts.fd3 === undefined
          ? [stdin, 'pipe', 'pipe']
          : [stdin, 'pipe', 'pipe', 'pipe'],
    });
    if (opts.signal !== undefined) {
      const kill = () => child.kill('SIGKILL');
      if (opts.signal.aborted) kill();
      else opts.signal.addEventListener('abort', kill, { once: true });
      child.once('close', () => opts.signal!.removeEventListener('abort', kill));
    }
    if (opts.fd3 !== undefined) {
      const w = child.stdio[3] as Writable;
      w.on('error', () => undefined); // the child exited: nothing left to resize
      opts.fd3(w);
    }
    const out = { stdout: '', stderr: '' };
    const partial = { stdout: '', stderr: '' };
    const feed = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      opts.onData?.(stream, chunk);
      const text = chunk.toString('utf8');
      if (out[stream].length < limit) out[stream] += text.slice(0, limit - out[stream].length);
      if (opts.onLine === undefined) return;
      const lines = (partial[stream] + text).split('\n');
      partial[stream] = lines.pop() ?? '';
      for (const l of lines) opts.onLine(stream, l);
    };
    child.stdout?.on('data', feed('stdout'));
    child.stderr?.on('data', feed('stderr'));
    if (child.stdin !== null && opts.stdin !== undefined) {
      child.stdin.on('error', () => undefined);
      if (typeof opts.stdin === 'string' || Buffer.isBuffer(opts.stdin))
        child.stdin.end(opts.stdin);
      else opts.stdin.pipe(child.stdin);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const s of ['stdout', 'stderr'] as const)
        if (partial[s] !== '' && opts.onLine !== undefined) opts.onLine(s, partial[s]);
      resolve({
        exitCode: code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)),
        signal: signal ?? null,
        stdout: out.stdout,
        stderr: out.stderr,
      });
    });
  });
}
