// Public surface of logs: per-app stores with retention, the collector that copies container
// and router output into them, and the line format.
export { LogStore, DEFAULT_RETENTION_BYTES, type AppendInput } from './store.ts';
export { LogCollector, Tailer } from './collector.ts';
export {
  formatLine,
  parseLine,
  escapeBytes,
  splitLong,
  tagOf,
  matches,
  SOURCES,
  MAX_LINE_BYTES,
  type LogLine,
  type Source,
  type Filter,
} from './line.ts';
