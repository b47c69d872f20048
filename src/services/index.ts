// Public surface of backing services (issue 21): postgres and redis as containers of our
// runtime, linked to apps through a socket mount and a URL config var, with backups.
export {
  parseAlias,
  parseServiceName,
  parseServiceType,
  SERVICE_TYPES,
  type Alias,
  type ServiceName,
  type ServiceType,
} from './validate.ts';
export { KINDS, LINK_MOUNT_DIR, linkDir } from './kinds.ts';
export { type Link, type Service } from './store.ts';
export {
  linkVolumes,
  SERVICE_LABEL,
  ServiceManager,
  type ServiceDeps,
  type ServiceStatus,
} from './manager.ts';
export { backup, restore } from './backup.ts';
