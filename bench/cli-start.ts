// `paas --version` and `paas help` start time, beside a bare `node -e 0` on the same Node.
// Goal: ≤ 80 ms (the Heroku CLI takes about a second).
import { join } from 'node:path';
import { hyperfine, table } from './lib.ts';

const repo = join(import.meta.dirname, '..');
const paas = join(repo, 'bin', 'paas');
const t = hyperfine({
  'paas --version': `${paas} --version`,
  'paas help': `${paas} help`,
  'node -e 0': `${process.execPath} -e 0`,
});
const base = t.find((x) => x.name === 'node -e 0')?.meanMs ?? 1;
console.log(
  table([
    ['command', 'mean ms', '± ms', 'vs node -e 0'],
    ...t.map((x) => [
      x.name,
      x.meanMs.toFixed(1),
      x.stddevMs.toFixed(1),
      `${(x.meanMs / base).toFixed(2)}x`,
    ]),
  ]),
);
