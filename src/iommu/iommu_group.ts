import {
  BlockingNotifierHead,
  type Device,
  type IommuGroupHandle,
  Kref,
  type NotifierBlock,
  traced,
} from '../kernel/index.ts';
import { EBUSY, EINVAL, EPERM } from '../uapi/index.ts';
import type { IommuDomain } from './domain.ts';

/*
 * struct iommu_group: the unit of isolation. Devices that the IOMMU cannot
 * tell apart share a group, and VFIO hands out whole groups. The group
 * carries the notifier chain the 4.1 VFIO core watches, the arch's
 * iommudata (sPAPR: the iommu_table), the domain its devices' DMA is
 * translated by, and (6.x) the DMA-ownership count that replaced the
 * notifier.
 */
export const IOMMU_GROUP_NOTIFY_ADD_DEVICE = 1;
export const IOMMU_GROUP_NOTIFY_DEL_DEVICE = 2;
export const IOMMU_GROUP_NOTIFY_BIND_DRIVER = 3;
export const IOMMU_GROUP_NOTIFY_BOUND_DRIVER = 4;
export const IOMMU_GROUP_NOTIFY_UNBIND_DRIVER = 5;
export const IOMMU_GROUP_NOTIFY_UNBOUND_DRIVER = 6;

export interface ReservedRegion {
  readonly start: bigint;
  /** inclusive */
  readonly end: bigint;
  readonly type: 'msi' | 'reserved' | 'direct';
}

export class IommuGroup implements IommuGroupHandle {
  readonly kref = new Kref();
  readonly devices: Device[] = [];
  readonly notifier = new BlockingNotifierHead<Device>();
  iommu_data: unknown;
  /** the domain devices in this group currently translate through */
  domain: IommuDomain | undefined;
  /** the kernel's own DMA domain for host drivers */
  default_domain: IommuDomain | undefined;
  /* 6.x DMA ownership */
  owner: unknown;
  owner_cnt = 0;
  readonly reservedRegions: ReservedRegion[] = [];
  constructor(readonly id: number) {}
}

export function iommuGroupId(group: IommuGroup): number {
  return group.id;
}

/** iommu_group_get: a counted reference to dev's group, or undefined */
export const iommuGroupGet = traced('iommu_group_get', (dev: Device): IommuGroup | undefined => {
  const g = dev.iommu_group;
  if (!(g instanceof IommuGroup)) return undefined;
  g.kref.get();
  return g;
});

export const iommuGroupPut = traced('iommu_group_put', (group: IommuGroup): void => {
  group.kref.put(() => {});
});

export const iommuGroupRegisterNotifier = traced(
  'iommu_group_register_notifier',
  (group: IommuGroup, nb: NotifierBlock<Device>): number => {
    return group.notifier.register(nb);
  },
);

export function iommuGroupUnregisterNotifier(group: IommuGroup, nb: NotifierBlock<Device>): number {
  return group.notifier.unregister(nb);
}

export const iommuGroupGetIommudata = traced('iommu_group_get_iommudata', (group: IommuGroup): unknown => {
  return group.iommu_data;
});

export function iommuGroupSetIommudata(group: IommuGroup, data: unknown): void {
  group.iommu_data = data;
}

/** iommu_group_for_each_dev: stops at the first non-zero return */
export function iommuGroupForEachDev(group: IommuGroup, fn: (dev: Device) => number): number {
  for (const d of group.devices) {
    const r = fn(d);
    if (r !== 0) return r;
  }
  return 0;
}

/* ---- 6.x DMA ownership (drivers/iommu/iommu.c) ---- */

/** iommu_group_claim_dma_owner: -EPERM while any DMA-API driver is bound */
export function iommuGroupClaimDmaOwner(group: IommuGroup, owner: unknown): number {
  if (owner === undefined) return -EINVAL;
  if (group.owner_cnt !== 0) return -EPERM;
  if (group.domain !== undefined && group.domain !== group.default_domain) return -EBUSY;
  group.owner = owner;
  group.owner_cnt = 1;
  group.domain = undefined; /* the blocking domain: no DMA until a user domain attaches */
  return 0;
}

export function iommuGroupReleaseDmaOwner(group: IommuGroup): void {
  if (group.owner_cnt === 0 || group.owner === undefined) return;
  group.owner_cnt = 0;
  group.owner = undefined;
  group.domain = group.default_domain;
}

export function iommuGroupDmaOwnerClaimed(group: IommuGroup): boolean {
  return group.owner_cnt !== 0;
}

/** iommu_device_use_default_domain: a DMA-API driver is binding */
export function iommuDeviceUseDefaultDomain(dev: Device): number {
  const g = dev.iommu_group;
  if (!(g instanceof IommuGroup)) return 0;
  if (g.owner_cnt !== 0 && (g.owner !== undefined || g.domain !== g.default_domain)) return -EBUSY;
  g.owner_cnt++;
  return 0;
}

export function iommuDeviceUnuseDefaultDomain(dev: Device): void {
  const g = dev.iommu_group;
  if (!(g instanceof IommuGroup)) return;
  if (g.owner_cnt > 0 && g.owner === undefined) g.owner_cnt--;
}
