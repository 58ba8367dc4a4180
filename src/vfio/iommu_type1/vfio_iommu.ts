import type { IommuGroup, X86Domain } from '../../iommu/index.ts';
import { type Kernel, type MmStruct, Mutex, type Task } from '../../kernel/index.ts';
import { createDmaTree, type DmaTree } from './dma_tree.ts';

/*
 * Which ordered structure holds a kernel's dma_list: the B+tree unless a
 * benchmark or test asks for another (the naive sorted array, to compare).
 */
const treeFactories = new WeakMap<Kernel, () => DmaTree>();

/** containers opened from now on in this kernel keep their mappings in factory() (undefined: the default) */
export function useDmaTree(kernel: Kernel, factory: (() => DmaTree) | undefined): void {
  if (factory === undefined) treeFactories.delete(kernel);
  else treeFactories.set(kernel, factory);
}

import { type Type1Params, type1Params } from './params.ts';
import type { Type1Profile } from './profile.ts';

/*
 * The state of one type1 container (struct vfio_iommu) and its domains
 * (struct vfio_domain). Mappings (struct vfio_dma) live in the DmaTree as
 * compact entries; what the kernel keeps per vfio_dma beyond iova, size,
 * vaddr and prot -- the task and mm that mapped it (for locked_vm), the
 * CAP_IPC_LOCK it had, and how many pages it charged -- is packed into
 * the entry's numeric handle: an index into a small table of owners (one
 * per mapping process, shared by all its mappings) plus the charged page
 * count times OWNER_SPAN. The physical pages a mapping pinned are not
 * recorded at all: as in the kernel, the IOMMU page table is the record,
 * and unmapping reads them back with iova_to_phys.
 */
export const OWNER_SPAN = 0x10_0000;

/** who mapped: dma->task, dma->mm (mmgrab'd: the struct outlives the process), dma->lock_cap */
export interface DmaOwner {
  readonly id: number;
  readonly task: Task;
  readonly mm: MmStruct;
  readonly lockCap: boolean;
  refs: number;
}

/** struct vfio_domain */
export class VfioDomain {
  readonly group_list: IommuGroup[] = [];
  /** 4.1: IOMMU_CACHE when the bus can enforce coherency, or 0 */
  prot = 0;
  /** 6.x: the domain forces snooping */
  enforce_cache_coherency = false;
  /** fine-grained superpages: VT-d's are coarse, so never */
  readonly fgsp = false;
  constructor(readonly domain: X86Domain) {}
}

/** struct vfio_iova: a valid IOVA range, end inclusive (and as numbers, for the MAP_DMA check) */
export class VfioIova {
  private s: bigint;
  private e: bigint;
  /** start and end as numbers (inexact past 2^53, where the bigint check takes over) */
  startN: number;
  endN: number;
  constructor(start: bigint, end: bigint) {
    this.s = start;
    this.e = end;
    this.startN = Number(start);
    this.endN = Number(end);
  }
  get start(): bigint {
    return this.s;
  }
  set start(v: bigint) {
    this.s = v;
    this.startN = Number(v);
  }
  get end(): bigint {
    return this.e;
  }
  set end(v: bigint) {
    this.e = v;
    this.endN = Number(v);
  }
}

export class VfioIommu {
  /** list_first_entry is [0]: list_add puts new domains at the head */
  readonly domain_list: VfioDomain[] = [];
  readonly lock = new Mutex('iommu->lock');
  readonly dma_list: DmaTree;
  v2 = false;
  nesting = false;
  dma_avail = 0;
  vaddr_invalid_count = 0;
  /** 6.x's cached bitmap (4.1 computes it from the domains each time) */
  pgsize_bitmap = 0xffff_ffff_ffff_f000n;
  /** log2 of the smallest page size: what every alignment check masks with */
  pgshift = 12;
  iova_list: VfioIova[] = [];
  dirty_page_tracking = false;
  num_non_pinned_groups = 0;
  readonly owners: (DmaOwner | undefined)[] = [];
  private lastOwner: DmaOwner | undefined;
  /** the module parameters (live: a change shows at once) */
  readonly params: Type1Params;
  /* results of the last pin (vfio_pin_pages' *pfn_base and the reserved flag) */
  pinPhys = 0;
  pinRsvd = false;

  constructor(
    readonly kernel: Kernel,
    readonly profile: Type1Profile,
  ) {
    this.dma_list = (treeFactories.get(kernel) ?? createDmaTree)();
    this.params = type1Params(kernel);
  }

  /** the owner record of (task, mm, lockCap), taking a reference */
  ownerGet(task: Task, mm: MmStruct, lockCap: boolean): DmaOwner {
    let o = this.lastOwner;
    if (o === undefined || o.task !== task || o.mm !== mm || o.lockCap !== lockCap) {
      o = this.owners.find((x) => x !== undefined && x.task === task && x.mm === mm && x.lockCap === lockCap);
      if (o === undefined) {
        let id = this.owners.indexOf(undefined);
        if (id < 0) id = this.owners.length;
        if (id >= OWNER_SPAN) throw new Error('vfio_iommu: too many mapping processes');
        o = { id, task, mm, lockCap, refs: 0 };
        this.owners[id] = o;
      }
      this.lastOwner = o;
    }
    o.refs++;
    return o;
  }

  ownerPut(o: DmaOwner): void {
    if (--o.refs === 0) {
      this.owners[o.id] = undefined;
      if (this.lastOwner === o) this.lastOwner = undefined;
    }
  }

  ownerOf(handle: number): DmaOwner {
    const o = this.owners[handle % OWNER_SPAN];
    if (o === undefined) throw new Error(`vfio_iommu: mapping with a dead owner ${handle}`);
    return o;
  }

  /** debugfs hook (src/debugfs/json.ts): domains and a summary of the mappings for snapshots and graphs */
  debugSnapshot(): object {
    const sample: { iova: bigint; size: bigint; vaddr: bigint; prot: number }[] = [];
    let bytes = 0n;
    this.dma_list.forEach((e) => {
      bytes += e.size;
      if (sample.length < 4) sample.push({ iova: e.iova, size: e.size, vaddr: e.vaddr, prot: e.prot });
    });
    return {
      type: this.v2 ? 'vfio_iommu (type1v2)' : 'vfio_iommu (type1)',
      domains: this.domain_list.map((d) => ({ groups: d.group_list.map((g) => g.id), prot: d.prot })),
      mappings: this.dma_list.count,
      mappedBytes: bytes,
      dma_avail: this.dma_avail,
      dma_list: sample,
    };
  }
}

/** pages a mapping charged to locked_vm, from its handle */
export function handleLocked(handle: number): number {
  return Math.floor(handle / OWNER_SPAN);
}

export function makeHandle(owner: DmaOwner, locked: number): number {
  return owner.id + locked * OWNER_SPAN;
}
