// certs:auto: automatic certificates for an app's custom domains (ACME HTTP-01, issue 18).
import { parseCommand } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { call, enc, printJson } from './client.ts';
import type { AutoCertOutcome, AutoCertsInfo } from '../../api/index.ts';

function line(o: AutoCertOutcome): string {
  switch (o.status) {
    case 'issued':
      return `${o.host}: certificate issued, valid until ${o.notAfter}`;
    case 'valid':
      return `${o.host}: certificate valid until ${o.notAfter}`;
    case 'failed':
      return `${o.host}: order failed: ${o.error} (next try after ${o.retryAt})`;
    case 'waiting':
      return `${o.host}: waiting until ${o.retryAt} after a failure${o.error === null ? '' : `: ${o.error}`}`;
    case 'skipped':
      return `${o.host}: skipped: ${o.reason}`;
  }
}

export async function run(_name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    email: { type: 'string' },
    off: { type: 'boolean' },
  });
  const app = parseAppName(positionals[0]);
  const path = `/api/apps/${enc(app)}/certs/auto`;
  if (values.off === true) {
    const r = await call<AutoCertsInfo>('DELETE', path);
    if (values.json === true) printJson(r);
    else
      process.stdout.write(
        `automatic certificates off for ${app}; certificates already issued keep serving until they expire\n`,
      );
    return 0;
  }
  process.stderr.write(`Ordering certificates for ${app} …\n`);
  const r = await call<AutoCertsInfo>(
    'POST',
    path,
    values.email === undefined ? {} : { email: values.email },
  );
  if (values.json === true) printJson(r);
  else {
    const outcomes = r.outcomes ?? [];
    if (outcomes.length === 0)
      process.stdout.write(
        `${app} has no custom domains yet (domains:add); each one added gets a certificate at the next check\n`,
      );
    for (const o of outcomes) process.stdout.write(`${line(o)}\n`);
    process.stdout.write(
      `automatic certificates on for ${app} (${r.directory}); renewed ${r.renewBeforeDays} days before expiry\n`,
    );
  }
  // A failed order is the command's failure, though auto stays on and retries with backoff.
  return (r.outcomes ?? []).some((o) => o.status === 'failed') ? 1 : 0;
}
