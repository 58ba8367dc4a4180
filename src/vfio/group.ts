import {
  IOMMU_GROUP_NOTIFY_ADD_DEVICE,
  IOMMU_GROUP_NOTIFY_BIND_DRIVER,
  IOMMU_GROUP_NOTIFY_BOUND_DRIVER,
  IOMMU_GROUP_NOTIFY_UNBIND_DRIVER,
  IOMMU_GROUP_NOTIFY_UNBOUND_DRIVER,
  type IommuGroup,
  iommuGroupClaimDmaOwner,
  iommuGroupDmaOwnerClaimed,
  iommuGroupForEachDev,
  iommuGroupId,
  iommuGroupPut,
  iommuGroupRegisterNotifier,
  iommuGroupReleaseDmaOwner,
  iommuGroupUnregisterNotifier,
} from '../iommu/index.ts';
import {
  Atomic,
  anonInodeGetfile,
  copyFromUser,
  copyToUser,
  current,
  currentKernel,
  type Device,
  type File,
  type FileOperations,
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  fail,
  fput,
  getFile,
  getUserS32,
  type Inode,
  Kref,
  Mutex,
  modulePut,
  NOTIFY_OK,
  type NotifierBlock,
  pr_debug,
  strndupUser,
  traced,
  tryModuleGet,
  uarg,
  WARN,
  WARN_ON,
} from '../kernel/index.ts';
import {
  EBADF,
  EBUSY,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOTTY,
  MAJOR,
  MKDEV,
  O_RDWR,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  vfio_group_status,
} from '../uapi/index.ts';
import { isVfioContainerFile, vfioContainerGet, vfioContainerPut } from './container.ts';
import { vfio } from './global.ts';
import { type VfioContainer, VfioDevice, type VfioDeviceOps, VfioGroup } from './vfio.ts';

/*
 * The group: /dev/vfio/$GROUP, group and device object lifetimes,
 * viability, and the iommu-group notifier (drivers/vfio/group.c in
 * current kernels; vfio.c in the seeds).
 */

/* ---- group lifetime ---- */

export const vfioGroupGet = traced('vfio_group_get', (group: VfioGroup): void => {
  group.kref.get();
});

export const vfioGroupPut = traced('vfio_group_put', (group: VfioGroup): void => {
  group.kref.put(() => vfioGroupRelease(group));
});

/** remove /dev/vfio/$GROUP and give back the minor (6.12 does it when the last device goes) */
export function vfioGroupRemoveNode(group: VfioGroup): void {
  const v = vfio();
  if (group.dev === undefined || v.class === undefined) return;
  currentKernel().chrdev.deviceDestroy(v.class, MKDEV(MAJOR(v.group_devt), group.minor));
  group.dev = undefined;
  const i = v.group_list.indexOf(group);
  if (i >= 0) v.group_list.splice(i, 1);
  v.group_idr.remove(group.minor);
}

const vfioGroupRelease = traced('vfio_group_release', (group: VfioGroup): void => {
  const iommuGroup = group.iommu_group;
  WARN_ON(group.device_list.length !== 0, 'WARN_ON(!list_empty(&group->device_list))');
  for (const _u of group.unbound_list.splice(0)) currentKernel().objects.free('vfio_unbound_dev');
  vfioGroupRemoveNode(group);
  if (group.nb !== undefined && iommuGroup !== undefined) iommuGroupUnregisterNotifier(iommuGroup, group.nb);
  currentKernel().objects.free('vfio_group');
  if (iommuGroup !== undefined) iommuGroupPut(iommuGroup);
});

export const vfioGroupGetFromMinor = traced(
  'vfio_group_get_from_minor',
  (minor: number): VfioGroup | undefined => {
    const v = vfio();
    v.group_lock.lock();
    const group = v.group_idr.find(minor);
    if (group !== undefined) vfioGroupGet(group);
    v.group_lock.unlock();
    return group;
  },
);

