// One daemon per data dir. Two would both adopt the same containers, both supervise and
// restart them, and both write the route table and the state database. The claim is an
// abstract unix socket named after the data dir's real path: binding it is atomic, and the
// kernel lets it go with the process however that ends (kill -9 included), so there is no
// stale lock to guess about and no pid that may have been reused.
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { DataDirInUse } from '../errors/index.ts';

export interface InstanceClaim {
  release(): Promise<void>;
}

/** The socket's name: abstract (a leading NUL), one per data dir, short enough for sun_path. */
export function claimName(dataDir: string): string {
  const real = realpathSync(dataDir);
  return `\0paas-daemon-${createHash('sha256').update(real).digest('hex').slice(0, 32)}`;
}

/**
 * Claims `dataDir` for this process, or throws DataDirInUse naming the process that holds
 * it. Whoever connects to the claim is told the holder's pid, and nothing else.
 */
export async function claimDataDir(dataDir: string): Promise<InstanceClaim> {
  const name = claimName(dataDir);
  const server: Server = createServer((s) => s.end(`${process.pid}\n`));
  server.unref();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: name, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    const pid = await holderPid(name);
    throw new DataDirInUse(
      `data dir ${dataDir} is in use by another paas daemon${pid === null ? '' : ` (pid ${pid})`}; stop it first`,
      { dataDir, pid },
    );
  }
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The pid the holder tells, or null when it does not answer within a second. */
function holderPid(name: string): Promise<number | null> {
  return new Promise((resolve) => {
    let got = '';
    const s = connect({ path: name });
    const done = (pid: number | null) => {
      clearTimeout(timer);
      s.destroy();
      resolve(pid);
    };
    const timer = setTimeout(() => done(null), 1000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got += d.slice(0, 32)));
    s.on('end', () => done(/^\d{1,10}\n$/.test(got) ? Number(got.trim()) : null));
    s.on('error', () => done(null));
  });
}
