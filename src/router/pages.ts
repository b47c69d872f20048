// Error pages the router answers with itself: HTML for browsers, JSON for API clients, both
// carrying the request id so a user's screenshot or bug report finds the access-log line.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Handlebars from 'handlebars';

export type RouterErrorStatus = 400 | 404 | 408 | 413 | 431 | 502 | 503 | 504;

const PAGES: Record<
  RouterErrorStatus,
  { code: string; reason: string; title: string; message: string }
> = {
  400: {
    reason: 'Bad Request',
    code: 'BadRequest',
    title: 'Bad Request',
    message: 'The request was malformed or its Host header was missing or invalid.',
  },
  404: {
    reason: 'Not Found',
    code: 'NoSuchApp',
    title: 'No app here',
    message: 'No app is configured for this host name.',
  },
  408: {
    reason: 'Request Timeout',
    code: 'RequestTimeout',
    title: 'Request Timeout',
    message: 'The request was not received in time.',
  },
  413: {
    reason: 'Payload Too Large',
    code: 'PayloadTooLarge',
    title: 'Payload Too Large',
    message: 'The request body is larger than this app accepts.',
  },
  431: {
    reason: 'Request Header Fields Too Large',
    code: 'HeadersTooLarge',
    title: 'Request Header Fields Too Large',
    message: 'The request headers are too large.',
  },
  502: {
    reason: 'Bad Gateway',
    code: 'BadGateway',
    title: 'Bad Gateway',
    message: 'The app refused or dropped the connection.',
  },
  503: {
    reason: 'Service Unavailable',
    code: 'AppUnavailable',
    title: 'App Unavailable',
    message: 'The app has no running web process (stopped, scaled to zero or crashed).',
  },
  504: {
    reason: 'Gateway Timeout',
    code: 'GatewayTimeout',
    title: 'Gateway Timeout',
    message: 'The app did not answer in time.',
  },
};

// Compiled on the first HTML page, not at import: the daemon imports this file through the
// haproxy plane, which renders pages only when it (re)writes its files, and an idle daemon
// should not hold handlebars' compiler. The node plane loads it at start (`loadPages`).
let html: Handlebars.TemplateDelegate | undefined;

/** Load and compile the page template now, so a first error answer does not pay for it. */
export function loadPages(): Handlebars.TemplateDelegate {
  if (html === undefined) {
    const hbs = createRequire(import.meta.url)('handlebars') as typeof Handlebars;
    html = hbs.compile(readFileSync(new URL('./pages/error.hbs', import.meta.url), 'utf8'), {
      strict: false,
    });
  }
  return html;
}

export interface ErrorPage {
  contentType: string;
  body: Buffer;
}

/**
 * JSON when the client asks for JSON and not for HTML (fetch/XHR, curl -H 'Accept:
 * application/json'); HTML otherwise, including for `*\/*` and no Accept at all.
 */
export function wantsJson(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.includes('json') && !accept.includes('text/html');
}

export function renderError(
  status: RouterErrorStatus,
  requestId: string,
  host: string | undefined,
  accept: string | undefined,
): ErrorPage {
  const p = PAGES[status];
  if (wantsJson(accept)) {
    const error = {
      code: p.code,
      status,
      message: p.message,
      requestId,
      ...(host ? { host } : {}),
    };
    return {
      contentType: 'application/json; charset=utf-8',
      body: Buffer.from(JSON.stringify({ error })),
    };
  }
  return {
    contentType: 'text/html; charset=utf-8',
    body: Buffer.from(loadPages()({ status, title: p.title, message: p.message, requestId, host })),
  };
}

export function reasonPhrase(status: RouterErrorStatus): string {
  return PAGES[status].reason;
}
