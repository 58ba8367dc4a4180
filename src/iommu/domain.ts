/*
 * struct iommu_domain as the device side sees it: a translation from bus
 * addresses (IOVAs) to physical runs, with permission checks. The type1
 * backend's page-table domains and the sPAPR TCE tables both implement
 * it, so a device model never knows which one it sits behind.
 */
export interface DmaRun {
  phys: number;
  len: number;
}

export interface IommuFault {
  /** the first faulting bus address */
  readonly iova: bigint;
  readonly write: boolean;
  readonly reason: string;
}

export interface IommuDomain {
  /** 'unmanaged' for a VFIO user's domain, 'dma' for the kernel's own, ... */
  readonly type: 'unmanaged' | 'dma' | 'identity' | 'blocked' | 'spapr-tce';
  /**
   * Translate [iova, iova+len) for a device read (write=false) or write.
   * Appends physical runs (merged when contiguous) to `runs`; returns a
   * fault when any byte is unmapped or lacks the permission.
   */
  translate(iova: bigint, len: number, write: boolean, runs: DmaRun[]): IommuFault | undefined;
}
