// run NAME -- CMD…: a one-off container of the current release. Our stdin streams up as the
// request body while the output streams down as frames (src/daemon/frames.ts), over one
// HTTP/1.1 exchange; we exit with the command's status. When stdin and stdout are both a
// terminal (and no --no-tty), the command gets a terminal of our size: our terminal goes
// raw, keystrokes and resizes go up as frames, and ^C reaches the command, not us.
import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parse as parseArgs } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { encodeFrame, FRAME, FrameDecoder } from '../../api/index.ts';
import { ApiError, apiBase, apiToken, enc, tlsOptions } from './client.ts';

export async function run(_name: string, args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  const { positionals, values } = parseArgs({
    args: dash < 0 ? args : args.slice(0, dash),
    strict: true,
    allowPositionals: true,
    options: { 'no-tty': { type: 'boolean' } },
  });
  const command = dash < 0 ? positionals.slice(1) : args.slice(dash + 1);
  const app = parseAppName(positionals[0]);
  if (command.length === 0)
    throw new InvalidArgument('run NAME -- CMD…: give the command after "--"');
  const url = new URL(`${apiBase()}/api/apps/${enc(app)}/run`);
  url.searchParams.set('command', JSON.stringify(command));
  const tty =
    values['no-tty'] !== true && process.stdin.isTTY === true && process.stdout.isTTY === true;
  if (tty)
    url.searchParams.set('tty', `${process.stdout.rows || 24}x${process.stdout.columns || 80}`);
  const token = apiToken();
  let restore = (): void => undefined;
  return new Promise<number>((resolve, reject) => {
    // Over https with the certificate `paas login` pinned (tlsOptions), else plain loopback.
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(
      url,
      {
        ...(url.protocol === 'https:' ? tlsOptions() : {}),
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/octet-stream',
          'transfer-encoding': 'chunked',
        },
      },
      (res) => {
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
            reject(
              new ApiError(
                res.statusCode ?? 500,
                err.code ?? 'HttpError',
                err.message ?? `${res.statusCode} ${res.statusMessage}`,
                {},
              ),
            );
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
          restore();
          process.stdin.unpipe(req);
          process.stdin.destroy();
          // Our body may still be open (stdin at a terminal never ends): the exchange is over,
          // and a half-open request would keep this process alive until the server gives up.
          req.destroy();
          if (code === null)
            reject(
              new ApiError(
                502,
                'RunInterrupted',
                'the connection to the daemon ended before the command did',
                {},
              ),
            );
          else resolve(code);
        });
        res.on('error', reject);
      },
    );
    req.on('error', (e) =>
      reject(
        new ApiError(
          503,
          'Unavailable',
          `cannot reach the paas daemon at ${apiBase()} (${(e as NodeJS.ErrnoException).code ?? e.message})`,
          {},
        ),
      ),
    );
    req.flushHeaders();
    if (tty) restore = attachTerminal(req);
    else process.stdin.pipe(req);
  });
}

/** Our terminal, raw, as the command's: keystrokes and size changes go up as frames. */
function attachTerminal(req: ClientRequest): () => void {
  const stdin = process.stdin;
  const onKeys = (d: Buffer) => req.write(encodeFrame(FRAME.stdin, d));
  const onResize = () =>
    req.write(
      encodeFrame(FRAME.resize, Buffer.from(`${process.stdout.rows} ${process.stdout.columns}`)),
    );
  stdin.setRawMode(true);
  stdin.on('data', onKeys);
  stdin.on('end', () => req.end());
  process.stdout.on('resize', onResize);
  // Whatever ends us, the operator's terminal must not stay raw.
  const restore = () => {
    process.stdout.off('resize', onResize);
    stdin.off('data', onKeys);
    if (stdin.isTTY) stdin.setRawMode(false);
    process.off('exit', restore);
  };
  process.on('exit', restore);
  return restore;
}
