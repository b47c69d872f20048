// paas static-site server (shipped into the image by the "static" buildpack). Plain Node, no
// dependencies. The site is indexed once at start (the image is immutable): each URL maps to
// a file with its headers precomputed, small files are held in memory, so a request is one
// Map lookup. Only indexed files are served, so no request path can reach outside the root.
//   STATIC_ROOT (default /srv/site)  STATIC_CLEAN_URLS=1  STATIC_ERROR_PAGE=404.html
//   STATIC_HIDE=a,b (root-level names never served)  PORT (default 5000)
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const root = path.resolve(process.env.STATIC_ROOT ?? '/srv/site');
const cleanUrls = process.env.STATIC_CLEAN_URLS === '1';
const errorPage = process.env.STATIC_ERROR_PAGE || '';
const hide = new Set((process.env.STATIC_HIDE ?? '').split(',').filter(Boolean));
const port = Number(process.env.PORT) || 5000;
const IN_MEMORY = 1024 * 1024;

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.webmanifest': 'application/manifest+json',
};

// HTML revalidates on every load so a deploy shows at once; fingerprinted names
// (app.3f9a1c2e.js) and anything under assets/ never change, so browsers keep them for a
// year (RFC 8246 immutable); everything else for an hour.
function cacheControl(rel) {
  if (/\.html?$/.test(rel)) return 'public, max-age=0, must-revalidate';
  if (/(^|\/)assets\//.test(rel) || /\.[0-9a-f]{8,}\./i.test(path.basename(rel)))
    return 'public, max-age=31536000, immutable';
  return 'public, max-age=3600';
}

/** url path → file entry */
const routes = new Map();
const redirects = new Map();

function entry(abs, rel) {
  const st = statSync(abs);
  const body = st.size <= IN_MEMORY ? readFileSync(abs) : null;
  const etag = `"${createHash('sha1')
    .update(body ?? `${st.size}-${st.mtimeMs}`)
    .digest('base64url')
    .slice(0, 22)}"`;
  return {
    abs,
    body,
    size: st.size,
    headers: {
      'content-type': TYPES[path.extname(rel).toLowerCase()] ?? 'application/octet-stream',
      'cache-control': cacheControl(rel),
      etag,
      'last-modified': st.mtime.toUTCString(),
      'x-content-type-options': 'nosniff',
    },
  };
}

function index(dir, prefix) {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    if (d.name.startsWith('.') || (prefix === '' && hide.has(d.name))) continue;
    const abs = path.join(dir, d.name);
    const rel = prefix + d.name;
    if (d.isDirectory()) {
      index(abs, `${rel}/`);
    } else if (d.isFile()) {
      const e = entry(abs, rel);
      routes.set(`/${rel}`, e);
      if (d.name === 'index.html') {
        routes.set(`/${prefix}`, e);
        if (prefix !== '') redirects.set(`/${prefix.slice(0, -1)}`, `/${prefix}`);
      } else if (cleanUrls && d.name.endsWith('.html')) {
        const clean = `/${rel.slice(0, -5)}`;
        routes.set(clean, e);
        redirects.set(`/${rel}`, clean);
      }
    }
  }
}
index(root, '');
for (const from of redirects.keys())
  if (routes.has(from) && !from.endsWith('.html')) redirects.delete(from);
const notFound = errorPage !== '' ? routes.get(`/${errorPage.replace(/^\/+/, '')}`) : undefined;

function send(req, res, status, e) {
  if (status === 200 && req.headers['if-none-match'] === e.headers.etag) {
    res.writeHead(304, { etag: e.headers.etag, 'cache-control': e.headers['cache-control'] });
    res.end();
    return;
  }
  res.writeHead(status, {
    ...e.headers,
    'content-length': e.size,
    ...(status === 404 ? { 'cache-control': 'no-cache' } : {}),
  });
  if (req.method === 'HEAD') res.end();
  else if (e.body !== null) res.end(e.body);
  else createReadStream(e.abs).pipe(res);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 });
    res.end();
    return;
  }
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  let pathname;
  try {
    pathname = decodeURIComponent(q < 0 ? raw : raw.slice(0, q));
  } catch {
    pathname = '';
  }
  const e = routes.get(pathname);
  if (e !== undefined && !redirects.has(pathname)) return send(req, res, 200, e);
  const to = redirects.get(pathname);
  if (to !== undefined) {
    res.writeHead(301, { location: to + (q < 0 ? '' : raw.slice(q)), 'content-length': 0 });
    res.end();
    return;
  }
  if (notFound !== undefined) return send(req, res, 404, notFound);
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 10 });
  res.end('not found\n');
});
server.keepAliveTimeout = 65_000;
server.listen(port, () =>
  console.log(`static: serving ${routes.size} routes from ${root} on :${port}`),
);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
