/* The VFIO core: the public header of src/vfio for backends, vfio-pci and the host. */
export {
  isVfioContainerFile,
  vfioContainerGet,
  vfioContainerPut,
  vfioRegisterIommuDriver,
  vfioUnregisterIommuDriver,
} from './container.ts';
export { type Vfio, vfio, vfioOf } from './global.ts';
export {
  vfioDevViable,
  vfioFileGroup,
  vfioFileIsGroup,
  vfioGroupGetExternalUser,
  vfioGroupPutExternalUser,
  vfioGroupViable,
} from './group.ts';
export { type VfioCoreProfile, vfioCoreProfile } from './profile.ts';
export type {
  VfioContainer,
  VfioDevice,
  VfioDeviceOps,
  VfioGroup,
  VfioIommuDriver,
  VfioIommuDriverOps,
} from './vfio.ts';
export {
  DRIVER_DESC,
  DRIVER_VERSION,
  vfioAddGroupDev,
  vfioDelGroupDev,
  vfioInit,
  vfioModule,
} from './vfio_main.ts';