export const vfioGroupGetFromIommu = traced(
  'vfio_group_get_from_iommu',
  (iommuGroup: IommuGroup): VfioGroup | undefined => {
    const v = vfio();
    v.group_lock.lock();
    const group = v.group_list.find((g) => g.iommu_group === iommuGroup);
    if (group !== undefined) vfioGroupGet(group);
    v.group_lock.unlock();
    return group;
  },
);

/* ---- device lifetime: every device reference implies a group reference ---- */

export const vfioDeviceGet = traced('vfio_device_get', (device: VfioDevice): void => {
  device.kref.get();
  vfioGroupGet(device.group);
});

export const vfioDevicePut = traced('vfio_device_put', (device: VfioDevice): void => {
  const group = device.group;
  device.kref.put(() => vfioDeviceRelease(device));
  vfioGroupPut(group);
});

const vfioDeviceRelease = traced('vfio_device_release', (device: VfioDevice): void => {
  const group = device.group;
  const i = group.device_list.indexOf(device);
  if (i >= 0) group.device_list.splice(i, 1);
  if (device.dev.driver_data === device) device.dev.driver_data = undefined;
  currentKernel().objects.free('vfio_device');
  /* vfio_del_group_dev may be waiting for this device */
  vfio().release_q.wakeUp();
});

export const vfioGroupCreateDevice = traced(
  'vfio_group_create_device',
  (group: VfioGroup, dev: Device, ops: VfioDeviceOps, deviceData: unknown): VfioDevice => {
    const device = new VfioDevice(new Kref(), dev, ops, group, deviceData);
    currentKernel().objects.alloc('vfio_device');
    dev.driver_data = device; /* dev_set_drvdata */
    /* No need to get group_lock, caller has group reference */
    vfioGroupGet(group);
    group.device_lock.lock();
    group.device_list.unshift(device);
    group.device_lock.unlock();
    return device;
  },
);

export const vfioGroupGetDevice = traced(
  'vfio_group_get_device',
  (group: VfioGroup, dev: Device): VfioDevice | undefined => {
    group.device_lock.lock();
    const device = group.device_list.find((d) => d.dev === dev);
    if (device !== undefined) vfioDeviceGet(device);
    group.device_lock.unlock();
    return device;
  },
);

/* ---- viability ---- */

/**
 * vfio_dev_viable (4.1): a device keeps its group viable when it is being
 * unbound from vfio, has no driver, is bound to a whitelisted driver, or
 * is bound to a vfio bus driver.
 */
export function vfioDevViable(dev: Device, group: VfioGroup): number {
  if (group.unbound_list.some((u) => u.dev === dev)) return 0;
  const drv = dev.driver;
  if (drv === undefined) return 0;
  if (vfio().profile.viableDriverWhitelist.includes(drv.name)) return 0;
  const device = vfioGroupGetDevice(group, dev);
  if (device !== undefined) {
    vfioDevicePut(device);
    return 0;
  }
  return -EINVAL;
}

export const vfioGroupViable = traced('vfio_group_viable', (group: VfioGroup): boolean => {
  if (group.iommu_group === undefined) return false;
  if (vfio().profile.dmaOwnership)
    return group.container !== undefined || !iommuGroupDmaOwnerClaimed(group.iommu_group);
  return iommuGroupForEachDev(group.iommu_group, (dev) => vfioDevViable(dev, group)) === 0;
});

/** which device makes the group non-viable, for error messages */
function nonViableCulprit(group: VfioGroup): string {
  const bad = group.iommu_group?.devices.find((d) => vfioDevViable(d, group) !== 0);
  return bad === undefined ? 'a device' : `${bad.name} (bound to ${bad.driver?.name ?? 'no driver'})`;
}

/* ---- the 4.1 iommu-group notifier ---- */

