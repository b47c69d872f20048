// The token routes (issue 19): whoami, tokens:create, tokens, tokens:revoke, rotate-admin.
// All but whoami need admin (routes.ts). A created token is in the response once and nowhere
// else: the log line names its id only.
import type { Express } from 'express';
import { parseAppName } from '../apps/index.ts';
import { InvalidArgument } from '../errors/index.ts';
import type { TokenCreated, TokenInfo, WhoAmI } from '../api/index.ts';
import { parseExpiry, parseLabel, parseScope, type Auth } from './auth.ts';
import { grantOf } from './routes.ts';

export function mountTokenRoutes(
  api: Express,
  auth: Auth,
  log: (msg: string, extra?: Record<string, unknown>) => void,
): void {
  api.get('/api/whoami', (req, res) => {
    const g = grantOf(req);
    res.json({
      id: g.id,
      scope: g.scope,
      apps: g.apps === null ? null : [...g.apps],
      label: g.label,
    } satisfies WhoAmI);
  });
  api.get('/api/tokens', (_req, res) => void res.json(auth.tokens.list() satisfies TokenInfo[]));
  api.post('/api/tokens', (req, res) => {
    const b = (req.body ?? {}) as {
      scope?: unknown;
      apps?: unknown;
      expires?: unknown;
      label?: unknown;
    };
    const scope = parseScope(b.scope);
    if (b.apps !== undefined && b.apps !== null && !Array.isArray(b.apps))
      throw new InvalidArgument('apps must be a list of app names');
    const apps =
      Array.isArray(b.apps) && b.apps.length > 0 ? b.apps.map((a) => parseAppName(a)) : null;
    const created = auth.tokens.create({
      scope,
      apps,
      expiresInSeconds:
        b.expires === undefined || b.expires === null ? null : parseExpiry(b.expires),
      label: parseLabel(b.label),
    });
    log('token created', { token: created.info.id, scope, apps, by: grantOf(req).id });
    res.status(201).json(created satisfies TokenCreated);
  });
  api.post('/api/tokens/rotate-admin', (req, res) => {
    const token = auth.rotateAdmin();
    log('admin token rotated', { by: grantOf(req).id });
    res.json({
      token,
      info: {
        id: 'admin',
        scope: 'admin',
        apps: null,
        label: 'admin token file',
        createdAt: new Date().toISOString(),
        expiresAt: null,
        lastUsedAt: null,
      },
    } satisfies TokenCreated);
  });
  api.delete('/api/tokens/:id', (req, res) => {
    auth.tokens.revoke(req.params.id as string);
    log('token revoked', { token: req.params.id, by: grantOf(req).id });
    res.json({ revoked: req.params.id });
  });
}
