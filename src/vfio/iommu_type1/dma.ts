import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, iommuMap, iommuUnmap } from '../../iommu/index.ts';
import { capable, current, fail, WARN } from '../../kernel/index.ts';
import {
  CAP_IPC_LOCK,
  EEXIST,
  EINVAL,
  ENODEV,
  ENOENT,
  ENOSPC,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
} from '../../uapi/index.ts';
import type { DmaEntry } from './dma_tree.ts';
import { lockAcct, putPfns, unpinPages, vfioPinPages } from './pin.ts';
import { type DmaOwner, handleLocked, makeHandle, type VfioIommu } from './vfio_iommu.ts';

/*
 * Creating and destroying mappings: vfio_dma_do_map, vfio_pin_map_dma,
 * vfio_iommu_map, vfio_unmap_unpin, vfio_remove_dma. Addresses arrive as
 * u64 (bigint); below 2^53 they are also handled as plain numbers, and
 * the page tables take IOVA page numbers.
 */
const PAGE_SIZE = 4096;
/** DIRTY_BITMAP_PAGES_MAX: a vfio_dma bitmap holds at most INT_MAX pages */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fff_ffff;

const TWO53 = 2 ** 53;

/** the page number of a page-aligned IOVA (exact: 2^64 bytes are 2^52 pages) */
export function ipfnOf(iova: bigint): number {
  const n = Number(iova);
  return n < TWO53 ? n / PAGE_SIZE : Number(iova >> 12n);
}

/** the pages of a page-aligned size */
export function pagesOf(size: bigint): number {
  const n = Number(size);
  return n < TWO53 ? n / PAGE_SIZE : Number(size >> 12n);
}

/** vfio_iommu_iova_dma_valid: [start, end] inside one valid range (or no ranges at all) */
export function iovaDmaValid(iommu: VfioIommu, start: bigint, end: bigint): boolean {
  const list = iommu.iova_list;
  for (let i = 0; i < list.length; i++) {
    const n = list[i]!;
    if (start >= n.start && end <= n.end) return true;
  }
  return list.length === 0;
}

/* iovaDmaValid on numbers when both ends are below 2^53 */
function iovaDmaValidFast(iommu: VfioIommu, map: MapRequest): boolean {
  if (map.iovaN < 0 || map.sizeN < 0 || map.iovaN + map.sizeN >= TWO53)
    return iovaDmaValid(iommu, map.iova, map.iova + (map.size - 1n));
  const start = map.iovaN;
  const end = map.iovaN + map.sizeN - 1;
  const list = iommu.iova_list;
  for (let i = 0; i < list.length; i++) {
    const n = list[i]!;
    if (start >= n.startN && end <= n.endN) return true;
  }
  return list.length === 0;
}

/** vfio_iommu_map: map a pinned chunk into every domain, unwinding on failure */
export function vfioIommuMap(
  iommu: VfioIommu,
  ipfn: number,
  phys: number,
  npage: number,
  prot: number,
): number {
  const domains = iommu.domain_list;
  const perDomain = iommu.profile.perDomainCoherency;
  for (let i = 0; i < domains.length; i++) {
    const d = domains[i]!;
    const ret = iommuMap(d.domain, ipfn, phys, npage, prot | (perDomain ? IOMMU_CACHE : d.prot));
    if (ret !== 0) {
      for (let j = i - 1; j >= 0; j--) iommuUnmap(domains[j]!.domain, ipfn, npage);
      return ret;
    }
  }
  return 0;
}

/**
 * vfio_unmap_unpin: take [ipfn, ipfn+npages) out of every domain and drop
 * the pins, finding the physical pages through the first domain (the
 * others are unmapped first so no translation outlives its page). Returns
 * the RAM pages unpinned, after uncharging them when `account`.
 */
export function vfioUnmapUnpin(
  iommu: VfioIommu,
  owner: DmaOwner,
  ipfn: number,
  npages: number,
  prot: number,
  account: boolean,
): number {
  if (npages === 0) return 0;
  const domains = iommu.domain_list;
  const domain = domains[0];
  if (domain === undefined) return 0;
  for (let i = 1; i < domains.length; i++) iommuUnmap(domains[i]!.domain, ipfn, npages);
  const pt = domain.domain.pt;
  const end = ipfn + npages;
  let unlocked = 0;
  for (let p = ipfn; p < end; ) {
    /* the largest physically contiguous chunk: fewer unmaps */
    const len = domain.fgsp ? Math.min(1, pt.contiguousPages(p, 1)) : pt.contiguousPages(p, end - p);
    if (len === 0) {
      WARN(true, `vfio_unmap_unpin: WARN_ON(!phys) at IOVA page 0x${p.toString(16)}`);
      p++;
      continue;
    }
    const phys = pt.runPhys;
    const unmapped = iommuUnmap(domain.domain, p, len);
    if (unmapped === 0) {
      WARN(true, 'vfio_unmap_unpin: WARN_ON(!unmapped)');
      break;
    }
    unlocked += putPfns(iommu, phys, unmapped, prot);
    p += unmapped;
  }
  if (account) lockAcct(iommu, owner, -unlocked, true);
  return unlocked;
}

