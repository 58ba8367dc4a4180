import {
  currentKernel,
  type File,
  type FileOperations,
  type FilePos,
  fail,
  type Inode,
  IS_ERR,
  Kref,
  modulePut,
  RwSem,
  traced,
  tryModuleGet,
  type Vma,
} from '../kernel/index.ts';
import {
  EINVAL,
  ENODEV,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_SET_IOMMU,
} from '../uapi/index.ts';
import { vfio } from './global.ts';
import { VfioContainer, type VfioGroup, VfioIommuDriver, type VfioIommuDriverOps } from './vfio.ts';

/*
 * The container: /dev/vfio/vfio and the IOMMU driver registry
 * (drivers/vfio/container.c in current kernels; vfio.c in the seeds).
 */

/* ---- IOMMU driver registry ---- */

export const vfioRegisterIommuDriver = traced(
  'vfio_register_iommu_driver',
  (ops: VfioIommuDriverOps): number => {
    const v = vfio();
    const driver = new VfioIommuDriver(ops);
    v.iommu_drivers_lock.lock();
    /* Check for duplicates */
    for (const tmp of v.iommu_drivers_list) {
      if (tmp.ops === ops) {
        v.iommu_drivers_lock.unlock();
        return fail(EINVAL, `vfio_register_iommu_driver: ${ops.name} is already registered`);
      }
    }
    currentKernel().objects.alloc('vfio_iommu_driver');
    v.iommu_drivers_list.unshift(driver); /* list_add: at the head */
    v.iommu_drivers_lock.unlock();
    return 0;
  },
  (ops) => ops.name,
);

export function vfioUnregisterIommuDriver(ops: VfioIommuDriverOps): void {
  const v = vfio();
  v.iommu_drivers_lock.lock();
  const i = v.iommu_drivers_list.findIndex((d) => d.ops === ops);
  if (i >= 0) {
    v.iommu_drivers_list.splice(i, 1);
    currentKernel().objects.free('vfio_iommu_driver');
  }
  v.iommu_drivers_lock.unlock();
}

/* ---- container lifetime ---- */

export const vfioContainerGet = traced('vfio_container_get', (container: VfioContainer): void => {
  container.kref.get();
});

export const vfioContainerPut = traced('vfio_container_put', (container: VfioContainer): void => {
  container.kref.put(() => vfioContainerRelease(container));
});

const vfioContainerRelease = traced('vfio_container_release', (_container: VfioContainer): void => {
  currentKernel().objects.free('vfio_container');
});

/* ---- /dev/vfio/vfio file operations ---- */

const vfioFopsOpen = traced('vfio_fops_open', (_inode: Inode, filep: File): number => {
  const container = new VfioContainer(new Kref(), new RwSem('container->group_lock'));
  currentKernel().objects.alloc('vfio_container');
  filep.private_data = container;
  return 0;
});

const vfioFopsRelease = traced('vfio_fops_release', (_inode: Inode, filep: File): number => {
  const container = filep.private_data as VfioContainer;
  filep.private_data = undefined;
  vfioContainerPut(container);
  return 0;
});

export const vfioIoctlCheckExtension = traced(
  'vfio_ioctl_check_extension',
  (container: VfioContainer, arg: bigint): number => {
    const v = vfio();
    let ret = 0;
    container.group_lock.downRead();
    const driver = container.iommu_driver;
    if (driver === undefined) {
      v.iommu_drivers_lock.lock();
      for (const d of v.iommu_drivers_list) {
        if (!tryModuleGet(d.ops.owner)) continue;
        ret = d.ops.ioctl(null, VFIO_CHECK_EXTENSION, arg);
        modulePut(d.ops.owner);
        if (ret > 0) break;
      }
      v.iommu_drivers_lock.unlock();
    } else {
      ret = driver.ops.ioctl(container.iommu_data ?? null, VFIO_CHECK_EXTENSION, arg);
    }
    container.group_lock.upRead();
    return ret;
  },
  (_c, arg) => `arg=${arg}`,
);

/* attach every group of the container; on failure detach the ones done, in reverse */
export const vfioContainerAttachGroups = traced(
  '__vfio_container_attach_groups',
  (container: VfioContainer, driver: VfioIommuDriver, data: object): number => {
    let ret = -ENODEV;
    const list = container.group_list;
    for (let i = 0; i < list.length; i++) {
      const group = list[i] as VfioGroup;
      ret = group.iommu_group === undefined ? -ENODEV : driver.ops.attach_group(data, group.iommu_group);
      if (ret !== 0) {
        for (let j = i - 1; j >= 0; j--) {
          const g = list[j] as VfioGroup;
          if (g.iommu_group !== undefined) driver.ops.detach_group(data, g.iommu_group);
        }
        return ret;
      }
    }
    return ret;
  },
);

