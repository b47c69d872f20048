// Public surface of logs: per-app stores with retention, the collector that copies container
// and router output into them, the line format, and the drains that ship an app's lines out.
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
export { DrainManager, MAX_DRAINS_PER_APP, type DrainInfo } from './drains.ts';
export { parseDrainUrl, DRAIN_KINDS, type DrainUrl, type DrainKind } from './drain-url.ts';
export type { DrainOptions, DrainState } from './drain.ts';
export type { DrainJsonLine } from './drain-https.ts';
export { syslogMessage, octetFrame } from './syslog.ts';
