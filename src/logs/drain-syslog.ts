// syslog+tcp:// and syslog+tls:// drains: one long-lived connection carrying RFC 5424
// messages in RFC 6587 octet-counting frames (RFC 5425 for TLS, which verifies the receiver's
// certificate against the system's CAs plus any the daemon was given). A refused or broken
// connection is redialled with backoff while lines wait in the drain's buffer. A receiver that
// accepts but stops reading fills the kernel's buffers and then ours; if its connection makes
// no progress for `stallMs` it is redialled, and the frames Node still held for it count as
// dropped. Bytes the kernel had accepted are gone with the connection: syslog over TCP has no
// acknowledgement (RFC 6587 §3.4), so they count as delivered.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates } from 'node:tls';
import { Drain } from './drain.ts';
import type { LogLine } from './line.ts';
import { octetFrame, syslogMessage } from './syslog.ts';

/**
 * Bytes handed to a socket beyond what the kernel took, before we stop writing. Generous: a
 * TLS socket takes one write per event-loop turn, so a small window makes a busy daemon's
 * TLS drain slower than a chatty app (at 64 KiB a turn, a burst overflowed a healthy one).
 */
const HIGH_WATER = 1024 * 1024;

export class SyslogDrain extends Drain {
  private socket: Socket | null = null;
  private connected = false;
  private pending = 0;
  private lastProgress = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;

  protected inFlight(): number {
    return this.pending;
  }

  protected kick(): void {
    if (this.closed) return;
    if (this.socket === null) {
      if (this.retryTimer === null) this.dial();
      return;
    }
    if (this.connected) this.pump();
  }

  private dial(): void {
    const { host, port } = this.url;
    const s =
      this.url.kind === 'syslog+tls'
        ? tlsConnect({
            host,
            port,
            // SNI is for names only (RFC 6066 §3); an IP is checked against the cert's IP SANs.
            servername: isIP(host) === 0 ? host : undefined,
            ca: this.opts.ca === undefined ? undefined : [...rootCertificates, ...this.opts.ca],
            rejectUnauthorized: true,
          })
        : netConnect({ host, port });
    this.socket = s;
    s.setTimeout(this.opts.connectTimeoutMs, () =>
      s.destroy(new Error(`no connection within ${this.opts.connectTimeoutMs} ms`)),
    );
    s.once(this.url.kind === 'syslog+tls' ? 'secureConnect' : 'connect', () => {
      s.setTimeout(0);
      s.setKeepAlive(true, 60_000);
      this.connected = true;
      this.pump();
    });
    // A receiver has nothing to say; read and discard so its bytes cannot pile up.
    s.on('data', () => undefined);
    s.on('drain', () => this.pump());
    let err: Error | null = null;
    s.on('error', (e) => {
      err = e;
    });
    s.on('close', () => {
      this.socket = null;
      this.connected = false;
      if (this.stallTimer !== null) clearTimeout(this.stallTimer);
      this.stallTimer = null;
      if (this.closed) return;
      const wait = this.failed(err ?? new Error('connection closed by the receiver'));
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.queued > 0) this.kick();
      }, wait);
      this.retryTimer.unref();
    });
  }

  private pump(): void {
    const s = this.socket;
    if (s === null || !this.connected) return;
    while (this.queued > 0 && s.writableLength < HIGH_WATER) {
      const l = this.take() as LogLine;
      if (this.pending === 0) this.lastProgress = Date.now();
      this.pending++;
      s.write(octetFrame(syslogMessage(this.app, l)), (err) => {
        this.pending--;
        if (err) return this.lost(1);
        this.lastProgress = Date.now();
        this.sent(1);
      });
    }
    this.watchStall();
  }

  private watchStall(): void {
    if (this.stallTimer !== null || this.pending === 0) return;
    const check = (): void => {
      this.stallTimer = null;
      const s = this.socket;
      if (s === null || this.pending === 0) return;
      const idle = Date.now() - this.lastProgress;
      if (idle >= this.opts.stallMs) {
        s.destroy(new Error(`the receiver took nothing for ${Math.round(idle / 1000)} s`));
        return;
      }
      this.stallTimer = setTimeout(check, this.opts.stallMs - idle);
      this.stallTimer.unref();
    };
    this.stallTimer = setTimeout(check, this.opts.stallMs);
    this.stallTimer.unref();
  }

  protected shutdown(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.retryTimer = null;
    this.stallTimer = null;
    this.socket?.destroy();
    this.socket = null;
  }
}
