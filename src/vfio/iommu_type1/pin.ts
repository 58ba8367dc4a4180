import { IOMMU_WRITE } from '../../iommu/index.ts';
import { capable, current, type MmStruct, pr_warn, VM_PFNMAP, VM_WRITE, WARN } from '../../kernel/index.ts';
import { CAP_IPC_LOCK, EFAULT, ENODEV, ENOMEM, ESRCH, RLIMIT_MEMLOCK } from '../../uapi/index.ts';
import type { Type1Params } from './params.ts';
import type { DmaOwner, VfioIommu } from './vfio_iommu.ts';

/*
 * Pinning user pages for DMA and the locked_vm accounting around it
 * (vfio_pin_pages / vfio_pin_pages_remote, put_pfn, vfio_lock_acct).
 * A chunk is a run of pages that are physically contiguous and all RAM or
 * all device memory (VM_PFNMAP, mapped without a page reference and not
 * charged): each chunk becomes one iommu_map.
 */
const PAGE_SHIFT = 12;
const PAGE_SIZE = 4096;

/** is_invalid_reserved_pfn: no struct page behind it (device memory) */
export function isInvalidReservedPfn(iommu: VfioIommu, phys: number): boolean {
  return iommu.kernel.phys.lookup(phys) === undefined;
}

/**
 * put_pfn over npages contiguous pages from phys: drops the pin of each
 * RAM page (marking it dirty when the device could write it); returns
 * how many were RAM, the pages to uncharge.
 */
export function putPfns(iommu: VfioIommu, phys: number, npages: number, prot: number): number {
  const k = iommu.kernel;
  const dirty = (prot & IOMMU_WRITE) !== 0;
  let done = 0;
  let unlocked = 0;
  while (done < npages) {
    const at = phys + done * PAGE_SIZE;
    const o = k.phys.lookup(at);
    if (o === undefined) {
      done++;
      continue;
    }
    const first = (at - o.phys) / PAGE_SIZE;
    const n = Math.min(npages - done, o.npages - first);
    for (let i = 0; i < n; i++) o.unpin(first + i, dirty);
    k.phys.maybeFree(o);
    done += n;
    unlocked += n;
  }
  return unlocked;
}

/**
 * vaddr_get_pfn: the physical address of the page at vaddr, pinned when it
 * is RAM; VM_PFNMAP device memory is looked up, not pinned. Sets
 * iommu.pinRsvd. -EFAULT when nothing usable is mapped there.
 */
function vaddrGetPfn(iommu: VfioIommu, mm: MmStruct, vaddr: number, write: boolean): number {
  const r = mm.pinPage(vaddr, write);
  if (r >= 0) {
    iommu.pinRsvd = false;
    return r;
  }
  const vma = mm.findVma(vaddr);
  if (vma === undefined || !(vma.vm_flags & VM_PFNMAP)) return -EFAULT;
  if (iommu.profile.pfnmapWriteCheck && write && !(vma.vm_flags & VM_WRITE)) return -EFAULT;
  const phys = mm.followPfn(vaddr);
  if (phys < 0 || !isInvalidReservedPfn(iommu, phys)) return -EFAULT;
  iommu.pinRsvd = true;
  return phys;
}

function memlockWarn(iommu: VfioIommu, limit: number): void {
  /* %ld of limit << PAGE_SHIFT */
  const bytes = BigInt.asIntN(64, BigInt(limit) << BigInt(PAGE_SHIFT));
  pr_warn(`${iommu.profile.pinFnName}: RLIMIT_MEMLOCK (${bytes}) exceeded`);
}

/** rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT for a task (RLIM_INFINITY stays out of reach) */
export function memlockPages(task: { rlimit(r: number): { cur: bigint } }): number {
  return Math.floor(Number(task.rlimit(RLIMIT_MEMLOCK).cur) / PAGE_SIZE);
}