/** vfio_remove_dma: unmap, unpin, uncharge and forget one mapping */
export function vfioRemoveDma(iommu: VfioIommu, dma: DmaEntry): void {
  const owner = iommu.ownerOf(dma.handle);
  vfioUnmapUnpin(iommu, owner, ipfnOf(dma.iova), pagesOf(dma.size), dma.prot, true);
  iommu.dma_list.remove(dma.iova);
  iommu.ownerPut(owner);
  if (dma.vaddrInvalid) iommu.vaddr_invalid_count--;
  iommu.dma_avail++;
  iommu.kernel.objects.free('vfio_dma');
}

/**
 * vfio_pin_map_dma: pin and map [vaddr, vaddr+size) at iova chunk by
 * chunk. Returns the pages charged to locked_vm, or -errno after undoing
 * everything done (unmapped, unpinned, uncharged).
 */
function vfioPinMapDma(
  iommu: VfioIommu,
  owner: DmaOwner,
  ipfn: number,
  vaddr: number,
  npages: number,
  prot: number,
): number {
  /* rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT, read when first needed (-1: not yet) */
  const limit = -1;
  let mapped = 0;
  let charged = 0;
  let ret = 0;
  while (mapped < npages) {
    /* Pin a contiguous chunk of memory */
    const npage = vfioPinPages(iommu, owner, vaddr + mapped * PAGE_SIZE, npages - mapped, prot, limit);
    if (npage <= 0) {
      if (npage === 0) WARN(true, 'vfio_pin_map_dma: WARN_ON(!npage)');
      ret = npage;
      break;
    }
    const phys = iommu.pinPhys;
    const rsvd = iommu.pinRsvd;
    /* Map it! */
    ret = vfioIommuMap(iommu, ipfn + mapped, phys, npage, prot);
    if (ret !== 0) {
      unpinPages(iommu, owner, phys, npage, prot);
      break;
    }
    if (!rsvd) charged += npage;
    mapped += npage;
  }
  if (ret !== 0) {
    /* vfio_remove_dma of the part mapped so far */
    vfioUnmapUnpin(iommu, owner, ipfn, mapped, prot, true);
    return ret;
  }
  return charged;
}

