import {
  type Cdev,
  currentKernel,
  type DeviceClass,
  type FileOperations,
  Idr,
  type Kernel,
  type MiscDevice,
  type Module,
  Mutex,
  WaitQueueHead,
} from '../kernel/index.ts';
import type { VfioCoreProfile } from './profile.ts';
import type { VfioGroup, VfioIommuDriver } from './vfio.ts';

/*
 * `static struct vfio` of vfio.c: one per kernel. Kernel code reaches it
 * as the C code reaches the global, through vfio(), which looks it up
 * for the kernel currently running.
 */
export class Vfio {
  class: DeviceClass | undefined;
  readonly group_list: VfioGroup[] = [];
  readonly group_idr = new Idr<VfioGroup>();
  readonly group_lock = new Mutex('vfio.group_lock');
  readonly iommu_drivers_list: VfioIommuDriver[] = [];
  readonly iommu_drivers_lock = new Mutex('vfio.iommu_drivers_lock');
  readonly release_q = new WaitQueueHead('vfio.release_q');
  group_devt = 0;
  group_cdev: Cdev | undefined;
  misc: MiscDevice | undefined;
  /** &vfio_fops, &vfio_group_fops, &vfio_device_fops: f_op identity is how fds are recognised */
  fops: FileOperations | undefined;
  groupFops: FileOperations | undefined;
  deviceFops: FileOperations | undefined;
  constructor(
    readonly kernel: Kernel,
    readonly profile: VfioCoreProfile,
    readonly module: Module | undefined,
  ) {}
}

const instances = new WeakMap<Kernel, Vfio>();

export function vfio(): Vfio {
  const v = instances.get(currentKernel());
  if (v === undefined) throw new Error('vfio.ko is not loaded in this kernel');
  return v;
}

export function vfioOf(kernel: Kernel): Vfio | undefined {
  return instances.get(kernel);
}

export function setVfio(kernel: Kernel, v: Vfio | undefined): void {
  if (v === undefined) instances.delete(kernel);
  else instances.set(kernel, v);
}
