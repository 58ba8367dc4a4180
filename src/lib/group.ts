import {
  O_RDWR,
  type Syscalls,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  vfio_group_status,
} from '../uapi/index.ts';
import { s32Array } from './bytes.ts';
import type { VfioContainer } from './container.ts';
import { VfioDevice } from './device.ts';
import { check, errorFor } from './error.ts';
import { FdObject } from './fd_object.ts';

export interface GroupStatus {
  readonly flags: number;
  /** every device of the group is bound to a VFIO driver (or none at all) */
  readonly viable: boolean;
  /** the group is attached to a container */
  readonly containerSet: boolean;
}

/**
 * The IOMMU group of a PCI device, from its sysfs link
 * /sys/bus/pci/devices/<bdf>/iommu_group -> ../../../kernel/iommu_groups/<id>.
 */
export function iommuGroupOf(sys: Syscalls, bdf: string): number {
  const path = `/sys/bus/pci/devices/${bdf}/iommu_group`;
  if (sys.readlink === undefined)
    throw new Error('iommuGroupOf: this Syscalls implementation has no readlink');
  const target = sys.readlink(path);
  if (typeof target === 'number') throw errorFor(sys, target, { syscall: 'readlink', arg: `"${path}"` });
  const id = Number(target.split('/').pop());
  if (!Number.isInteger(id) || id < 0) throw new Error(`${path} points to ${target}, not an IOMMU group`);
  return id;
}

/**
 * A VFIO group (/dev/vfio/<id>): the unit of ownership. Attach it to a
 * container, then get device fds from it. Owns its fd; close() closes it
 * (the kernel detaches it from its container once no device fd is left).
 */
export class VfioGroup extends FdObject {
  /** the container attached through this object */
  container: VfioContainer | undefined;

  private constructor(
    sys: Syscalls,
    fd: number,
    /** the IOMMU group number */
    readonly id: number,
  ) {
    super(sys, fd);
  }

  /** open("/dev/vfio/<id>", O_RDWR). */
  static open(sys: Syscalls, id: number): VfioGroup {
    const path = `/dev/vfio/${id}`;
    const fd = check(sys, sys.open(path, O_RDWR), { syscall: 'open', arg: `"${path}", O_RDWR` });
    return new VfioGroup(sys, fd, id);
  }

  /** Open the group of a PCI device, found through its sysfs iommu_group link. */
  static forDevice(sys: Syscalls, bdf: string): VfioGroup {
    return VfioGroup.open(sys, iommuGroupOf(sys, bdf));
  }

  /** VFIO_GROUP_GET_STATUS. */
  status(): GroupStatus {
    const s = this.ioctlStruct(VFIO_GROUP_GET_STATUS, 'VFIO_GROUP_GET_STATUS', vfio_group_status, {});
    return {
      flags: s.flags,
      viable: (s.flags & VFIO_GROUP_FLAGS_VIABLE) !== 0,
      containerSet: (s.flags & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0,
    };
  }

  /** VFIO_GROUP_SET_CONTAINER (a container object, or a raw container fd). */
  setContainer(container: VfioContainer | number): void {
    const fd = typeof container === 'number' ? container : container.fd;
    this.ioctlBytes(VFIO_GROUP_SET_CONTAINER, 'VFIO_GROUP_SET_CONTAINER', s32Array([fd]), String(fd), 0);
    this.container = typeof container === 'number' ? undefined : container;
  }

  /** VFIO_GROUP_UNSET_CONTAINER: EBUSY while device fds of the group are open. */
  unsetContainer(): void {
    this.ioctlValue(VFIO_GROUP_UNSET_CONTAINER, 'VFIO_GROUP_UNSET_CONTAINER');
    this.container = undefined;
  }

  /** VFIO_GROUP_GET_DEVICE_FD: the device by name ("0000:00:03.0"). */
  device(name: string): VfioDevice {
    const bytes = new TextEncoder().encode(`${name}\0`);
    const { ret } = this.ioctlBytes(
      VFIO_GROUP_GET_DEVICE_FD,
      'VFIO_GROUP_GET_DEVICE_FD',
      bytes,
      `"${name}"`,
      0,
    );
    return VfioDevice.fromFd(this.sys, ret, name);
  }
}
