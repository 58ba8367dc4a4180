import {
  type CapEntry,
  decodeCapChain,
  VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
  vfio_device_info_cap_pci_atomic_comp,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_info_cap_type,
  vfio_region_sparse_mmap_area,
} from '../uapi/index.ts';

/*
 * Typed decoding of the capability chains of the INFO ioctls (type1
 * GET_INFO, GET_REGION_INFO, GET_INFO on a device). Each decoder takes the
 * whole info buffer as the kernel filled it and the cap_offset it
 * reported; unknown capabilities stay available as raw entries.
 */

/** An IOVA range with an inclusive end, as the kernel reports it. */
export interface IovaRange {
  readonly start: bigint;
  readonly end: bigint;
}

export interface Type1MigrationCap {
  readonly flags: number;
  readonly pgsizeBitmap: bigint;
  readonly maxDirtyBitmapSize: bigint;
}

export interface Type1Caps {
  readonly iovaRanges?: readonly IovaRange[];
  readonly migration?: Type1MigrationCap;
  /** DMA mappings the container may still create (dma_entry_limit minus live ones) */
  readonly dmaAvail?: number;
  readonly raw: readonly CapEntry[];
}

export interface SparseMmapArea {
  readonly offset: bigint;
  readonly size: bigint;
}

export interface RegionCaps {
  /** the parts of the region that may be mmapped (absent: the whole region, if MMAP is set) */
  readonly sparseMmap?: readonly SparseMmapArea[];
  readonly type?: { readonly type: number; readonly subtype: number };
  /** the MSI-X table of this BAR may be mmapped (VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) */
  readonly msixMappable: boolean;
  readonly raw: readonly CapEntry[];
}

export interface DeviceCaps {
  /** VFIO_PCI_ATOMIC_COMP* flags of VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP */
  readonly pciAtomicComp?: number;
  readonly raw: readonly CapEntry[];
}

function need(cap: CapEntry, size: number, what: string): void {
  if (cap.bytes.length < size)
    throw new RangeError(`${what} capability at ${cap.offset} has ${cap.bytes.length} bytes, needs ${size}`);
}

/** Ranges of an IOVA_RANGE capability. */
export function decodeIovaRanges(cap: CapEntry): IovaRange[] {
  need(cap, vfio_iommu_type1_info_cap_iova_range.size, 'IOVA_RANGE');
  const { nr_iovas } = vfio_iommu_type1_info_cap_iova_range.decode(cap.bytes);
  const base = vfio_iommu_type1_info_cap_iova_range.size;
  need(cap, base + nr_iovas * vfio_iova_range.size, 'IOVA_RANGE');
  const out: IovaRange[] = [];
  for (let i = 0; i < nr_iovas; i++) {
    const r = vfio_iova_range.decode(cap.bytes, base + i * vfio_iova_range.size);
    out.push({ start: r.start, end: r.end });
  }
  return out;
}

/** Areas of a SPARSE_MMAP capability. */
export function decodeSparseMmap(cap: CapEntry): SparseMmapArea[] {
  need(cap, vfio_region_info_cap_sparse_mmap.size, 'SPARSE_MMAP');
  const { nr_areas } = vfio_region_info_cap_sparse_mmap.decode(cap.bytes);
  const base = vfio_region_info_cap_sparse_mmap.size;
  need(cap, base + nr_areas * vfio_region_sparse_mmap_area.size, 'SPARSE_MMAP');
  const out: SparseMmapArea[] = [];
  for (let i = 0; i < nr_areas; i++) {
    const a = vfio_region_sparse_mmap_area.decode(cap.bytes, base + i * vfio_region_sparse_mmap_area.size);
    out.push({ offset: a.offset, size: a.size });
  }
  return out;
}

/** The type1 GET_INFO chain. */
export function decodeType1Caps(info: Uint8Array, capOffset: number): Type1Caps {
  const raw = decodeCapChain(info, capOffset);
  let iovaRanges: IovaRange[] | undefined;
  let migration: Type1MigrationCap | undefined;
  let dmaAvail: number | undefined;
  for (const cap of raw) {
    if (cap.id === VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) iovaRanges = decodeIovaRanges(cap);
    else if (cap.id === VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
      need(cap, vfio_iommu_type1_info_cap_migration.size, 'MIGRATION');
      const m = vfio_iommu_type1_info_cap_migration.decode(cap.bytes);
      migration = {
        flags: m.flags,
        pgsizeBitmap: m.pgsize_bitmap,
        maxDirtyBitmapSize: m.max_dirty_bitmap_size,
      };
    } else if (cap.id === VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      need(cap, vfio_iommu_type1_info_dma_avail.size, 'DMA_AVAIL');
      dmaAvail = vfio_iommu_type1_info_dma_avail.decode(cap.bytes).avail;
    }
  }
  return {
    ...(iovaRanges !== undefined ? { iovaRanges } : {}),
    ...(migration !== undefined ? { migration } : {}),
    ...(dmaAvail !== undefined ? { dmaAvail } : {}),
    raw,
  };
}

/** The GET_REGION_INFO chain. */
export function decodeRegionCaps(info: Uint8Array, capOffset: number): RegionCaps {
  const raw = decodeCapChain(info, capOffset);
  let sparseMmap: SparseMmapArea[] | undefined;
  let type: { type: number; subtype: number } | undefined;
  let msixMappable = false;
  for (const cap of raw) {
    if (cap.id === VFIO_REGION_INFO_CAP_SPARSE_MMAP) sparseMmap = decodeSparseMmap(cap);
    else if (cap.id === VFIO_REGION_INFO_CAP_TYPE) {
      need(cap, vfio_region_info_cap_type.size, 'TYPE');
      const t = vfio_region_info_cap_type.decode(cap.bytes);
      type = { type: t.type, subtype: t.subtype };
    } else if (cap.id === VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) msixMappable = true;
  }
  return {
    ...(sparseMmap !== undefined ? { sparseMmap } : {}),
    ...(type !== undefined ? { type } : {}),
    msixMappable,
    raw,
  };
}

/** The device GET_INFO chain. */
export function decodeDeviceCaps(info: Uint8Array, capOffset: number): DeviceCaps {
  const raw = decodeCapChain(info, capOffset);
  let pciAtomicComp: number | undefined;
  for (const cap of raw) {
    if (cap.id === VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP) {
      need(cap, vfio_device_info_cap_pci_atomic_comp.size, 'PCI_ATOMIC_COMP');
      pciAtomicComp = vfio_device_info_cap_pci_atomic_comp.decode(cap.bytes).flags;
    }
  }
  return { ...(pciAtomicComp !== undefined ? { pciAtomicComp } : {}), raw };
}
