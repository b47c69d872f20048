// storage:mount, storage:list, storage:unmount (issue 21). A change is recorded now and
// reaches the processes with their next start (ps:restart, a deploy, a crash restart), as on
// Dokku: running containers keep the mounts they started with.
import type { Express, Request } from 'express';
import type { MountInfo, StorageChange } from '../api/index.ts';
import type { DeployDeps } from '../deploy/index.ts';
import { parseMount, parseUnmount, Storage, type Mount } from '../storage/index.ts';
import { appParam } from './params.ts';

function info(m: Mount): MountInfo {
  return {
    kind: m.kind,
    source: m.source,
    target: m.target,
    hostPath: m.hostPath,
    createdAt: m.createdAt,
  };
}

export function mountStorageRoutes(api: Express, deps: DeployDeps): void {
  const storage = new Storage(deps.state.db, deps.dataDir);
  const body = (req: Request): unknown => (req.body as { mount?: unknown } | undefined)?.mount;

  api.get('/api/apps/:app/storage', (req, res) => {
    res.json(storage.list(appParam(deps.state, req)).map(info) satisfies MountInfo[]);
  });
  api.post('/api/apps/:app/storage', (req, res) => {
    const app = appParam(deps.state, req);
    const mount = storage.mount(app, parseMount(body(req), deps.dataDir));
    deps.logs.append(app, {
      source: 'system',
      text: `storage: ${mount.source} mounted on ${mount.target} (from the next restart)`,
    });
    res.status(201).json({
      mount: info(mount),
      mounts: storage.list(app).map(info),
      restartNeeded: deps.supervisor.list(app).length > 0,
    } satisfies StorageChange);
  });
  api.post('/api/apps/:app/storage/unmount', (req, res) => {
    const app = appParam(deps.state, req);
    const { source, target } = parseUnmount(body(req));
    const mount = storage.unmount(app, target, source);
    deps.logs.append(app, {
      source: 'system',
      text: `storage: ${mount.source} unmounted from ${mount.target} (from the next restart)`,
    });
    res.json({
      mount: info(mount),
      mounts: storage.list(app).map(info),
      restartNeeded: deps.supervisor.list(app).length > 0,
    } satisfies StorageChange);
  });
}