/**
 * Pin a chunk of up to npage pages from vaddr. Returns the pages pinned
 * (their first physical address in iommu.pinPhys) or -errno. RAM pages
 * pinned here are charged to locked_vm before returning.
 */
export function vfioPinPages(
  iommu: VfioIommu,
  owner: DmaOwner,
  vaddr: number,
  npage: number,
  prot: number,
  limitArg: number,
): number {
  const prof = iommu.profile;
  const task = current();
  const mm = task.mm;
  if (mm === null) return -ENODEV;
  const params: Type1Params = iommu.params;
  const lockCap = prof.lockCapAtMap ? owner.lockCap : capable(task, CAP_IPC_LOCK);
  /* the limit only matters to a task without CAP_IPC_LOCK: read it then */
  const limit = lockCap ? 0 : limitArg >= 0 ? limitArg : memlockPages(task);
  const write = (prot & IOMMU_WRITE) !== 0;
  const base = vaddrGetPfn(iommu, mm, vaddr, write);
  if (base < 0) return base;
  const rsvd = iommu.pinRsvd;
  iommu.pinPhys = base;
  if (!rsvd && !lockCap && mm.locked_vm + 1 > limit) {
    putPfns(iommu, base, 1, prot);
    memlockWarn(iommu, limit);
    return -ENOMEM;
  }
  let i = 1;
  if (!params.disable_hugepages) {
    /* Lock all the consecutive pages from pfn_base */
    for (let va = vaddr + PAGE_SIZE; i < npage; i++, va += PAGE_SIZE) {
      const pfn = vaddrGetPfn(iommu, mm, va, write);
      if (pfn < 0) break;
      if (pfn !== base + i * PAGE_SIZE || rsvd !== iommu.pinRsvd) {
        if (!iommu.pinRsvd) putPfns(iommu, pfn, 1, prot);
        break;
      }
      if (!rsvd && !lockCap && mm.locked_vm + i + 1 > limit) {
        putPfns(iommu, pfn, 1, prot);
        memlockWarn(iommu, limit);
        if (prof.memlockFailsChunk) {
          putPfns(iommu, base, i, prot);
          return -ENOMEM;
        }
        break;
      }
    }
  }
  iommu.pinRsvd = rsvd;
  if (!rsvd) {
    const r = lockAcct(iommu, owner, i, false);
    if (r < 0) {
      putPfns(iommu, base, i, prot);
      return r;
    }
  }
  return i;
}

/**
 * vfio_lock_acct: charge (npage > 0) or uncharge locked_vm. 4.1 charges
 * current->mm and skips when the task has no mm (exit); 6.x charges the
 * mm that mapped, checks the limit of the task that mapped unless it had
 * CAP_IPC_LOCK, and skips (-ESRCH) an mm whose process is gone.
 */
export function lockAcct(iommu: VfioIommu, owner: DmaOwner, npage: number, async: boolean): number {
  if (npage === 0) return 0;
  if (!iommu.profile.accountToDmaMm) {
    const mm = current().mm;
    if (mm === null) return 0; /* process exited */
    mm.locked_vm += npage;
    return 0;
  }
  const mm = owner.mm;
  if (async && mm.dead) return -ESRCH; /* process exited */
  /* __account_locked_vm */
  if (npage > 0) {
    if (!owner.lockCap && mm.locked_vm + npage > memlockPages(owner.task)) return -ENOMEM;
    mm.locked_vm += npage;
  } else {
    const pages = -npage;
    WARN(pages > mm.locked_vm, '__account_locked_vm: pages > locked_vm');
    mm.locked_vm -= Math.min(pages, mm.locked_vm);
  }
  return 0;
}

/** vfio_unpin_pages(_remote): drop a chunk's pins; uncharge them when asked */
export function unpinPages(
  iommu: VfioIommu,
  owner: DmaOwner,
  phys: number,
  npage: number,
  prot: number,
): number {
  const unlocked = putPfns(iommu, phys, npage, prot);
  lockAcct(iommu, owner, -unlocked, true);
  return unlocked;
}
