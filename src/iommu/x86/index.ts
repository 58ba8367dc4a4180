/* The x86 IOMMU (Intel VT-d): domains with page tables, and the IOMMU API VFIO's type1 backend calls. */
export * from './api.ts';
export {
  DmarUnit,
  type DmarUnitCaps,
  type DomainGeometry,
  FAULT_BEYOND_MGAW,
  FAULT_PRESENT_CONTEXT,
  FAULT_PTE_READ,
  FAULT_PTE_WRITE,
  type IommuOps,
  X86Domain,
} from './domain.ts';
export { intelIommuOps, registerX86Iommu, X86Iommu, x86IommuOf } from './iommu.ts';
export {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_READ,
  IOMMU_WRITE,
  PageTable,
  type PageTableEntry,
  VTD_PAGE_SHIFT,
  VTD_PAGE_SIZE,
} from './page_table.ts';
export { INTEL_IOMMU_PGSIZES_ALL, type X86IommuProfile, x86IommuProfile } from './profile.ts';
