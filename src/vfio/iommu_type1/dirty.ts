import { copyFromUser, copyToUser, uarg } from '../../kernel/index.ts';
import { EFAULT, EINVAL } from '../../uapi/index.ts';
import type { DmaEntry } from './dma_tree.ts';
import type { VfioIommu } from './vfio_iommu.ts';

/*
 * Dirty page tracking (5.8+): the bitmaps VFIO_IOMMU_DIRTY_PAGES and
 * UNMAP_DMA with GET_DIRTY_BITMAP copy out. With only IOMMU-backed groups
 * (no mdev to report precise pins) every group is "non-pinned" and the
 * kernel reports every page of every mapping dirty, each time it is
 * asked: so no per-mapping bitmap has to be kept, only written.
 */

/** DIRTY_BITMAP_BYTES(n): bytes of a bitmap of n bits, in whole u64s */
export function dirtyBitmapBytes(nbits: bigint): bigint {
  return ((nbits + 63n) / 64n) * 8n;
}

/** DIRTY_BITMAP_SIZE_MAX: DIRTY_BITMAP_BYTES(INT_MAX) */
export const DIRTY_BITMAP_SIZE_MAX = dirtyBitmapBytes(0x7fff_ffffn);

/** verify_bitmap_size */
export function verifyBitmapSize(npages: bigint, bitmapSize: bigint): number {
  if (
    npages === 0n ||
    bitmapSize === 0n ||
    bitmapSize > DIRTY_BITMAP_SIZE_MAX ||
    bitmapSize < dirtyBitmapBytes(npages)
  )
    return -EINVAL;
  return 0;
}

/** __ffs for a page size: the shift of its lowest set bit (0 for 0) */
export function ffs64(v: bigint): number {
  if (v === 0n) return 0;
  let n = 0;
  while (((v >> BigInt(n)) & 1n) === 0n) n++;
  return n;
}

/** access_ok(addr, size): inside x86_64's user address space */
export function accessOk(addr: bigint, size: bigint): boolean {
  const limit = 0x7fff_ffff_f000n;
  return size <= limit && addr <= limit - size;
}

/**
 * update_user_bitmap: write dma's bits into the user bitmap at `bitmap`
 * whose bit 0 is base_iova. The first u64 is ORed with what the user has
 * there when the mapping does not start on a u64 boundary; whole u64s
 * are written, so bits past the mapping in its last word read back 0.
 */
export function updateUserBitmap(
  iommu: VfioIommu,
  bitmap: bigint,
  dma: DmaEntry,
  baseIova: bigint,
  pgshift: number,
): number {
  const shiftN = BigInt(pgshift);
  const nbits = Number(dma.size >> shiftN);
  const bitOffset = Number((dma.iova - baseIova) >> shiftN);
  const copyOffset = Math.floor(bitOffset / 64);
  const shift = bitOffset % 64;
  const words = Math.ceil((nbits + shift) / 64);
  const buf = new Uint8Array(words * 8);
  /* mark all pages dirty: IOMMU-backed groups cannot report what they touch */
  if (iommu.num_non_pinned_groups > 0) setBits(buf, shift, nbits);
  const at = uarg(bitmap) + copyOffset * 8;
  if (shift !== 0) {
    const leftover = new Uint8Array(8);
    if (copyFromUser(leftover, at, 8) !== 0) return -EFAULT;
    for (let i = 0; i < 8; i++) buf[i] = (buf[i] ?? 0) | (leftover[i] ?? 0);
  }
  if (copyToUser(at, buf) !== 0) return -EFAULT;
  return 0;
}

function setBits(buf: Uint8Array, start: number, n: number): void {
  let i = start;
  const end = start + n;
  while (i < end && i % 8 !== 0) {
    buf[i >>> 3] = (buf[i >>> 3] ?? 0) | (1 << (i & 7));
    i++;
  }
  const fullEnd = end - (end % 8);
  if (i < fullEnd) {
    buf.fill(0xff, i >>> 3, fullEnd >>> 3);
    i = fullEnd;
  }
  while (i < end) {
    buf[i >>> 3] = (buf[i >>> 3] ?? 0) | (1 << (i & 7));
    i++;
  }
}

/** vfio_iova_dirty_bitmap: the bitmap of [iova, iova+size), which must not bisect a mapping */
export function vfioIovaDirtyBitmap(
  iommu: VfioIommu,
  bitmap: bigint,
  iova: bigint,
  size: bigint,
  pgshift: number,
): number {
  const tree = iommu.dma_list;
  let dma = tree.findContaining(iova);
  if (dma !== undefined && dma.iova !== iova) return -EINVAL;
  const last = iova + size - 1n;
  dma = tree.findContaining(last);
  if (dma !== undefined && dma.iova < last && dma.iova + dma.size !== iova + size) return -EINVAL;
  for (
    let e = tree.firstAtOrAfter(iova);
    e !== undefined && e.iova <= last;
    e = tree.firstAtOrAfter(e.iova + e.size)
  ) {
    const ret = updateUserBitmap(iommu, bitmap, e, iova, pgshift);
    if (ret !== 0) return ret;
  }
  return 0;
}
