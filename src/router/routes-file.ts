// The node plane's persisted route table (routes.json): written by its router process on
// every change, and by a plane handing over to it (handover in select.ts) before it starts.
import { readFileSync } from 'node:fs';
import { writeFileWhole } from '../files/index.ts';
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
  writeFileWhole(path, `${JSON.stringify(table, null, 2)}\n`, { mode: 0o600, fsync: true });
}
