// run NAME -- CMD…: a one-off container of the current release. Our stdin streams up as the
// request body while the output streams down as frames (src/daemon/frames.ts), over one
// HTTP/1.1 exchange; we exit with the command's status. There is no pseudo-terminal: an
// interactive program sees pipes, not a TTY (line-by-line input still works).
import { request } from 'node:http';
import { parse as parseArgs } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { FRAME, FrameDecoder } from '../../daemon/frames.ts';
import { ApiError, apiBase, apiToken, enc } from './client.ts';

export async function run(_name: string, args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  const { positionals } = parseArgs({ args: dash < 0 ? args : args.slice(0, dash), strict: true, allowPositionals: true, options: {} });
  const command = dash < 0 ? positionals.slice(1) : args.slice(dash + 1);
  const app = parseAppName(positionals[0]);
  if (command.length === 0) throw new InvalidArgument('run NAME -- CMD…: give the command after "--"');
  const url = new URL(`${apiBase()}/api/apps/${enc(app)}/run`);
  url.searchParams.set('command', JSON.stringify(command));
  const token = apiToken();
  return new Promise<number>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => {
          let err: { code?: string; message?: string } = {};
          try {
            err = (JSON.parse(body) as { error?: typeof err }).error ?? {};
          } catch {
            // not JSON
          }
          reject(new ApiError(res.statusCode ?? 500, err.code ?? 'HttpError', err.message ?? `${res.statusCode} ${res.statusMessage}`, {}));
        });
        return;
      }
      const dec = new FrameDecoder();
      let code: number | null = null;
      res.on('data', (chunk: Buffer) => {
        for (const f of dec.push(chunk)) {
          if (f.type === FRAME.stdout) process.stdout.write(f.payload);
          else if (f.type === FRAME.stderr) process.stderr.write(f.payload);
          else if (f.type === FRAME.exit) code = Number(f.payload.toString());
        }
      });
      res.on('end', () => {
        process.stdin.unpipe(req);
        process.stdin.destroy();
        if (code === null) reject(new ApiError(502, 'RunInterrupted', 'the connection to the daemon ended before the command did', {}));
        else resolve(code);
      });
      res.on('error', reject);
    });
    req.on('error', (e) => reject(new ApiError(503, 'Unavailable', `cannot reach the paas daemon at ${apiBase()} (${(e as NodeJS.ErrnoException).code ?? e.message})`, {})));
    req.flushHeaders();
    process.stdin.pipe(req);
  });
}
