// Public surface of persistent storage (issue 21): the mount validator, and each app's
// mounts as the runtime volumes its processes start with.
export {
  checkHostPath,
  HOST_RESERVED,
  parseContainerPath,
  parseMount,
  parseUnmount,
  parseVolumeName,
  type ContainerPath,
  type HostPath,
  type MountSource,
  type MountSpec,
  type VolumeName,
} from './validate.ts';
export { Storage, volumesDir, type Mount } from './store.ts';
