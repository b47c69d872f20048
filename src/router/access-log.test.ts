import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessLog, rotateIfLarge } from './access-log.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const entry = (requestId: string) => ({
  app: 'web',
  host: 'web.paas.test',
  method: 'GET',
  path: '/',
  status: 200,
  bytes: 2,
  duration: 1.5,
  upstream: '127.0.0.1:5000',
  requestId,
  remote: '127.0.0.1',
});

describe('access log rotation', () => {
  it('rotates by size, keeps N generations, and the writer carries on in a fresh file after reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paas-access-'));
    dirs.push(dir);
    const path = join(dir, 'logs', 'router', 'access.log');
    const log = new AccessLog(path);
    for (let i = 0; i < 50; i++) log.write(entry(`before-${i}`));
    await log.close();
    expect(rotateIfLarge(path, 1_000_000, 3)).toBe(false); // small: left alone
    expect(rotateIfLarge(path, 100, 3)).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect(readFileSync(`${path}.1`, 'utf8')).toContain('before-49');

    const again = new AccessLog(path);
    again.write(entry('after-0'));
    await again.close();
    expect(readFileSync(path, 'utf8')).toContain('after-0');
    expect(readFileSync(path, 'utf8')).not.toContain('before-');

    // Older generations shift up and the oldest beyond `keep` is overwritten.
    for (let i = 0; i < 4; i++) {
      writeFileSync(path, `generation ${i}\n`.repeat(20));
      rotateIfLarge(path, 100, 3);
    }
    expect(readFileSync(`${path}.1`, 'utf8')).toContain('generation 3');
    expect(readFileSync(`${path}.3`, 'utf8')).toContain('generation 1');
    expect(existsSync(`${path}.4`)).toBe(false);
  });

  it('reopen() moves a live writer to the new file after a rename', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paas-access-'));
    dirs.push(dir);
    const path = join(dir, 'access.log');
    const log = new AccessLog(path);
    log.write(entry('one'));
    await new Promise((r) => setTimeout(r, 1200)); // the periodic flush
    expect(rotateIfLarge(path, 1, 2)).toBe(true);
    log.reopen();
    await new Promise((r) => setTimeout(r, 50));
    log.write(entry('two'));
    await log.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toContain('"one"');
    const current = readFileSync(path, 'utf8');
    expect(current).toContain('"two"');
    expect(JSON.parse(current.trim())).toMatchObject({
      source: 'router',
      app: 'web',
      requestId: 'two',
      status: 200,
    });
  });
});
