import type { KernelVersion } from '../../kernel/index.ts';
import { ENODEV, ENXIO } from '../../uapi/index.ts';

/*
 * vfio_iommu_spapr_tce as of 4.1 (the seed: one iommu_table per
 * container) and as of 6.12 (table groups, dynamic windows, v2). Each
 * behaviour difference is one named row; docs/profiles.md lists them.
 */
export interface SpaprTceProfile {
  /** tce_container: one iommu_table (4.1) or a list of groups, up to two windows and a bound mm (6.12) */
  readonly container: 'single-table' | 'table-group';
  /** VFIO_SPAPR_TCE_v2_IOMMU (7): several groups per container, memory preregistration, DDW */
  readonly v2: boolean;
  /** the group's iommudata: its iommu_table (4.1) or its iommu_table_group (6.12) */
  readonly iommuDataIsTableGroup: boolean;
  /** v1 MAP/UNMAP before VFIO_IOMMU_ENABLE: allowed (4.1) or -EPERM (6.12) */
  readonly mapRequiresEnable: boolean;
  /** MAP onto a valid TCE: -EBUSY (4.1) or the entry is replaced and the old page released (6.12) */
  readonly mapOverValidTce: 'ebusy' | 'replace';
  /** a failed iova check in MAP/UNMAP: -EINVAL (4.1) or the 1 that 6.x's check macros evaluate to */
  readonly paramCheckFailure: 'einval' | 'one';
  /** UNMAP's window check covers the whole range (4.1) or only its first page (6.12) */
  readonly unmapChecksWholeRange: boolean;
  /** ENABLE/DISABLE charge current->mm (4.1) or the mm the container is bound to (6.12) */
  readonly accountTo: 'current' | 'container-mm';
  /** ioctls from a process other than the container's mm: served (4.1) or -EPERM (6.12) */
  readonly foreignMmEperm: boolean;
  /** VFIO_IOMMU_ENABLE with no group attached */
  readonly enableNoGroupErrno: number;
  /** GET_INFO writes the ddw sub-struct (and flags DDW for v2) when argsz covers it */
  readonly getInfoDdw: boolean;
  /** VFIO_EEH_PE_OP: VFIO_EEH_PE_INJECT_ERR (9) and the op applied to every group */
  readonly eehInjectErr: boolean;
  /** the memory of a TCE table VFIO creates is charged to locked_vm */
  readonly chargeTableMemory: boolean;
}

const V4_1: SpaprTceProfile = {
  container: 'single-table',
  v2: false,
  iommuDataIsTableGroup: false,
  mapRequiresEnable: false,
  mapOverValidTce: 'ebusy',
  paramCheckFailure: 'einval',
  unmapChecksWholeRange: true,
  accountTo: 'current',
  foreignMmEperm: false,
  enableNoGroupErrno: ENXIO,
  getInfoDdw: false,
  eehInjectErr: false,
  chargeTableMemory: false,
};

const V6_12: SpaprTceProfile = {
  container: 'table-group',
  v2: true,
  iommuDataIsTableGroup: true,
  mapRequiresEnable: true,
  mapOverValidTce: 'replace',
  paramCheckFailure: 'one',
  unmapChecksWholeRange: false,
  accountTo: 'container-mm',
  foreignMmEperm: true,
  enableNoGroupErrno: ENODEV,
  getInfoDdw: true,
  eehInjectErr: true,
  chargeTableMemory: true,
};

export function spaprTceProfile(v: KernelVersion): SpaprTceProfile {
  return v === '4.1' ? V4_1 : V6_12;
}