function vfioGroupNbAddDev(group: VfioGroup, dev: Device): void {
  /* Do we already know about it?  We shouldn't */
  const device = vfioGroupGetDevice(group, dev);
  if (WARN_ON(device !== undefined, 'WARN_ON_ONCE(device)')) {
    if (device !== undefined) vfioDevicePut(device);
    return;
  }
  /* Nothing to do for idle groups */
  if (group.container_users.read() === 0) return;
  /* The 4.1 WARN() lost its condition argument: the device name is what gets printed */
  WARN(true, dev.name);
}

function vfioGroupNbVerify(group: VfioGroup, dev: Device): number {
  /* We don't care what happens when the group isn't in use */
  if (group.container_users.read() === 0) return 0;
  return vfioDevViable(dev, group);
}

function vfioIommuGroupNotifier(group: VfioGroup): NotifierBlock<Device> {
  return {
    notifier_call: (_nb, action, dev) => {
      const v = vfio();
      /* a notification for a group that is going away is spurious */
      if (!v.group_list.includes(group)) return NOTIFY_OK;
      vfioGroupGet(group);
      const id = group.iommu_group === undefined ? -1 : iommuGroupId(group.iommu_group);
      switch (action) {
        case IOMMU_GROUP_NOTIFY_ADD_DEVICE:
          vfioGroupNbAddDev(group, dev);
          break;
        case IOMMU_GROUP_NOTIFY_BIND_DRIVER:
          pr_debug(`vfio_iommu_group_notifier: Device ${dev.name}, group ${id} binding to driver`);
          break;
        case IOMMU_GROUP_NOTIFY_BOUND_DRIVER:
          pr_debug(
            `vfio_iommu_group_notifier: Device ${dev.name}, group ${id} bound to driver ${dev.driver?.name}`,
          );
          if (vfioGroupNbVerify(group, dev) !== 0) {
            vfioGroupPut(group);
            currentKernel().bug(
              `drivers/vfio/vfio.c: vfio_iommu_group_notifier: ${dev.name} bound to ${dev.driver?.name} in group ${id}, which is in use by a VFIO user (isolation violated)`,
            );
          }
          break;
        case IOMMU_GROUP_NOTIFY_UNBIND_DRIVER:
          pr_debug(
            `vfio_iommu_group_notifier: Device ${dev.name}, group ${id} unbinding from driver ${dev.driver?.name}`,
          );
          break;
        case IOMMU_GROUP_NOTIFY_UNBOUND_DRIVER: {
          pr_debug(`vfio_iommu_group_notifier: Device ${dev.name}, group ${id} unbound from driver`);
          const i = group.unbound_list.findIndex((u) => u.dev === dev);
          if (i >= 0) {
            group.unbound_list.splice(i, 1);
            currentKernel().objects.free('vfio_unbound_dev');
          }
          break;
        }
      }
      vfioGroupPut(group);
      return NOTIFY_OK;
    },
  };
}

/* ---- creation ---- */

export const vfioCreateGroup = traced(
  'vfio_create_group',
  (iommuGroup: IommuGroup): VfioGroup | number => {
    const v = vfio();
    const k = currentKernel();
    const group = new VfioGroup(
      new Kref(),
      new Atomic(0),
      new Atomic(0),
      new Mutex('group->device_lock'),
      iommuGroup,
    );
    k.objects.alloc('vfio_group');
    if (!v.profile.dmaOwnership) {
      /*
       * blocking notifiers take a rwsem around registering and around the
       * callback, so register outside vfio.group_lock; the callback does
       * nothing until it finds the group on vfio.group_list.
       */
      group.nb = vfioIommuGroupNotifier(group);
      iommuGroupRegisterNotifier(iommuGroup, group.nb);
    }
    v.group_lock.lock();
    const minor = v.group_idr.alloc(group, 0, (1 << 20) - 1);
    const unlockAndFree = (): void => {
      if (group.nb !== undefined) iommuGroupUnregisterNotifier(iommuGroup, group.nb);
      v.group_lock.unlock();
      k.objects.free('vfio_group');
    };
    if (minor < 0) {
      unlockAndFree();
      return minor;
    }
    /* Did we race creating this group? */
    for (const tmp of v.group_list) {
      if (tmp.iommu_group === iommuGroup) {
        vfioGroupGet(tmp);
        v.group_idr.remove(minor);
        unlockAndFree();
        return tmp;
      }
    }
    if (v.class === undefined) {
      v.group_idr.remove(minor);
      unlockAndFree();
      return -ENODEV;
    }
    const dev = k.chrdev.deviceCreate(
      v.class,
      MKDEV(MAJOR(v.group_devt), minor),
      group,
      String(iommuGroupId(iommuGroup)),
    );
    if (typeof dev === 'number') {
      v.group_idr.remove(minor);
      unlockAndFree();
      return dev;
    }
    group.minor = minor;
    group.dev = dev;
    v.group_list.unshift(group);
    v.group_lock.unlock();
    return group;
  },
  (g) => `iommu_group=${g.id}`,
);

