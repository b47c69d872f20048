import { describe, expect, it } from 'vitest';
import {
  AppNotFound,
  BuildFailed,
  exitCodeFor,
  exitCodeForStatus,
  InvalidAppName,
  toHttp,
} from './index.ts';

describe('typed errors', () => {
  it('map to status and exit code in one table', () => {
    const e = new AppNotFound('app "x" does not exist', { app: 'x' });
    expect(e.code).toBe('AppNotFound');
    expect(e.status).toBe(404);
    expect(exitCodeFor(e)).toBe(3);
    expect(toHttp(e)).toEqual({
      status: 404,
      body: {
        error: { code: 'AppNotFound', message: 'app "x" does not exist', details: { app: 'x' } },
      },
    });
    expect(new BuildFailed('step 3 failed', { step: 3, exitCode: 1 }).status).toBe(422);
    expect(new InvalidAppName('bad') instanceof Error).toBe(true);
  });

  it('hide the message of unknown errors', () => {
    expect(toHttp(new Error('secret path /x'))).toEqual({
      status: 500,
      body: { error: { code: 'Internal', message: 'internal error', details: {} } },
    });
    expect(exitCodeFor(new Error('x'))).toBe(70);
  });

  it('maps API statuses back to exit codes', () => {
    expect(exitCodeForStatus(404)).toBe(3);
    expect(exitCodeForStatus(401)).toBe(4);
    expect(exitCodeForStatus(502)).toBe(70);
  });
});
