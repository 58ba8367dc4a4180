import { iommuGroupGet, iommuGroupId, iommuGroupPut } from '../iommu/index.ts';
import {
  currentKernel,
  type Device,
  type File,
  type FileOperations,
  type FilePos,
  fail,
  type Inode,
  type Kernel,
  type KthreadBody,
  type Module,
  type ModuleSpec,
  pr_info,
  traced,
  type Vma,
  WARN,
} from '../kernel/index.ts';
import { EINVAL, ENOENT, MINORMASK, VFIO_MINOR } from '../uapi/index.ts';
import { makeVfioFops } from './container.ts';
import { setVfio, Vfio, vfio } from './global.ts';
import {
  makeVfioGroupFops,
  vfioCreateGroup,
  vfioDevicePut,
  vfioDevicePutRegistration,
  vfioDfGroupClose,
  vfioGroupCreateDevice,
  vfioGroupGet,
  vfioGroupGetDevice,
  vfioGroupGetFromIommu,
  vfioGroupPut,
  vfioGroupRemoveNode,
  vfioGroupTryDissolveContainer,
  vfioGroupUnsetContainerLocked,
} from './group.ts';
import { vfioCoreProfile } from './profile.ts';
import type { VfioDevice, VfioDeviceOps, VfioGroup } from './vfio.ts';

/*
 * The VFIO core module: vfio_init, the device registration API bus
 * drivers call (vfio_add_group_dev / vfio_del_group_dev) and the device
 * fd's file operations (drivers/vfio/vfio_main.c).
 */
export const DRIVER_VERSION = '0.3';
export const DRIVER_DESC = 'VFIO - User Level meta-driver';

/* ---- /dev/vfio/$GROUP device fds ---- */

function deviceOf(filep: File): VfioDevice {
  return filep.private_data as VfioDevice;
}

const vfioDeviceFopsRelease = traced('vfio_device_fops_release', (_inode: Inode, filep: File): number => {
  const device = deviceOf(filep);
  if (vfio().profile.openPerFd) {
    device.ops.release(device.device_data);
    vfioGroupTryDissolveContainer(device.group);
    vfioDevicePut(device);
  } else {
    vfioDfGroupClose(device);
    vfioDevicePutRegistration(device);
  }
  return 0;
});

const vfioDeviceFopsUnlIoctl = traced(
  'vfio_device_fops_unl_ioctl',
  (filep: File, cmd: number, arg: bigint): number => {
    const device = deviceOf(filep);
    if (device.ops.ioctl === undefined) return fail(EINVAL, 'device ioctl: the bus driver has no ioctl op');
    return device.ops.ioctl(device.device_data, cmd, arg);
  },
  (_f, cmd) => `cmd=0x${cmd.toString(16)}`,
);

function vfioDeviceFopsRead(filep: File, buf: number, count: number, ppos: FilePos): number {
  const device = deviceOf(filep);
  if (device.ops.read === undefined) return fail(EINVAL, 'device read: the bus driver has no read op');
  return device.ops.read(device.device_data, buf, count, ppos);
}

function vfioDeviceFopsWrite(filep: File, buf: number, count: number, ppos: FilePos): number {
  const device = deviceOf(filep);
  if (device.ops.write === undefined) return fail(EINVAL, 'device write: the bus driver has no write op');
  return device.ops.write(device.device_data, buf, count, ppos);
}

function vfioDeviceFopsMmap(filep: File, vma: Vma): number {
  const device = deviceOf(filep);
  if (device.ops.mmap === undefined) return fail(EINVAL, 'device mmap: the bus driver has no mmap op');
  return device.ops.mmap(device.device_data, vma);
}

function makeVfioDeviceFops(owner: Module | undefined): FileOperations {
  return {
    name: 'vfio_device_fops',
    owner,
    release: vfioDeviceFopsRelease,
    read: vfioDeviceFopsRead,
    write: vfioDeviceFopsWrite,
    unlocked_ioctl: vfioDeviceFopsUnlIoctl,
    mmap: vfioDeviceFopsMmap,
  };
}

/* ---- bus driver API ---- */

/** vfio_add_group_dev (6.12: vfio_register_group_dev); called by vfio-pci's probe */
export const vfioAddGroupDev = traced(
  'vfio_add_group_dev',
  (dev: Device, ops: VfioDeviceOps, deviceData: unknown): number => {
    const prof = vfio().profile;
    const iommuGroup = iommuGroupGet(dev);
    if (iommuGroup === undefined) return fail(EINVAL, `vfio_add_group_dev: ${dev.name} has no IOMMU group`);
    let group = vfioGroupGetFromIommu(iommuGroup);
    if (group === undefined) {
      const g = vfioCreateGroup(iommuGroup);
      if (typeof g === 'number') {
        iommuGroupPut(iommuGroup);
        return g;
      }
      group = g;
    } else {
      /* A found vfio_group already holds a reference to the iommu_group */
      iommuGroupPut(iommuGroup);
    }
    const existing = vfioGroupGetDevice(group, dev);
    if (existing !== undefined) {
      WARN(true, `Device ${dev.name} already exists on group ${iommuGroupId(iommuGroup)}`);
      vfioDevicePut(existing);
      vfioGroupPut(group);
      return -prof.duplicateDeviceErrno;
    }
    vfioGroupCreateDevice(group, dev, ops, deviceData);
    if (prof.groupOpenedFile) group.drivers++;
    /*
     * The added device holds a reference to the iommu_group and to the
     * vfio_group (through the vfio_device); drop the lookup reference.
     */
    vfioGroupPut(group);
    return 0;
  },
  (dev) => dev.name,
);

function vfioDevPresent(group: VfioGroup, dev: Device): boolean {
  return group.device_list.some((d) => d.dev === dev);
}

