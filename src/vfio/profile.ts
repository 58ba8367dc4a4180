import type { KernelVersion } from '../kernel/index.ts';
import { EBADFD, EBUSY, EINVAL, ENODEV } from '../uapi/index.ts';

/*
 * Where the VFIO core of 4.1 and of 6.12 behave differently, each
 * difference is one named row here; docs/profiles.md lists them all.
 */
export interface VfioCoreProfile {
  /** container read/write/mmap fops exist and pass through to the IOMMU driver */
  readonly containerRwMmapPassthrough: boolean;
  /** VFIO_SET_IOMMU tries the next driver after one fails to open/attach */
  readonly setIommuContinue: boolean;
  /** default container ioctls are forwarded under down_read(group_lock) */
  readonly passthroughUnderGroupLock: boolean;
  /** vfio_init request_module()s the IOMMU backends (6.12: MODULE_SOFTDEP) */
  readonly requestIommuModules: boolean;
  /** SET_CONTAINER: errno for an fd that is not a container */
  readonly setContainerNotContainer: number;
  /** SET_CONTAINER: a negative fd is checked explicitly (-EINVAL) instead of by fdget (-EBADF) */
  readonly setContainerNegFdEinval: boolean;
  /** isolation by DMA ownership (6.x) instead of the iommu-group notifier's BUG_ON (4.1) */
  readonly dmaOwnership: boolean;
  /** drivers that keep a group viable (4.1 whitelist by name) */
  readonly viableDriverWhitelist: readonly string[];
  /** the device fd gets FMODE_LSEEK */
  readonly deviceFdLseek: boolean;
  /** vfio_device_ops.open/release run per fd (4.1) or on first open / last close (6.12) */
  readonly openPerFd: boolean;
  /** errno for registering a device twice */
  readonly duplicateDeviceErrno: number;
  /** the group fd model: 4.1 'opened' counter, 6.12 'opened_file' */
  readonly groupOpenedFile: boolean;
  /** GET_STATUS on a group whose devices are all gone */
  readonly groupGoneErrno: number;
  /** during unbind the device leaves the group first (6.12) or stays until its last fd closes (4.1) */
  readonly unregisterRemovesFirst: boolean;
  /** vfio_group_get_external_user exists (4.1: KVM, hot reset) */
  readonly externalUser: boolean;
}

const V4_1: VfioCoreProfile = {
  containerRwMmapPassthrough: true,
  setIommuContinue: false,
  passthroughUnderGroupLock: true,
  requestIommuModules: true,
  setContainerNotContainer: EINVAL,
  setContainerNegFdEinval: true,
  dmaOwnership: false,
  viableDriverWhitelist: ['pci-stub', 'pcieport'],
  deviceFdLseek: true,
  openPerFd: true,
  duplicateDeviceErrno: EBUSY,
  groupOpenedFile: false,
  groupGoneErrno: ENODEV,
  unregisterRemovesFirst: false,
  externalUser: true,
};

const V6_12: VfioCoreProfile = {
  containerRwMmapPassthrough: false,
  setIommuContinue: true,
  passthroughUnderGroupLock: false,
  requestIommuModules: false,
  setContainerNotContainer: EBADFD,
  setContainerNegFdEinval: false,
  dmaOwnership: true,
  viableDriverWhitelist: [],
  deviceFdLseek: false,
  openPerFd: false,
  duplicateDeviceErrno: EINVAL,
  groupOpenedFile: true,
  groupGoneErrno: ENODEV,
  unregisterRemovesFirst: true,
  externalUser: false,
};

export function vfioCoreProfile(v: KernelVersion): VfioCoreProfile {
  return v === '4.1' ? V4_1 : V6_12;
}