/* ---- container attach / detach ---- */

/** __vfio_group_unset_container (6.12: vfio_group_detach_container) */
export const vfioGroupUnsetContainerLocked = traced(
  '__vfio_group_unset_container',
  (group: VfioGroup): void => {
    const container = group.container as VfioContainer;
    container.group_lock.downWrite();
    const driver = container.iommu_driver;
    if (driver !== undefined && container.iommu_data !== undefined && group.iommu_group !== undefined)
      driver.ops.detach_group(container.iommu_data, group.iommu_group);
    if (vfio().profile.dmaOwnership && group.iommu_group !== undefined)
      iommuGroupReleaseDmaOwner(group.iommu_group);
    group.container = undefined;
    if (vfio().profile.groupOpenedFile) group.container_users.set(0);
    const i = container.group_list.indexOf(group);
    if (i >= 0) container.group_list.splice(i, 1);
    /* Detaching the last group deprivileges a container, remove iommu */
    if (driver !== undefined && container.group_list.length === 0) {
      if (container.iommu_data !== undefined) driver.ops.release(container.iommu_data);
      modulePut(driver.ops.owner);
      container.iommu_driver = undefined;
      container.iommu_data = undefined;
    }
    container.group_lock.upWrite();
    vfioContainerPut(container);
  },
);

/**
 * VFIO_GROUP_UNSET_CONTAINER should fail if there are other users or if
 * there are no users; the group fd release and the last device fd close
 * get here through vfio_group_try_dissolve_container.
 */
export const vfioGroupUnsetContainer = traced('vfio_group_unset_container', (group: VfioGroup): number => {
  if (vfio().profile.groupOpenedFile) {
    if (group.container === undefined)
      return fail(EINVAL, 'VFIO_GROUP_UNSET_CONTAINER: the group is not in a container');
    if (group.container_users.read() !== 1)
      return fail(EBUSY, 'VFIO_GROUP_UNSET_CONTAINER: device fds of this group are still open');
    vfioGroupUnsetContainerLocked(group);
    return 0;
  }
  const users = group.container_users.cmpxchg(1, 0);
  if (users === 0) return fail(EINVAL, 'VFIO_GROUP_UNSET_CONTAINER: the group is not in a container');
  if (users !== 1)
    return fail(
      EBUSY,
      `VFIO_GROUP_UNSET_CONTAINER: ${users - 1} other users (device fds) still hold the container`,
    );
  vfioGroupUnsetContainerLocked(group);
  return 0;
});

/** drop one container user; the last one detaches the group from its container */
export const vfioGroupTryDissolveContainer = traced(
  'vfio_group_try_dissolve_container',
  (group: VfioGroup): void => {
    if (group.container_users.decIfPositive() === 0) vfioGroupUnsetContainerLocked(group);
  },
);

