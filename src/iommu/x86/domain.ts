import type { DmaRun, IommuDomain, IommuFault } from '../domain.ts';
import type { IommuGroup } from '../iommu_group.ts';
import { IOMMU_READ, IOMMU_WRITE, PageTable, VTD_PAGE_SHIFT, VTD_PAGE_SIZE } from './page_table.ts';

/*
 * struct dmar_domain: an unmanaged IOMMU domain (one per VFIO container
 * domain) with its page table, address width and the groups attached to
 * it. translate() is what a device's DMA goes through.
 */

/** the VT-d fault reasons a translation can end in (drivers/iommu/intel/dmar.c) */
export const FAULT_PRESENT_CONTEXT = 'Present bit in context entry is clear';
export const FAULT_BEYOND_MGAW = 'Access beyond MGAW';
export const FAULT_PTE_WRITE = 'PTE Write access is not set';
export const FAULT_PTE_READ = 'PTE Read access is not set';

/** the fault reason number dmar_get_fault_reason() has for each text */
export const FAULT_REASON_CODES: Readonly<Record<string, number>> = {
  [FAULT_PRESENT_CONTEXT]: 0x2,
  [FAULT_BEYOND_MGAW]: 0x4,
  [FAULT_PTE_WRITE]: 0x5,
  [FAULT_PTE_READ]: 0x6,
};

/** a DMA-remapping hardware unit (DRHD): what the domains of its devices can do */
export interface DmarUnitCaps {
  /** snoop control: the unit can force snooping (IOMMU_CACHE / enforce_cache_coherency) */
  readonly cacheCoherent: boolean;
  /** MGAW: input address width in bits */
  readonly addressWidth: number;
  /** page sizes the unit maps */
  readonly pgsizeBitmap: bigint;
}

export class DmarUnit {
  constructor(
    readonly id: number,
    readonly caps: DmarUnitCaps,
  ) {}
}

/** the identity VFIO compares domains by (domain->ops) */
export interface IommuOps {
  readonly name: string;
}

export interface DomainGeometry {
  readonly aperture_start: bigint;
  /** inclusive */
  readonly aperture_end: bigint;
  readonly force_aperture: boolean;
}

export class X86Domain implements IommuDomain {
  readonly type = 'unmanaged';
  readonly pt: PageTable;
  /** guest address width: the narrowest unit attached so far */
  declare gaw: number;
  /** highest IOVA mapped so far + 1 (dmar_domain->max_addr), in pages */
  declare maxAddrPages: number;
  /** force snooping was turned on (enforce_cache_coherency) */
  forceSnooping = false;
  readonly groups = new Set<IommuGroup>();
  readonly units = new Set<DmarUnit>();
  freed = false;

  constructor(
    readonly ops: IommuOps,
    unit: DmarUnit,
    /** the page sizes the driver advertises for this domain */
    readonly pgsize_bitmap: bigint,
  ) {
    this.gaw = unit.caps.addressWidth;
    this.maxAddrPages = 0;
    this.pt = new PageTable(unit.caps.pgsizeBitmap);
  }

  get geometry(): DomainGeometry {
    return { aperture_start: 0n, aperture_end: (1n << BigInt(this.gaw)) - 1n, force_aperture: true };
  }

  /** pages below 2^gaw: an IOVA page at or above this is beyond the MGAW */
  get maxPfn(): number {
    return 2 ** (this.gaw - VTD_PAGE_SHIFT);
  }

  translate(iova: bigint, len: number, write: boolean, runs: DmaRun[]): IommuFault | undefined {
    if (len <= 0) return undefined;
    const need = write ? IOMMU_WRITE : IOMMU_READ;
    const pt = this.pt;
    const maxPfn = this.maxPfn;
    let ipfn = iova >> 64n ? Number.POSITIVE_INFINITY : Number(iova >> BigInt(VTD_PAGE_SHIFT));
    let off = Number(iova & BigInt(VTD_PAGE_SIZE - 1));
    let left = len;
    let first = true;
    const fault = (reason: string): IommuFault => ({
      iova: first ? iova : BigInt(ipfn) << BigInt(VTD_PAGE_SHIFT),
      write,
      reason,
    });
    while (left > 0) {
      if (ipfn >= maxPfn) return fault(FAULT_BEYOND_MGAW);
      if (!pt.lookup(ipfn) || (pt.hitProt & need) === 0)
        return fault(write ? FAULT_PTE_WRITE : FAULT_PTE_READ);
      const pagesLeft = pt.hitBase + pt.hitPages - ipfn;
      const n = Math.min(left, pagesLeft * VTD_PAGE_SIZE - off);
      const phys = pt.hitPhys + (ipfn - pt.hitBase) * VTD_PAGE_SIZE + off;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.phys + last.len === phys) last.len += n;
      else runs.push({ phys, len: n });
      left -= n;
      const consumed = off + n;
      ipfn += Math.floor(consumed / VTD_PAGE_SIZE);
      off = consumed % VTD_PAGE_SIZE;
      first = false;
    }
    return undefined;
  }
}
