// haproxy's runtime (stats) socket (management.txt §9.3). One command list per connection;
// haproxy answers and closes, so a reply is everything read until EOF.
import net from 'node:net';
import { RouterUnavailable } from '../../errors/index.ts';

export function cli(path: string, commands: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      reject(new RouterUnavailable(`haproxy socket ${path} did not answer in time`, { path }));
    }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('error', (err) => {
      clearTimeout(t);
      reject(
        new RouterUnavailable(
          `haproxy socket ${path}: ${err.message}`,
          { path },
          {
            cause: err,
          },
        ),
      );
    });
    s.once('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString());
    });
    s.end(`${commands.join(';')}\n`);
  });
}

/** `show stat` as rows keyed by the CSV header's field names. */
export function parseStat(csv: string): Record<string, string>[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const head = lines.shift();
  if (!head?.startsWith('# ')) return [];
  const names = head.slice(2).split(',');
  return lines.map((l) => {
    const v = l.split(',');
    const row: Record<string, string> = {};
    names.forEach((n, i) => (row[n] = v[i] ?? ''));
    return row;
  });
}