export const vfioGroupSetContainer = traced(
  'vfio_group_set_container',
  (group: VfioGroup, containerFd: number): number => {
    const prof = vfio().profile;
    if (prof.groupOpenedFile) return vfioGroupSetContainer612(group, containerFd);
    if (group.container_users.read() !== 0)
      return fail(EINVAL, 'VFIO_GROUP_SET_CONTAINER: the group is already in a container');
    const f = current().files.get(containerFd);
    if (f === undefined) return fail(EBADF, `VFIO_GROUP_SET_CONTAINER: fd ${containerFd} is not open`);
    /* Sanity check, is this really our fd? */
    if (!isVfioContainerFile(f))
      return fail(
        prof.setContainerNotContainer,
        `VFIO_GROUP_SET_CONTAINER: fd ${containerFd} is not a VFIO container (/dev/vfio/vfio)`,
      );
    const container = f.private_data as VfioContainer;
    let ret = 0;
    container.group_lock.downWrite();
    const driver = container.iommu_driver;
    if (driver !== undefined && container.iommu_data !== undefined && group.iommu_group !== undefined) {
      ret = driver.ops.attach_group(container.iommu_data, group.iommu_group);
      if (ret !== 0) {
        container.group_lock.upWrite();
        return ret;
      }
    }
    group.container = container;
    container.group_list.unshift(group);
    /* Get a reference on the container and mark a user within the group */
    vfioContainerGet(container);
    group.container_users.inc();
    container.group_lock.upWrite();
    return ret;
  },
  (_g, fd) => `container_fd=${fd}`,
);

function vfioGroupSetContainer612(group: VfioGroup, containerFd: number): number {
  const f = containerFd < 0 ? undefined : current().files.get(containerFd);
  if (f === undefined) return fail(EBADF, `VFIO_GROUP_SET_CONTAINER: fd ${containerFd} is not open`);
  if (group.container !== undefined)
    return fail(EINVAL, 'VFIO_GROUP_SET_CONTAINER: the group is already in a container');
  const iommuGroup = group.iommu_group;
  if (iommuGroup === undefined)
    return fail(ENODEV, 'VFIO_GROUP_SET_CONTAINER: the group has no devices left');
  if (!isVfioContainerFile(f))
    return fail(
      vfio().profile.setContainerNotContainer,
      `VFIO_GROUP_SET_CONTAINER: fd ${containerFd} is neither a VFIO container nor an iommufd`,
    );
  const container = f.private_data as VfioContainer;
  container.group_lock.downWrite();
  let ret = iommuGroupClaimDmaOwner(iommuGroup, group);
  if (ret !== 0) {
    container.group_lock.upWrite();
    const bad = iommuGroup.devices.find(
      (d) => d.driver !== undefined && d.driver.driver_managed_dma !== true,
    );
    return fail(
      -ret,
      `VFIO_GROUP_SET_CONTAINER: group ${iommuGroup.id} is not viable: ${bad === undefined ? 'DMA is owned' : `${bad.name} is bound to ${bad.driver?.name}`}`,
    );
  }
  const driver = container.iommu_driver;
  if (driver !== undefined && container.iommu_data !== undefined) {
    ret = driver.ops.attach_group(container.iommu_data, iommuGroup);
    if (ret !== 0) {
      iommuGroupReleaseDmaOwner(iommuGroup);
      container.group_lock.upWrite();
      return ret;
    }
  }
  group.container = container;
  group.container_users.set(1);
  container.group_list.unshift(group);
  vfioContainerGet(container);
  container.group_lock.upWrite();
  return 0;
}

/* ---- device fds ---- */