export interface MapRequest {
  flags: number;
  vaddr: bigint;
  iova: bigint;
  size: bigint;
  /** the same as numbers when below 2^53, else -1 */
  vaddrN: number;
  iovaN: number;
  sizeN: number;
  /** OR of the low 32 bits of vaddr, iova and size: alignment is decided there */
  lowBits: number;
  /** iova + size or vaddr + size may exceed 2^64 (a bigint check is needed) */
  mayWrap: boolean;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

function misaligned(iommu: VfioIommu, map: MapRequest): boolean {
  const shift = iommu.pgshift;
  if (shift < 32) return (map.lowBits & ((1 << shift) - 1)) !== 0;
  const mask = (1n << BigInt(shift)) - 1n;
  return ((map.size | map.iova | map.vaddr) & mask) !== 0n;
}

/** vfio_dma_do_map */
export function vfioDmaDoMap(iommu: VfioIommu, map: MapRequest): number {
  const prof = iommu.profile;
  const { vaddr, iova, size } = map;
  const setVaddr = prof.vaddrAndUnmapAll && (map.flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  let prot = 0;
  /* READ/WRITE from device perspective */
  if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  if (map.flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
  if (prof.vaddrAndUnmapAll) {
    if ((prot !== 0 && setVaddr) || (prot === 0 && !setVaddr))
      return fail(EINVAL, setVaddr ? 'MAP_DMA: VADDR with READ/WRITE' : 'MAP_DMA: neither READ nor WRITE');
    if (size === 0n || misaligned(iommu, map))
      return fail(EINVAL, size === 0n ? 'MAP_DMA: size 0' : 'MAP_DMA: iova, vaddr or size not page aligned');
  } else if (prot === 0 || size === 0n || misaligned(iommu, map)) {
    return fail(
      EINVAL,
      prot === 0
        ? 'MAP_DMA: neither READ nor WRITE'
        : size === 0n
          ? 'MAP_DMA: size 0'
          : 'MAP_DMA: iova, vaddr or size not page aligned',
    );
  }
  /* Don't allow IOVA or virtual address wrap */
  if (map.mayWrap && (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX))
    return fail(EINVAL, 'MAP_DMA: iova or vaddr + size wraps around');
  iommu.lock.lock();
  try {
    const tree = iommu.dma_list;
    if (setVaddr) return vaddrUpdate(iommu, iova, size, vaddr);
    if (tree.findOverlap(iova, size) !== undefined)
      return fail(EEXIST, 'MAP_DMA: the range overlaps an existing mapping');
    if (prof.dmaEntryLimit && iommu.dma_avail === 0)
      return fail(ENOSPC, 'MAP_DMA: dma_entry_limit reached (no DMA_AVAIL left)');
    if (prof.iovaRanges && !iovaDmaValidFast(iommu, map))
      return fail(EINVAL, 'MAP_DMA: the range is not inside a valid IOVA range');
    const task = current();
    const mm = task.mm;
    /* This code path is only user initiated */
    if (mm === null) return fail(ENODEV, 'MAP_DMA: the task has no mm');
    const owner = iommu.ownerGet(task, mm, capable(task, CAP_IPC_LOCK));
    iommu.dma_avail--;
    const npages = map.sizeN >= 0 ? map.sizeN / PAGE_SIZE : pagesOf(size);
    let charged = 0;
    if (iommu.domain_list.length > 0) {
      const ipfn = map.iovaN >= 0 ? map.iovaN / PAGE_SIZE : ipfnOf(iova);
      charged = vfioPinMapDma(iommu, owner, ipfn, map.vaddrN >= 0 ? map.vaddrN : Number(vaddr), npages, prot);
      if (charged >= 0 && iommu.dirty_page_tracking && npages > DIRTY_BITMAP_PAGES_MAX) {
        vfioUnmapUnpin(iommu, owner, ipfnOf(iova), npages, prot, true);
        charged = fail(EINVAL, 'MAP_DMA: too large for a dirty bitmap');
      }
      if (charged < 0) {
        iommu.dma_avail++;
        iommu.ownerPut(owner);
        return charged;
      }
    }
    tree.insert({ iova, size, vaddr, prot, handle: makeHandle(owner, charged), vaddrInvalid: false });
    iommu.kernel.objects.alloc('vfio_dma');
    return 0;
  } finally {
    iommu.lock.unlock();
  }
}

/**
 * VFIO_DMA_MAP_FLAG_VADDR: give an invalidated mapping its new vaddr,
 * moving its locked_vm charge to the new process when another mm asks
 * (vfio_change_dma_owner).
 */
function vaddrUpdate(iommu: VfioIommu, iova: bigint, size: bigint, vaddr: bigint): number {
  const dma = iommu.dma_list.findOverlap(iova, size);
  if (dma === undefined) return fail(ENOENT, 'MAP_DMA VADDR: no mapping at iova');
  if (!dma.vaddrInvalid || dma.iova !== iova || dma.size !== size)
    return fail(EINVAL, 'MAP_DMA VADDR: the mapping is not vaddr-invalid or its iova/size differ');
  const owner = iommu.ownerOf(dma.handle);
  const task = current();
  const mm = task.mm;
  let newOwner = owner;
  if (mm !== null && mm !== owner.mm) {
    const npage = handleLocked(dma.handle);
    const lockCap = capable(task, CAP_IPC_LOCK);
    newOwner = iommu.ownerGet(task, mm, lockCap);
    const r = lockAcct(iommu, newOwner, npage, false);
    if (r !== 0) {
      iommu.ownerPut(newOwner);
      return r;
    }
    if (!owner.mm.dead) lockAcct(iommu, owner, -npage, false);
    iommu.ownerPut(owner);
  }
  iommu.dma_list.update(iova, {
    vaddr,
    vaddrInvalid: false,
    handle: makeHandle(newOwner, handleLocked(dma.handle)),
  });
  iommu.vaddr_invalid_count--;
  return 0;
}

/** vfio_iommu_unmap_unpin_all */
export function vfioIommuUnmapUnpinAll(iommu: VfioIommu): void {
  const tree = iommu.dma_list;
  for (let e = tree.firstAtOrAfter(0n); e !== undefined; e = tree.firstAtOrAfter(0n)) vfioRemoveDma(iommu, e);
}
