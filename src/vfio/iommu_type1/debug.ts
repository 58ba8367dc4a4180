import type { IommuGroup } from '../../iommu/index.ts';
import type { Process } from '../../kernel/index.ts';
import { type VfioContainer, vfioOf } from '../index.ts';
import { handleLocked, VfioIommu } from './vfio_iommu.ts';

/*
 * A read-only view of a type1 container for tests, debugfs and the CLI:
 * the mappings as the kernel's dma_list holds them, and the domains with
 * their groups.
 */
export interface Type1Mapping {
  readonly iova: bigint;
  readonly size: bigint;
  readonly vaddr: bigint;
  /** IOMMU_READ | IOMMU_WRITE */
  readonly prot: number;
  readonly vaddrInvalid: boolean;
  /** pid of the task that mapped it (dma->task) */
  readonly pid: number;
  /** pages it charged to locked_vm */
  readonly lockedPages: number;
}

export interface Type1Debug {
  readonly v2: boolean;
  readonly nesting: boolean;
  readonly mappings: Type1Mapping[];
  /** DMA_AVAIL */
  readonly dmaAvail: number;
  readonly pgsizeBitmap: bigint;
  readonly iovaRanges: { start: bigint; end: bigint }[];
  /** domain_list order; each the IOMMU group ids attached to it */
  readonly domains: {
    groups: number[];
    enforceCacheCoherency: boolean;
    prot: number;
    /** page-table entries by page size in bytes (4096, 2 MiB, 1 GiB) */
    pageTableEntries: Record<number, number>;
    pageTableBytes: number;
  }[];
  readonly dirtyTracking: boolean;
  readonly vaddrInvalidCount: number;
}

export function type1DebugOf(iommuData: unknown): Type1Debug | undefined {
  if (!(iommuData instanceof VfioIommu)) return undefined;
  const iommu = iommuData;
  const mappings: Type1Mapping[] = [];
  iommu.dma_list.forEach((e) => {
    const owner = iommu.owners[e.handle % 0x10_0000];
    mappings.push({
      iova: e.iova,
      size: e.size,
      vaddr: e.vaddr,
      prot: e.prot,
      vaddrInvalid: e.vaddrInvalid,
      pid: owner?.task.pid ?? -1,
      lockedPages: handleLocked(e.handle),
    });
  });
  return {
    v2: iommu.v2,
    nesting: iommu.nesting,
    mappings,
    dmaAvail: iommu.dma_avail,
    pgsizeBitmap: iommu.pgsize_bitmap,
    iovaRanges: iommu.iova_list.map((r) => ({ start: r.start, end: r.end })),
    domains: iommu.domain_list.map((d) => ({
      groups: d.group_list.map((g: IommuGroup) => g.id),
      enforceCacheCoherency: d.enforce_cache_coherency,
      prot: d.prot,
      pageTableEntries: entriesBySize(d.domain.pt.entries()),
      pageTableBytes: d.domain.pt.bytes,
    })),
    dirtyTracking: iommu.dirty_page_tracking,
    vaddrInvalidCount: iommu.vaddr_invalid_count,
  };
}

function entriesBySize(entries: readonly { pages: number }[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const e of entries) out[e.pages * 4096] = (out[e.pages * 4096] ?? 0) + 1;
  return out;
}

/** the type1 state behind container fd `fd` of a process, if it has one */
export function type1Debug(p: Process, fd: number): Type1Debug | undefined {
  const f = p.task.files.get(fd);
  const fops = vfioOf(p.kernel)?.fops;
  if (f === undefined || fops === undefined || f.f_op !== fops) return undefined;
  return type1DebugOf((f.private_data as VfioContainer).iommu_data);
}