/** take a new device fd: 4.1 calls ops->open for every one */
export const vfioGroupGetDeviceFd = traced(
  'vfio_group_get_device_fd',
  (group: VfioGroup, buf: string): number => {
    const v = vfio();
    if (v.profile.groupOpenedFile) return vfioGroupGetDeviceFd612(group, buf);
    if (
      group.container_users.read() === 0 ||
      group.container?.iommu_driver === undefined ||
      !vfioGroupViable(group)
    ) {
      if (group.container_users.read() === 0)
        return fail(EINVAL, 'VFIO_GROUP_GET_DEVICE_FD: the group is not in a container');
      if (group.container?.iommu_driver === undefined)
        return fail(EINVAL, 'VFIO_GROUP_GET_DEVICE_FD: no IOMMU set on the container (VFIO_SET_IOMMU first)');
      return fail(EINVAL, `VFIO_GROUP_GET_DEVICE_FD: group is not viable: ${nonViableCulprit(group)}`);
    }
    let ret = -ENODEV;
    group.device_lock.lock();
    for (const device of group.device_list) {
      if (device.dev.name !== buf) continue;
      ret = device.ops.open(device.device_data);
      if (ret !== 0) break;
      /* anon_inode_getfd cannot be used: f_mode needs more than ioctls */
      ret = current().files.getUnusedFdFlags(true);
      if (ret < 0) {
        device.ops.release(device.device_data);
        break;
      }
      const filep = anonInodeGetfile('[vfio-device]', v.deviceFops as FileOperations, device, O_RDWR);
      if (typeof filep === 'number') {
        current().files.putUnusedFd(ret);
        ret = filep;
        device.ops.release(device.device_data);
        break;
      }
      filep.f_mode |= (v.profile.deviceFdLseek ? FMODE_LSEEK : 0) | FMODE_PREAD | FMODE_PWRITE;
      vfioDeviceGet(device);
      group.container_users.inc();
      current().files.fdInstall(ret, filep);
      break;
    }
    group.device_lock.unlock();
    if (ret === -ENODEV) return fail(ENODEV, `VFIO_GROUP_GET_DEVICE_FD: no device "${buf}" in this group`);
    return ret;
  },
  (_g, buf) => `"${buf}"`,
);

function vfioGroupGetDeviceFd612(group: VfioGroup, buf: string): number {
  const v = vfio();
  group.device_lock.lock();
  const device = group.device_list.find((d) => d.dev.name === buf && d.registration > 0);
  if (device !== undefined) device.registration++;
  group.device_lock.unlock();
  if (device === undefined) return fail(ENODEV, `VFIO_GROUP_GET_DEVICE_FD: no device "${buf}" in this group`);
  const files = current().files;
  const fd = files.getUnusedFdFlags(true);
  if (fd < 0) {
    vfioDevicePutRegistration(device);
    return fd;
  }
  const ret = vfioDfGroupOpen(device);
  if (ret !== 0) {
    files.putUnusedFd(fd);
    vfioDevicePutRegistration(device);
    return ret;
  }
  const filep = anonInodeGetfile('[vfio-device]', v.deviceFops as FileOperations, device, O_RDWR);
  if (typeof filep === 'number') {
    vfioDfGroupClose(device);
    files.putUnusedFd(fd);
    vfioDevicePutRegistration(device);
    return filep;
  }
  filep.f_mode |= FMODE_PREAD | FMODE_PWRITE;
  files.fdInstall(fd, filep);
  return fd;
}

/** 6.12 vfio_df_group_open: the first open of a device uses the container */
function vfioDfGroupOpen(device: VfioDevice): number {
  const group = device.group;
  const container = group.container;
  if (container === undefined)
    return fail(EINVAL, 'VFIO_GROUP_GET_DEVICE_FD: the group is not in a container');
  if (device.open_count === 0) {
    const owner = device.dev.driver?.owner;
    if (!tryModuleGet(owner))
      return fail(ENODEV, 'VFIO_GROUP_GET_DEVICE_FD: the device driver is going away');
    if (container.iommu_driver === undefined) {
      modulePut(owner);
      return fail(EINVAL, 'VFIO_GROUP_GET_DEVICE_FD: no IOMMU set on the container (VFIO_SET_IOMMU first)');
    }
    if (group.opened_file !== undefined) getFile(group.opened_file);
    group.container_users.inc();
    const ret = device.ops.open(device.device_data);
    if (ret !== 0) {
      group.container_users.dec();
      if (group.opened_file !== undefined) fput(group.opened_file);
      modulePut(owner);
      return ret;
    }
  }
  device.open_count++;
  return 0;
}

