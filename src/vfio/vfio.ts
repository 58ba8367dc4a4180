import type { IommuGroup } from '../iommu/index.ts';
import type {
  Atomic,
  ClassDevice,
  Device,
  File,
  FilePos,
  Kref,
  Module,
  Mutex,
  NotifierBlock,
  RwSem,
  Vma,
} from '../kernel/index.ts';

/*
 * The VFIO core's private header (drivers/vfio/vfio.h and the structs of
 * vfio.c): the ops tables bus drivers and IOMMU backends implement, and
 * the objects of the seed's Figure 0.
 */

/** struct vfio_iommu_driver_ops: what an IOMMU backend registers */
export interface VfioIommuDriverOps {
  readonly name: string;
  readonly owner?: Module | undefined;
  /** returns iommu_data, or -errno (ERR_PTR) */
  open(arg: bigint): object | number;
  release(iommu_data: object): void;
  /** iommu_data is null for CHECK_EXTENSION before SET_IOMMU */
  ioctl(iommu_data: object | null, cmd: number, arg: bigint): number;
  read?(iommu_data: object, buf: number, count: number, ppos: FilePos): number;
  write?(iommu_data: object, buf: number, count: number, ppos: FilePos): number;
  mmap?(iommu_data: object, vma: Vma): number;
  attach_group(iommu_data: object, group: IommuGroup): number;
  detach_group(iommu_data: object, group: IommuGroup): void;
}

/** struct vfio_device_ops: what a bus driver (vfio-pci) registers per device */
export interface VfioDeviceOps {
  readonly name: string;
  /** 4.1: called for every device fd; 6.12: open_device, on the first only */
  open(device_data: unknown): number;
  /** 4.1: on every device fd close; 6.12: close_device, on the last */
  release(device_data: unknown): void;
  ioctl?(device_data: unknown, cmd: number, arg: bigint): number;
  read?(device_data: unknown, buf: number, count: number, ppos: FilePos): number;
  write?(device_data: unknown, buf: number, count: number, ppos: FilePos): number;
  mmap?(device_data: unknown, vma: Vma): number;
  /** ask the user to release the device (the REQ interrupt) */
  request?(device_data: unknown, count: number): void;
}

/** struct vfio_iommu_driver: a registry entry */
export class VfioIommuDriver {
  constructor(readonly ops: VfioIommuDriverOps) {}
}

/** struct vfio_container: /dev/vfio/vfio */
export class VfioContainer {
  readonly kref: Kref;
  /** list_add puts new groups at the head, as the kernel's list */
  readonly group_list: VfioGroup[] = [];
  readonly group_lock: RwSem;
  iommu_driver: VfioIommuDriver | undefined;
  iommu_data: object | undefined;
  noiommu = false;
  constructor(kref: Kref, lock: RwSem) {
    this.kref = kref;
    this.group_lock = lock;
  }
}

/** struct vfio_unbound_dev: a device being unbound from its vfio driver */
export interface VfioUnboundDev {
  readonly dev: Device;
}

/** struct vfio_group: /dev/vfio/$GROUP */
export class VfioGroup {
  minor = -1;
  dev: ClassDevice | undefined;
  container: VfioContainer | undefined;
  readonly device_list: VfioDevice[] = [];
  readonly unbound_list: VfioUnboundDev[] = [];
  nb: NotifierBlock<Device> | undefined;
  /* 6.12 */
  opened_file: File | undefined;
  /** registered devices (refcount_t drivers) */
  drivers = 0;
  cdev_device_open_cnt = 0;
  /** set to undefined when the last device leaves (6.12) */
  iommu_group: IommuGroup | undefined;
  constructor(
    readonly kref: Kref,
    readonly container_users: Atomic,
    readonly opened: Atomic,
    readonly device_lock: Mutex,
    iommu_group: IommuGroup,
  ) {
    this.iommu_group = iommu_group;
  }
}

/** struct vfio_device */
export class VfioDevice {
  /** 6.12: open device files; open_device ran on the 0 -> 1 step */
  open_count = 0;
  /** 6.12: the registration refcount (driver + device fds) */
  registration = 1;
  constructor(
    readonly kref: Kref,
    readonly dev: Device,
    readonly ops: VfioDeviceOps,
    readonly group: VfioGroup,
    readonly device_data: unknown,
  ) {}
}
