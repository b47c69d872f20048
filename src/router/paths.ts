// Where the node plane's router process keeps its socket, table, pid and logs. Its own file so
// the daemon's side (client.ts) reaches these paths without loading the proxy (router.ts and
// everything it serves with: undici, http-proxy, the pages).
import { join } from 'node:path';

export const routerPaths = (dataDir: string) => ({
  socket: join(dataDir, 'router.sock'),
  dir: join(dataDir, 'router'),
  routes: join(dataDir, 'router', 'routes.json'),
  pid: join(dataDir, 'router', 'router.pid'),
  logDir: join(dataDir, 'logs', 'router'),
});
