// The node plane's persisted route table (routes.json): written by its router process on
// every change, and by a plane handing over to it (handover in select.ts) before it starts.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { parseRouteTable, type RouteTable } from './table.ts';

export function loadTable(path: string): RouteTable | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  // A table that no longer validates is not served half-way: start empty and say so.
  try {
    return parseRouteTable(JSON.parse(text));
  } catch (err) {
    process.stderr.write(`router: ignoring ${path}: ${(err as Error).message}\n`);
    return null;
  }
}

export function saveTable(path: string, table: RouteTable): void {
  writeAtomic(path, `${JSON.stringify(table, null, 2)}\n`);
}

/** write-to-temp, fsync, rename: a crash leaves the old file or the new one, never half. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
