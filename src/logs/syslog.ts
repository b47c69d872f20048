// A log line as Heroku's drains send it (devcenter.heroku.com/articles/log-drains): an RFC 5424
// message, framed for TCP by RFC 6587 §3.4.1 octet counting (`<length> <message>`), facilities
// local0, local3 and local7. Heroku's fields, with the app's name where Heroku puts the drain
// token (HOSTNAME), so one receiver can tell apps apart:
//
//   <190>1 2026-12-02T07:08:29.123Z myapp app web.1 - - hello       app output (local7.info)
//   <190>1 …                       myapp app build - - Step 1/3      build output
//   <158>1 …                       myapp heroku router - - method=GET path="/" …   (local3.info)
//   <134>1 …                       myapp heroku paas - - Deploy v3 … platform  (local0.info)
//
// APP-NAME is `app` for what the app (or its build) printed and `heroku` for what the platform
// says, as Heroku tags them (`app[web.1]`, `heroku[router]`), so parsers written for Heroku's
// drains read ours. Unlike Heroku's, each message carries the STRUCTURED-DATA NILVALUE after
// MSGID (`- -`), which RFC 5424 §6 requires and strict parsers insist on.
import type { LogLine } from './line.ts';

const LOCAL0 = 16;
const LOCAL3 = 19;
const LOCAL7 = 23;
const INFO = 6;

// RFC 5424 §6.2.3: FULL-DATE "T" FULL-TIME, at most six fraction digits.
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)$/;

/** RFC 5424 PRINTUSASCII (33..126), cut to a field's length, NILVALUE when empty. */
function field(s: string, max: number): string {
  const v = s.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return v === '' ? '-' : v;
}

export interface SyslogFields {
  pri: number;
  appName: 'app' | 'heroku';
  procId: string;
}

export function syslogFields(l: Pick<LogLine, 'source' | 'ps'>): SyslogFields {
  switch (l.source) {
    case 'app':
      return { pri: LOCAL7 * 8 + INFO, appName: 'app', procId: l.ps ?? 'run' };
    case 'build':
      return { pri: LOCAL7 * 8 + INFO, appName: 'app', procId: 'build' };
    case 'router':
      return { pri: LOCAL3 * 8 + INFO, appName: 'heroku', procId: 'router' };
    case 'system':
      return { pri: LOCAL0 * 8 + INFO, appName: 'heroku', procId: 'paas' };
  }
}

/** One RFC 5424 message (no framing) for a line of the app `app`. */
export function syslogMessage(app: string, l: LogLine): string {
  const f = syslogFields(l);
  let ts = l.ts;
  if (!TIMESTAMP.test(ts)) {
    const d = new Date(ts);
    ts = Number.isNaN(d.getTime()) ? new Date().toISOString() : d.toISOString();
  }
  // HOSTNAME ≤ 255, APP-NAME ≤ 48, PROCID ≤ 128 (RFC 5424 §6). The text is already one
  // printable line (escapeBytes), so it needs no escaping as MSG.
  return `<${f.pri}>1 ${ts} ${field(app, 255)} ${f.appName} ${field(f.procId, 128)} - - ${l.text}`;
}

/** RFC 6587 §3.4.1 octet-counting frame: the message's length in bytes, a space, the message. */
export function octetFrame(message: string): Buffer {
  const body = Buffer.from(message);
  return Buffer.concat([Buffer.from(`${body.length} `), body]);
}
