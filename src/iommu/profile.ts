import type { KernelVersion } from '../kernel/index.ts';

/*
 * Where the IOMMU core of 4.1 and of 6.12 differ in what a user sees;
 * docs/profiles.md lists the rows.
 */
export interface IommuCoreProfile {
  /** /sys/kernel/iommu_groups/<id>/reserved_regions (4.11+) */
  readonly reservedRegionsAttr: boolean;
  /** /sys/kernel/iommu_groups/<id>/type (5.11+) */
  readonly groupTypeAttr: boolean;
}

const V4_1: IommuCoreProfile = { reservedRegionsAttr: false, groupTypeAttr: false };
const V6_12: IommuCoreProfile = { reservedRegionsAttr: true, groupTypeAttr: true };

export function iommuCoreProfile(v: KernelVersion): IommuCoreProfile {
  return v === '4.1' ? V4_1 : V6_12;
}