export const vfioIoctlSetIommu = traced(
  'vfio_ioctl_set_iommu',
  (container: VfioContainer, arg: bigint): number => {
    const v = vfio();
    let ret = -ENODEV;
    container.group_lock.downWrite();
    /*
     * The container is designed to be an unprivileged interface while the
     * group can be assigned to specific users: only by adding a group to a
     * container does the user get the privilege of enabling the iommu.
     */
    if (container.group_list.length === 0 || container.iommu_driver !== undefined) {
      container.group_lock.upWrite();
      return fail(
        EINVAL,
        container.iommu_driver !== undefined
          ? 'VFIO_SET_IOMMU: an IOMMU driver is already set on this container'
          : 'VFIO_SET_IOMMU: the container has no groups (VFIO_GROUP_SET_CONTAINER first)',
      );
    }
    v.iommu_drivers_lock.lock();
    let claimed = false;
    for (const driver of [...v.iommu_drivers_list]) {
      if (!tryModuleGet(driver.ops.owner)) continue;
      /* SET_IOMMU's arg is CHECK_EXTENSION's magic: ask who supports it */
      if (driver.ops.ioctl(null, VFIO_CHECK_EXTENSION, arg) <= 0) {
        modulePut(driver.ops.owner);
        continue;
      }
      claimed = true;
      const data = driver.ops.open(arg);
      if (IS_ERR(data)) {
        ret = data;
        modulePut(driver.ops.owner);
        if (v.profile.setIommuContinue) continue;
        break;
      }
      ret = vfioContainerAttachGroups(container, driver, data);
      if (ret === 0) {
        container.iommu_driver = driver;
        container.iommu_data = data;
        break;
      }
      driver.ops.release(data);
      modulePut(driver.ops.owner);
      if (!v.profile.setIommuContinue) break;
    }
    v.iommu_drivers_lock.unlock();
    container.group_lock.upWrite();
    if (!claimed) return fail(ENODEV, `VFIO_SET_IOMMU: no IOMMU driver supports type ${arg}`);
    return ret;
  },
  (_c, arg) => `arg=${arg}`,
);

const vfioFopsUnlIoctl = traced(
  'vfio_fops_unl_ioctl',
  (filep: File, cmd: number, arg: bigint): number => {
    const container = filep.private_data as VfioContainer | undefined;
    if (container === undefined) return -EINVAL;
    switch (cmd) {
      case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return vfioIoctlCheckExtension(container, arg);
      case VFIO_SET_IOMMU:
        return vfioIoctlSetIommu(container, arg);
      default: {
        const locked = vfio().profile.passthroughUnderGroupLock;
        if (locked) container.group_lock.downRead();
        const driver = container.iommu_driver;
        let ret: number;
        if (driver !== undefined && container.iommu_data !== undefined)
          /* passthrough all unrecognized ioctls */
          ret = driver.ops.ioctl(container.iommu_data, cmd, arg);
        else
          ret = fail(
            EINVAL,
            `container ioctl 0x${cmd.toString(16)}: no IOMMU driver set (VFIO_SET_IOMMU first)`,
          );
        if (locked) container.group_lock.upRead();
        return ret;
      }
    }
  },
  (_f, cmd) => `cmd=0x${cmd.toString(16)}`,
);

function passthrough(
  name: 'read' | 'write',
): (filep: File, buf: number, count: number, ppos: FilePos) => number {
  return (filep, buf, count, ppos) => {
    const container = filep.private_data as VfioContainer;
    let ret = -EINVAL;
    container.group_lock.downRead();
    const driver = container.iommu_driver;
    const op = driver?.ops[name];
    if (op !== undefined && container.iommu_data !== undefined)
      ret = op(container.iommu_data, buf, count, ppos);
    else fail(EINVAL, `container ${name}: the IOMMU driver has no ${name} op`);
    container.group_lock.upRead();
    return ret;
  };
}

function vfioFopsMmap(filep: File, vma: Vma): number {
  const container = filep.private_data as VfioContainer;
  let ret = -EINVAL;
  container.group_lock.downRead();
  const driver = container.iommu_driver;
  if (driver?.ops.mmap !== undefined && container.iommu_data !== undefined)
    ret = driver.ops.mmap(container.iommu_data, vma);
  else fail(EINVAL, 'container mmap: the IOMMU driver has no mmap op');
  container.group_lock.upRead();
  return ret;
}

/** vfio_fops of the 4.1 kernel: read/write/mmap pass through to the IOMMU driver */
export function makeVfioFops(passthroughRwMmap: boolean, owner: FileOperations['owner']): FileOperations {
  const base: FileOperations = {
    name: 'vfio_fops',
    owner,
    open: vfioFopsOpen,
    release: vfioFopsRelease,
    unlocked_ioctl: vfioFopsUnlIoctl,
  };
  if (!passthroughRwMmap) return base;
  return { ...base, read: passthrough('read'), write: passthrough('write'), mmap: vfioFopsMmap };
}

/** `f.file->f_op != &vfio_fops`: is this really our fd? */
export function isVfioContainerFile(f: File): boolean {
  return f.f_op === vfio().fops;
}