/** 6.12 vfio_df_group_close: the last close gives the container back */
export function vfioDfGroupClose(device: VfioDevice): void {
  const group = device.group;
  if (device.open_count === 1) {
    device.ops.release(device.device_data);
    group.container_users.dec();
    const owner = device.dev.driver?.owner;
    const gf = group.opened_file;
    modulePut(owner);
    if (gf !== undefined) fput(gf);
  }
  device.open_count--;
}

/** 6.12 vfio_device_put_registration: the last one completes device->comp */
export function vfioDevicePutRegistration(device: VfioDevice): void {
  if (--device.registration === 0) vfio().release_q.wakeUp();
}

/* ---- /dev/vfio/$GROUP file operations ---- */

const vfioGroupFopsOpen = traced('vfio_group_fops_open', (inode: Inode, filep: File): number => {
  const v = vfio();
  const group = vfioGroupGetFromMinor(inode.minor);
  if (group === undefined) return fail(ENODEV, `open /dev/vfio/${inode.minor}: no such group`);
  if (v.profile.groupOpenedFile) {
    if (group.drivers === 0) {
      vfioGroupPut(group);
      return fail(ENODEV, 'open group: all its devices are gone');
    }
    if (group.opened_file !== undefined) {
      vfioGroupPut(group);
      return fail(EBUSY, 'open group: the group is already open');
    }
    group.opened_file = filep;
    filep.private_data = group;
    return 0;
  }
  /* Do we need multiple instances of the group open?  Seems not. */
  const opened = group.opened.cmpxchg(0, 1);
  if (opened !== 0) {
    vfioGroupPut(group);
    return fail(EBUSY, `open /dev/vfio/${group.iommu_group?.id}: the group is already open`);
  }
  /* Is something still in use from a previous open? */
  if (group.container !== undefined) {
    group.opened.dec();
    vfioGroupPut(group);
    return fail(
      EBUSY,
      `open /dev/vfio/${group.iommu_group?.id}: device fds from a previous open still hold the group`,
    );
  }
  filep.private_data = group;
  return 0;
});

const vfioGroupFopsRelease = traced('vfio_group_fops_release', (_inode: Inode, filep: File): number => {
  const group = filep.private_data as VfioGroup;
  filep.private_data = undefined;
  if (vfio().profile.groupOpenedFile) {
    if (group.container !== undefined) vfioGroupUnsetContainerLocked(group);
    group.opened_file = undefined;
    vfioGroupPut(group);
    return 0;
  }
  vfioGroupTryDissolveContainer(group);
  group.opened.dec();
  vfioGroupPut(group);
  return 0;
});

const GROUP_STATUS_MINSZ = vfio_group_status.offsetofend('flags');

const vfioGroupIoctlGetStatus = traced(
  'vfio_group_ioctl_get_status',
  (group: VfioGroup, arg: bigint): number => {
    const minsz = GROUP_STATUS_MINSZ;
    const buf = new Uint8Array(minsz);
    const uaddr = uarg(arg);
    if (copyFromUser(buf, uaddr, minsz) !== 0)
      return fail(EFAULT, 'VFIO_GROUP_GET_STATUS: cannot read the argument');
    /* argsz and flags are u32s at 0 and 4: read and write them in place (no struct decode/encode per call) */
    const argsz =
      ((buf[0] as number) |
        ((buf[1] as number) << 8) |
        ((buf[2] as number) << 16) |
        ((buf[3] as number) << 24)) >>>
      0;
    if (argsz < minsz) return fail(EINVAL, `VFIO_GROUP_GET_STATUS: argsz ${argsz} < minsz ${minsz}`);
    let flags = 0;
    const prof = vfio().profile;
    if (prof.groupOpenedFile && group.iommu_group === undefined)
      return fail(prof.groupGoneErrno, 'VFIO_GROUP_GET_STATUS: all devices of the group are gone');
    if (vfioGroupViable(group)) flags |= VFIO_GROUP_FLAGS_VIABLE;
    if (group.container !== undefined) flags |= VFIO_GROUP_FLAGS_CONTAINER_SET;
    buf[4] = flags;
    buf[5] = flags >>> 8;
    buf[6] = flags >>> 16;
    buf[7] = flags >>> 24;
    if (copyToUser(uaddr, buf, minsz) !== 0)
      return fail(EFAULT, 'VFIO_GROUP_GET_STATUS: cannot write the result');
    return 0;
  },
);

