// The pre-receive hook, run by git-receive-pack for every push. It forwards the ref updates
// (and the quarantine object directory, where the pushed objects wait until accepted) to the
// daemon over a unix socket, copies the daemon's output to stderr — which git sends to the
// pusher as `remote:` lines — and exits with the daemon's verdict. If the daemon goes away,
// the push is declined: no ref moves without a finished deploy decision.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const socketPath = process.argv[2];

async function readStdin(): Promise<string> {
  let s = '';
  for await (const chunk of process.stdin) s += String(chunk);
  return s;
}

async function main(): Promise<number> {
  if (socketPath === undefined) {
    process.stderr.write('paas: hook misconfigured (no socket)\n');
    return 1;
  }
  const refs = (await readStdin())
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [oldSha, newSha, ref] = l.split(' ');
      return { oldSha, newSha, ref };
    });
  const env: Record<string, string> = {};
  for (const k of [
    'GIT_OBJECT_DIRECTORY',
    'GIT_ALTERNATE_OBJECT_DIRECTORIES',
    'GIT_QUARANTINE_PATH',
  ]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return new Promise<number>((resolve) => {
    let exit: number | null = null;
    const sock = connect(socketPath);
    sock.on('error', (e) => {
      process.stderr.write(`paas: cannot reach the paas daemon (${e.message}); push declined\n`);
      resolve(1);
    });
    sock.on('connect', () => {
      sock.write(`${JSON.stringify({ gitDir: process.cwd(), refs, env })}\n`);
    });
    const rl = createInterface({ input: sock });
    rl.on('line', (line) => {
      let m: { out?: string; exit?: number };
      try {
        m = JSON.parse(line) as typeof m;
      } catch {
        return;
      }
      if (typeof m.out === 'string') process.stderr.write(m.out);
      if (typeof m.exit === 'number') exit = m.exit;
    });
    rl.on('close', () => {
      if (exit === null)
        process.stderr.write('paas: the paas daemon stopped during the push; push declined\n');
      resolve(exit ?? 1);
    });
  });
}

main().then(
  (code) => process.exit(code),
  () => process.exit(1),
);
