// Heroku-style progress lines for a push or a release, mirrored into the app's log as
// `app[build]` (build output) and `paas` (platform events).
import type { AppName } from '../apps/index.ts';
import type { LogStore } from '../logs/index.ts';
import type { Output } from './types.ts';

export class Reporter {
  private readonly out: Output;
  private readonly logs: LogStore;
  readonly app: AppName;

  constructor(app: AppName, out: Output, logs: LogStore) {
    this.app = app;
    this.out = out;
    this.logs = logs;
  }

  /** Where the lines go: a scheduler's rollout reports on the same output. */
  get output(): Output {
    return this.out;
  }

  get signal(): AbortSignal | undefined {
    return this.out.signal;
  }

  /** A pipeline step's headline: `-----> Building …`. */
  step(text: string): void {
    this.out.write(`-----> ${text}\n`);
    this.logs.append(this.app, { source: 'system', text });
  }

  /** Build output, indented under its step. */
  build(line: string): void {
    this.out.write(`       ${line}\n`);
    this.logs.append(this.app, { source: 'build', ps: 'build', text: line });
  }

  info(text: string): void {
    this.out.write(`       ${text}\n`);
    this.logs.append(this.app, { source: 'system', text });
  }

  error(text: string): void {
    this.out.write(` !     ${text}\n`);
    this.logs.append(this.app, { source: 'system', text: `error: ${text}` });
  }

  /** Runs fn as a named, timed step. */
  async timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    this.step(name);
    const r = await fn();
    this.info(`${name.replace(/…$/, '')} done in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    return r;
  }
}

export function appUrl(app: string, domain: string, httpPort: number): string {
  return `http://${app}.${domain}:${httpPort}/`;
}