const vfioGroupFopsUnlIoctl = traced(
  'vfio_group_fops_unl_ioctl',
  (filep: File, cmd: number, arg: bigint): number => {
    const group = filep.private_data as VfioGroup;
    switch (cmd) {
      case VFIO_GROUP_GET_STATUS:
        return vfioGroupIoctlGetStatus(group, arg);
      case VFIO_GROUP_SET_CONTAINER: {
        const fd = getUserS32(uarg(arg));
        if (typeof fd === 'number')
          return fail(EFAULT, 'VFIO_GROUP_SET_CONTAINER: cannot read the container fd');
        if (vfio().profile.setContainerNegFdEinval && fd.value < 0)
          return fail(EINVAL, `VFIO_GROUP_SET_CONTAINER: negative fd ${fd.value}`);
        return vfioGroupSetContainer(group, fd.value);
      }
      case VFIO_GROUP_UNSET_CONTAINER:
        return vfioGroupUnsetContainer(group);
      case VFIO_GROUP_GET_DEVICE_FD: {
        const buf = strndupUser(uarg(arg), currentKernel().pageSize);
        if (typeof buf === 'number')
          return fail(
            -buf,
            buf === -EFAULT
              ? 'VFIO_GROUP_GET_DEVICE_FD: cannot read the device name'
              : 'VFIO_GROUP_GET_DEVICE_FD: device name longer than PAGE_SIZE',
          );
        return vfioGroupGetDeviceFd(group, buf);
      }
    }
    return fail(ENOTTY, `group ioctl 0x${cmd.toString(16)}: not a group ioctl`);
  },
  (_f, cmd) => `cmd=0x${cmd.toString(16)}`,
);

export function makeVfioGroupFops(owner: FileOperations['owner']): FileOperations {
  return {
    name: 'vfio_group_fops',
    owner,
    open: vfioGroupFopsOpen,
    release: vfioGroupFopsRelease,
    unlocked_ioctl: vfioGroupFopsUnlIoctl,
  };
}

/* ---- the external user API (4.1: KVM and vfio-pci hot reset) ---- */

export function vfioGroupGetExternalUser(filep: File): VfioGroup | number {
  const v = vfio();
  if (filep.f_op !== v.groupFops) return fail(EINVAL, 'external user: not a VFIO group file');
  const group = filep.private_data as VfioGroup;
  if (!group.container_users.incNotZero())
    return fail(EINVAL, 'external user: the group is not in a container');
  if (group.container?.iommu_driver === undefined || !vfioGroupViable(group)) {
    group.container_users.dec();
    return fail(EINVAL, 'external user: no IOMMU set or the group is not viable');
  }
  vfioGroupGet(group);
  return group;
}

export function vfioGroupPutExternalUser(group: VfioGroup): void {
  vfioGroupPut(group);
  vfioGroupTryDissolveContainer(group);
}

/** 6.x: is this file a VFIO group (hot reset takes group files by reference) */
export function vfioFileIsGroup(filep: File): boolean {
  return filep.f_op === vfio().groupFops;
}

export function vfioFileGroup(filep: File): VfioGroup | undefined {
  return vfioFileIsGroup(filep) ? (filep.private_data as VfioGroup) : undefined;
}
