import type { KernelVersion } from '../../kernel/index.ts';

/*
 * Where the Intel VT-d driver of 4.1 and of 6.12 differ in what a VFIO
 * user can see; docs/profiles.md lists the rows.
 */
export interface X86IommuProfile {
  /**
   * the page sizes a domain advertises: 4.1's intel-iommu claims every
   * power of two from 4 KiB up (INTEL_IOMMU_PGSIZES = ~0xfff, "to retain
   * the old behaviour"), 6.12 the sizes the hardware maps
   */
  readonly advertiseAllPgsizes: boolean;
  /** how dmar_fault_do_one words a DMA fault: 4.1 two lines, 6.12 one with NO_PASID */
  readonly faultFormat: '4.1' | '6.12';
  /** pr_fmt of drivers/iommu/dmar.c: KBUILD_MODNAME "dmar: " until 4.2, "DMAR: " since */
  readonly dmarPrefix: string;
  /** pr_fmt of intel-iommu.c: none in 4.1 (printk), "DMAR: " in 6.12 */
  readonly intelIommuPrefix: string;
}

/** INTEL_IOMMU_PGSIZES of 4.1: ~0xFFFUL */
export const INTEL_IOMMU_PGSIZES_ALL = 0xffff_ffff_ffff_f000n;

const V4_1: X86IommuProfile = {
  advertiseAllPgsizes: true,
  faultFormat: '4.1',
  dmarPrefix: 'dmar: ',
  intelIommuPrefix: '',
};

const V6_12: X86IommuProfile = {
  advertiseAllPgsizes: false,
  faultFormat: '6.12',
  dmarPrefix: 'DMAR: ',
  intelIommuPrefix: 'DMAR: ',
};

export function x86IommuProfile(v: KernelVersion): X86IommuProfile {
  return v === '4.1' ? V4_1 : V6_12;
}