/**
 * vfio_del_group_dev: called by vfio-pci's remove. The device cannot go
 * while a user holds an fd on it, so this sleeps on vfio.release_q,
 * asking the user to let go (ops->request, the REQ interrupt) at once and
 * every 10 seconds, until the last device fd is closed. Returns the bus
 * driver's device_data.
 */
export function* vfioDelGroupDev(dev: Device): KthreadBody<unknown> {
  const v = vfio();
  const device = dev.driver_data as VfioDevice;
  const group = device.group;
  const deviceData = device.device_data;
  if (v.profile.unregisterRemovesFirst) return yield* vfioUnregisterGroupDev(device);
  vfioGroupGet(group);
  /*
   * The device leaves the group's device list only at its last put, but
   * it is no longer a vfio device for viability: remember it as unbound.
   */
  group.unbound_list.unshift({ dev });
  currentKernel().objects.alloc('vfio_unbound_dev');
  vfioDevicePut(device);
  let i = 0;
  for (;;) {
    const d = vfioGroupGetDevice(group, dev);
    if (d === undefined) break;
    d.ops.request?.(deviceData, i++);
    vfioDevicePut(d);
    const released = yield { wq: v.release_q, cond: () => !vfioDevPresent(group, dev), timeoutNs: 10e9 };
    if (released) break;
  }
  vfioGroupPut(group);
  return deviceData;
}

/** 6.12 vfio_unregister_group_dev: leave the group first, then wait for the last fd */
function* vfioUnregisterGroupDev(device: VfioDevice): KthreadBody<unknown> {
  const v = vfio();
  const group = device.group;
  const deviceData = device.device_data;
  group.device_lock.lock();
  const idx = group.device_list.indexOf(device);
  if (idx >= 0) group.device_list.splice(idx, 1);
  group.device_lock.unlock();
  vfioDevicePutRegistration(device);
  let i = 0;
  while (device.registration > 0) {
    device.ops.request?.(deviceData, i++);
    yield { wq: v.release_q, cond: () => device.registration === 0, timeoutNs: 10e9 };
  }
  /* vfio_device_remove_group: the last device takes the group node with it */
  if (--group.drivers === 0) {
    vfioGroupRemoveNode(group);
    if (group.container !== undefined) vfioGroupUnsetContainerLocked(group);
    const ig = group.iommu_group;
    group.iommu_group = undefined;
    if (ig !== undefined) {
      iommuGroupPut(ig);
    }
  }
  if (device.dev.driver_data === device) device.dev.driver_data = undefined;
  currentKernel().objects.free('vfio_device');
  vfioGroupPut(group);
  return deviceData;
}

/* ---- module init ---- */

function vfioDevnode(name: string): { path: string } {
  return { path: `vfio/${name}` };
}

export const vfioInit = traced('vfio_init', (mod: Module): number => {
  const k = currentKernel();
  const prof = vfioCoreProfile(k.version);
  const v = new Vfio(k, prof, mod);
  setVfio(k, v);
  v.fops = makeVfioFops(prof.containerRwMmapPassthrough, mod);
  v.groupFops = makeVfioGroupFops(mod);
  v.deviceFops = makeVfioDeviceFops(mod);
  /* /dev/vfio/vfio */
  v.misc = { minor: VFIO_MINOR, name: 'vfio', fops: v.fops, nodename: 'vfio/vfio', mode: 0o666 };
  const r = k.chrdev.miscRegister(v.misc);
  if (r !== 0) {
    k.printk('err', 'vfio: misc device register failed');
    setVfio(k, undefined);
    return r;
  }
  v.class = k.chrdev.classCreate('vfio');
  v.class.devnode = vfioDevnode;
  const devt = k.chrdev.allocChrdevRegion(0, MINORMASK, 'vfio');
  if (devt < 0) {
    k.chrdev.classDestroy(v.class);
    k.chrdev.miscDeregister(v.misc);
    setVfio(k, undefined);
    return devt;
  }
  v.group_devt = devt;
  /* /dev/vfio/$GROUP */
  v.group_cdev = { ops: v.groupFops, dev: devt, count: MINORMASK };
  k.chrdev.cdevAdd(v.group_cdev, devt, MINORMASK);
  pr_info(`${DRIVER_DESC} version: ${DRIVER_VERSION}`);
  /*
   * Attempt to load known iommu-drivers. This gives us a working
   * environment without the user needing to explicitly load iommu drivers.
   */
  if (prof.requestIommuModules) {
    requestModuleNowait(k, 'vfio_iommu_type1');
    requestModuleNowait(k, 'vfio_iommu_spapr_tce');
  }
  return 0;
});

/* request_module_nowait: fire and forget; a module that is not built is no error */
function requestModuleNowait(k: Kernel, name: string): void {
  const saved = k.logReasons;
  k.logReasons = false;
  const r = k.modules.requestModule(name);
  k.logReasons = saved;
  if (r !== 0 && r !== -ENOENT) k.printk('warn', `request_module: ${name} failed with ${r}`);
}

function vfioCleanup(): void {
  const k = currentKernel();
  const v = vfio();
  WARN(v.group_list.length !== 0, 'WARN_ON(!list_empty(&vfio.group_list))');
  if (v.group_cdev !== undefined) k.chrdev.cdevDel(v.group_cdev);
  k.chrdev.unregisterChrdevRegion(v.group_devt, MINORMASK);
  if (v.class !== undefined) k.chrdev.classDestroy(v.class);
  if (v.misc !== undefined) k.chrdev.miscDeregister(v.misc);
  setVfio(k, undefined);
}

export const vfioModule: ModuleSpec = {
  name: 'vfio',
  init: (mod) => vfioInit(mod),
  exit: () => vfioCleanup(),
};
