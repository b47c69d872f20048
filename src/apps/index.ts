// Public surface of app state: names and other validated inputs, and the SQLite-backed
// stores for apps, config, domains, formation, builds, releases, locks and process slots.
import { openDb, type Db } from './db.ts';
import { Builds } from './builds.ts';
import { Locks } from './locks.ts';
import { Releases } from './releases.ts';
import { ProcessSlots } from './slots.ts';
import { AppStore } from './store.ts';

export { parseAppName, isAppName, RESERVED_APP_NAMES, type AppName } from './name.ts';
export {
  parseConfigKey,
  parseConfigValue,
  parseConfigPairs,
  parseProcessType,
  parseFormationEntry,
  MAX_PROCESSES_PER_TYPE,
  parseDomain,
  parsePort,
  isHostname,
  type ConfigKey,
  type ProcessType,
  type Domain,
} from './validate.ts';
export { platformHosts, refuseReservedDomain } from './reserved-hosts.ts';
export {
  parseVersion,
  type Release,
  type NewRelease,
  type Processes,
  type AppJson,
  type DeployStatus,
} from './releases.ts';
export type { Build } from './builds.ts';
export type { App, Resources } from './store.ts';
export type { Unlock } from './locks.ts';
export type { SlotKey, SlotHistory } from './slots.ts';
export { AppStore, Builds, Locks, ProcessSlots, Releases };
export { tx, type Db } from './db.ts';

export interface State {
  db: Db;
  apps: AppStore;
  releases: Releases;
  builds: Builds;
  locks: Locks;
  slots: ProcessSlots;
  close(): void;
}

export function openState(dataDir: string): State {
  const db = openDb(dataDir);
  const apps = new AppStore(db);
  return {
    db,
    apps,
    releases: new Releases(db, apps),
    builds: new Builds(db),
    locks: new Locks(db),
    slots: new ProcessSlots(db),
    close: () => db.close(),
  };
}
