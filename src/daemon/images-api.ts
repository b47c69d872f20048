// The image routes of the API that reach registries: `images:pull` (refresh a tag now) and
// `registry:login` / `registry:logout`. Passwords arrive in the body and go only to the
// registry and the 0600 credentials file: no route logs a body.
import type { Express } from 'express';
import type { ImagePullResult, RegistryLogin, RegistryLogout } from '../api/index.ts';
import type { DeployDeps } from '../deploy/index.ts';
import { InvalidArgument } from '../errors/index.ts';
import { parseImageRef, parseRegistryHost } from '../registry/index.ts';

function str(v: unknown, field: string, max = 4096): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    throw new InvalidArgument(`${field} is required (a string of at most ${max} characters)`, {
      field,
    });
  return v;
}

export function mountImageRoutes(api: Express, deps: DeployDeps): void {
  api.post('/api/images/pull', async (req, res) => {
    const ref = parseImageRef((req.body as { ref?: unknown } | undefined)?.ref);
    const lines: string[] = [];
    const image = await deps.store.pullImage(ref, { onProgress: (l) => lines.push(l) });
    res.json({ ref: image.ref, digest: image.digest, lines } satisfies ImagePullResult);
  });

  api.post('/api/registry/login', async (req, res) => {
    const body = (req.body ?? {}) as { host?: unknown; username?: unknown; password?: unknown };
    const host = parseRegistryHost(body.host);
    const username = str(body.username, 'username', 256);
    const password = str(body.password, 'password');
    await deps.store.puller.login(host, { username, password });
    res.json({ host, username, message: `Login Succeeded (${host})` } satisfies RegistryLogin);
  });

  api.post('/api/registry/logout', async (req, res) => {
    const host = parseRegistryHost((req.body as { host?: unknown } | undefined)?.host);
    const removed = await deps.store.puller.logout(host);
    res.json({ host, removed } satisfies RegistryLogout);
  });
}
