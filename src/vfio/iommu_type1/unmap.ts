import { fail } from '../../kernel/index.ts';
import {
  EINVAL,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
} from '../../uapi/index.ts';
import { updateUserBitmap } from './dirty.ts';
import { vfioRemoveDma } from './dma.ts';
import type { VfioIommu } from './vfio_iommu.ts';

/*
 * vfio_dma_do_unmap. Mappings are only ever removed whole.
 *
 * v1 (VFIO_TYPE1_IOMMU): the walk stops at the first mapping that starts
 * before the requested iova, so a request starting inside a mapping
 * unmaps nothing (size 0, success), and a request covering a mapping's
 * first byte removes all of it even past the requested end.
 * v2: a request that bisects a mapping is -EINVAL; otherwise every mapping
 * inside is removed.
 *
 * The walk starts at the lowest overlapping mapping, as 6.x's
 * vfio_find_dma_first_node does. (4.1 restarted vfio_find_dma from the
 * rb-tree root each time, which returns whichever overlapping node sits
 * highest in the tree; for v1 requests that both start inside one
 * mapping and cover others, what 4.1 removed depended on the tree's
 * shape. Here they remove nothing, as in 6.x.)
 */
const U64_LIMIT = 1n << 64n;
const U64_MAX = U64_LIMIT - 1n;

export interface UnmapRequest {
  flags: number;
  iova: bigint;
  /** in: bytes to unmap; out: bytes unmapped */
  size: bigint;
  /** the low 32 bits of iova and size: alignment is decided there */
  iovaLo: number;
  sizeLo: number;
  /** GET_DIRTY_BITMAP: struct vfio_bitmap */
  bitmapPgsize: bigint;
  bitmapData: bigint;
}

function misaligned(lo: number, v: bigint, pgshift: number): boolean {
  if (pgshift < 32) return (lo & ((1 << pgshift) - 1)) !== 0;
  return (v & ((1n << BigInt(pgshift)) - 1n)) !== 0n;
}

export function vfioDmaDoUnmap(iommu: VfioIommu, unmap: UnmapRequest): number {
  const prof = iommu.profile;
  const pgshift = iommu.pgshift;
  const iova = unmap.iova;
  let size = unmap.size;
  const unmapAll = prof.vaddrAndUnmapAll && (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  const invalidateVaddr = prof.vaddrAndUnmapAll && (unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
  const getDirty = prof.dirtyPages && (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
  let unmapped = 0n;
  let ret = -EINVAL;
  iommu.lock.lock();
  try {
    if (misaligned(unmap.iovaLo, iova, pgshift)) {
      fail(EINVAL, 'UNMAP_DMA: iova not page aligned');
      return ret;
    }
    if (unmapAll) {
      if (iova !== 0n || size !== 0n) {
        fail(EINVAL, 'UNMAP_DMA: ALL with a non-zero iova or size');
        return ret;
      }
      size = U64_MAX;
    } else if (size === 0n || misaligned(unmap.sizeLo, size, pgshift)) {
      fail(EINVAL, size === 0n ? 'UNMAP_DMA: size 0' : 'UNMAP_DMA: size not page aligned');
      return ret;
    }
    const end = iova + size;
    const wraps = end > U64_LIMIT;
    if (!unmapAll && wraps && prof.unmapWrapCheck) {
      fail(EINVAL, 'UNMAP_DMA: iova + size wraps around');
      return ret;
    }
    /* When dirty tracking is enabled, allow only min supported pgsize */
    if (getDirty && (!iommu.dirty_page_tracking || unmap.bitmapPgsize !== 1n << BigInt(pgshift))) {
      fail(EINVAL, 'UNMAP_DMA: GET_DIRTY_BITMAP without dirty tracking or with another page size');
      return ret;
    }
    if (wraps) {
      /* 4.1 takes a wrapping request's end modulo 2^64: it overlaps nothing */
      if (iommu.v2 && !unmapAll && !wrappedBisectOk(iommu, iova, size)) return ret;
      ret = 0;
      return ret;
    }
    const tree = iommu.dma_list;
    const first = tree.findOverlap(iova, size);
    if (iommu.v2 && !unmapAll && first !== undefined) {
      /* a mapping containing iova but starting below it is the lowest overlapping one */
      if (first.iova < iova) {
        fail(EINVAL, 'UNMAP_DMA (v2): the range starts inside a mapping');
        return ret;
      }
      const firstEnd = first.iova + first.size;
      const last = firstEnd >= end ? first : tree.findContaining(end - 1n);
      if (last !== undefined && last.iova < end - 1n && last.iova + last.size !== end) {
        fail(EINVAL, 'UNMAP_DMA (v2): the range ends inside a mapping');
        return ret;
      }
    }
    ret = 0;
    const marked: bigint[] = [];
    for (let dma = first; dma !== undefined; ) {
      if (dma.iova >= end) break;
      if (!iommu.v2 && iova > dma.iova) break;
      const dmaEnd = dma.iova + dma.size;
      const next = dmaEnd < end ? tree.firstAtOrAfter(dmaEnd) : undefined;
      if (invalidateVaddr) {
        if (dma.vaddrInvalid) {
          for (const at of marked) {
            tree.update(at, { vaddrInvalid: false });
            iommu.vaddr_invalid_count--;
          }
          fail(EINVAL, 'UNMAP_DMA VADDR: a mapping in the range already has an invalid vaddr');
          ret = -EINVAL;
          unmapped = 0n;
          break;
        }
        tree.update(dma.iova, { vaddrInvalid: true });
        iommu.vaddr_invalid_count++;
        marked.push(dma.iova);
        unmapped += dma.size;
        dma = next;
        continue;
      }
      if (getDirty) {
        ret = updateUserBitmap(iommu, unmap.bitmapData, dma, iova, pgshift);
        if (ret !== 0) break;
      }
      unmapped += dma.size;
      vfioRemoveDma(iommu, dma);
      dma = next;
    }
    return ret;
  } finally {
    iommu.lock.unlock();
    /* Report how much was unmapped */
    unmap.size = unmapped;
  }
}

/** 4.1's v2 checks for a wrapping request, with its end taken modulo 2^64 */
function wrappedBisectOk(iommu: VfioIommu, iova: bigint, size: bigint): boolean {
  const tree = iommu.dma_list;
  let dma = tree.findContaining(iova);
  if (dma !== undefined && dma.iova !== iova) {
    fail(EINVAL, 'UNMAP_DMA (v2): the range starts inside a mapping');
    return false;
  }
  const end = (iova + size) & U64_MAX;
  const last = (iova + size - 1n) & U64_MAX;
  dma = tree.findContaining(last);
  if (dma !== undefined && dma.iova < last && ((dma.iova + dma.size) & U64_MAX) !== end) {
    fail(EINVAL, 'UNMAP_DMA (v2): the range ends inside a mapping');
    return false;
  }
  return true;
}
