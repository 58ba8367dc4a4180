import type { KernelVersion } from '../../kernel/index.ts';

/*
 * Where vfio_iommu_type1 of 4.1 and of 6.12 behave differently, each
 * difference is one named row here; docs/profiles.md lists them all.
 */
export interface Type1Profile {
  /** GET_INFO sets VFIO_IOMMU_INFO_PGSIZES (4.1 leaves flags 0) */
  readonly infoFlagsPgsizes: boolean;
  /** GET_INFO capability chain (MIGRATION, DMA_AVAIL, IOVA_RANGE) and the argsz/CAPS answer to a short buffer */
  readonly infoCaps: boolean;
  /** the dma_entry_limit module parameter: -ENOSPC past it */
  readonly dmaEntryLimit: boolean;
  /** valid IOVA ranges (aperture minus reserved regions): MAP outside -EINVAL, attach conflicts -EINVAL */
  readonly iovaRanges: boolean;
  /** MAP_DMA VADDR, UNMAP_DMA ALL / VADDR / GET_DIRTY_BITMAP, extensions UNMAP_ALL and UPDATE_VADDR */
  readonly vaddrAndUnmapAll: boolean;
  /** VFIO_IOMMU_DIRTY_PAGES and dirty bitmaps */
  readonly dirtyPages: boolean;
  /** UNMAP_DMA refuses an iova + size that wraps (-EINVAL) */
  readonly unmapWrapCheck: boolean;
  /** locked_vm is charged to the mm that mapped (dma->mm) rather than current->mm */
  readonly accountToDmaMm: boolean;
  /** CAP_IPC_LOCK is sampled once at MAP (dma->lock_cap) rather than at every pin */
  readonly lockCapAtMap: boolean;
  /** the pinning function the RLIMIT_MEMLOCK warning names */
  readonly pinFnName: string;
  /** over the limit mid-chunk: 4.1 ends the chunk there (and fails the next), 6.12 fails at once */
  readonly memlockFailsChunk: boolean;
  /** domains are matched by enforce_cache_coherency per domain, not by a bus-wide IOMMU_CACHE prot */
  readonly perDomainCoherency: boolean;
  /** interrupt isolation is asked per group (iommu_group_has_isolated_msi) */
  readonly isolatedMsiPerGroup: boolean;
  /** a VM_PFNMAP page mapped for device writes must be writable (pte_write) */
  readonly pfnmapWriteCheck: boolean;
  /** iommu->pgsize_bitmap is cached and starts at PAGE_MASK with no domain */
  readonly cachedPgsizeBitmap: boolean;
  /**
   * GET_INFO and UNMAP_DMA end in `return copy_to_user(...)`: a fault on
   * the way out returns the bytes not copied, not -EFAULT (fixed in v4.7)
   */
  readonly copyOutResidual: boolean;
}

const V4_1: Type1Profile = {
  infoFlagsPgsizes: false,
  infoCaps: false,
  dmaEntryLimit: false,
  iovaRanges: false,
  vaddrAndUnmapAll: false,
  dirtyPages: false,
  unmapWrapCheck: false,
  accountToDmaMm: false,
  lockCapAtMap: false,
  pinFnName: 'vfio_pin_pages',
  memlockFailsChunk: false,
  perDomainCoherency: false,
  isolatedMsiPerGroup: false,
  pfnmapWriteCheck: false,
  cachedPgsizeBitmap: false,
  copyOutResidual: true,
};

const V6_12: Type1Profile = {
  infoFlagsPgsizes: true,
  infoCaps: true,
  dmaEntryLimit: true,
  iovaRanges: true,
  vaddrAndUnmapAll: true,
  dirtyPages: true,
  unmapWrapCheck: true,
  accountToDmaMm: true,
  lockCapAtMap: true,
  pinFnName: 'vfio_pin_pages_remote',
  memlockFailsChunk: true,
  perDomainCoherency: true,
  isolatedMsiPerGroup: true,
  pfnmapWriteCheck: true,
  cachedPgsizeBitmap: true,
  copyOutResidual: false,
};

export function type1Profile(v: KernelVersion): Type1Profile {
  return v === '4.1' ? V4_1 : V6_12;
}
