/*
 * asm/tce.h and the DMA directions of include/linux/dma-direction.h, as
 * the TCE code uses them. A TCE is one 64-bit entry of a translation
 * table: the real page number above bit 12, the permission bits below.
 */
export const TCE_PCI_READ = 0x1;
export const TCE_PCI_WRITE = 0x2;
export const TCE_SHIFT = 12;
export const TCE_RPN_SHIFT = 12;
export const TCE_ENTRY_SIZE = 8;

export const IOMMU_PAGE_SHIFT_4K = 12;

/** enum dma_data_direction */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;
export type DmaDirection = 0 | 1 | 2 | 3;

/** iommu_tce_direction: the direction a TCE's permission bits grant */
export function iommuTceDirection(tce: number | bigint): DmaDirection {
  const perm = typeof tce === 'bigint' ? Number(tce & 3n) : tce & 3;
  if (perm & TCE_PCI_READ && perm & TCE_PCI_WRITE) return DMA_BIDIRECTIONAL;
  if (perm & TCE_PCI_READ) return DMA_TO_DEVICE;
  if (perm & TCE_PCI_WRITE) return DMA_FROM_DEVICE;
  return DMA_NONE;
}

/** iommu_direction_to_tce_perm */
export function iommuDirectionToTcePerm(dir: DmaDirection): number {
  switch (dir) {
    case DMA_BIDIRECTIONAL:
      return TCE_PCI_READ | TCE_PCI_WRITE;
    case DMA_FROM_DEVICE:
      return TCE_PCI_WRITE;
    case DMA_TO_DEVICE:
      return TCE_PCI_READ;
    default:
      return 0;
  }
}
