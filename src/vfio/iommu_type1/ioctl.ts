import { copyFromUser, copyToUser, fail, uarg } from '../../kernel/index.ts';
import {
  EACCES,
  EFAULT,
  EINVAL,
  ENOTTY,
  encodeCapChain,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  vfio_iommu_type1_info,
} from '../../uapi/index.ts';
import { vfioDomainsHaveIommuCache } from './attach.ts';
import { accessOk, DIRTY_BITMAP_SIZE_MAX, ffs64, verifyBitmapSize, vfioIovaDirtyBitmap } from './dirty.ts';
import { DIRTY_BITMAP_PAGES_MAX, vfioDmaDoMap } from './dma.ts';
import type { Type1Profile } from './profile.ts';
import { type UnmapRequest, vfioDmaDoUnmap } from './unmap.ts';
import type { VfioIommu } from './vfio_iommu.ts';

/*
 * vfio_iommu_type1_ioctl: one handler per ioctl, kernel-shaped (minsz,
 * copy_from_user, argsz and flags checks, work, copy_to_user). MAP_DMA
 * and UNMAP_DMA are the hot path: their structs are read straight out of
 * a scratch buffer (used only within one synchronous call).
 */
const scratch = new Uint8Array(64);
const sv = new DataView(scratch.buffer);
/*
 * The structs are little-endian; on a little-endian machine the typed
 * arrays read them directly, and a BigUint64Array element costs a third of
 * DataView.getBigUint64 (bigints are the expensive part of this path).
 */
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const s32 = new Uint32Array(scratch.buffer);
const s64 = new BigUint64Array(scratch.buffer);

/* the u64 at a multiple of 8 */
function u64(at: number): bigint {
  return LITTLE ? s64[at >>> 3]! : sv.getBigUint64(at, true);
}

function u32(at: number): number {
  return LITTLE ? s32[at >>> 2]! : sv.getUint32(at, true);
}

const TWO32 = 0x1_0000_0000;
const TWO21 = 0x20_0000;

/* the u64 at `at` as a number when below 2^53, else -1 */
function num(at: number): number {
  const hi = u32(at + 4);
  return hi < TWO21 ? hi * TWO32 + u32(at) : -1;
}

export function vfioIommuType1CheckExtension(
  iommu: VfioIommu | null,
  arg: bigint,
  profile: {
    vaddrAndUnmapAll: boolean;
  },
): number {
  switch (arg) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_TYPE1_NESTING_IOMMU):
      return 1;
    case BigInt(VFIO_UNMAP_ALL):
      return profile.vaddrAndUnmapAll ? 1 : 0;
    case BigInt(VFIO_UPDATE_VADDR):
      /* no mdev can be in the container, so only "is there a container" */
      return profile.vaddrAndUnmapAll && iommu !== null ? 1 : 0;
    case BigInt(VFIO_DMA_CC_IOMMU):
      if (iommu === null) return 0;
      return vfioDomainsHaveIommuCache(iommu);
    default:
      return 0;
  }
}

/** the capability chain of GET_INFO: MIGRATION, DMA_AVAIL, IOVA_RANGE, in the kernel's order */
function infoCaps(iommu: VfioIommu): Uint8Array {
  const mig = new Uint8Array(24);
  const mv = new DataView(mig.buffer);
  mv.setUint32(0, 0, true); /* flags */
  mv.setBigUint64(8, 1n << BigInt(iommu.pgshift), true); /* support minimum pgsize */
  mv.setBigUint64(16, DIRTY_BITMAP_SIZE_MAX, true);
  const avail = new Uint8Array(4);
  new DataView(avail.buffer).setUint32(0, iommu.dma_avail >>> 0, true);
  const caps = [
    { id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1, body: mig },
    { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, body: avail },
  ];
  const n = iommu.iova_list.length;
  if (n > 0) {
    const body = new Uint8Array(8 + 16 * n);
    const bv = new DataView(body.buffer);
    bv.setUint32(0, n, true);
    iommu.iova_list.forEach((r, i) => {
      bv.setBigUint64(8 + 16 * i, r.start, true);
      bv.setBigUint64(16 + 16 * i, r.end, true);
    });
    caps.push({ id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, body });
  }
  return encodeCapChain(caps, vfio_iommu_type1_info.size, true).bytes;
}

function getInfo(iommu: VfioIommu, arg: bigint): number {
  const prof = iommu.profile;
  const p = uarg(arg);
  let minsz = vfio_iommu_type1_info.offsetofend('iova_pgsizes');
  const info = new Uint8Array(vfio_iommu_type1_info.size);
  if (copyFromUser(info, p, minsz) !== 0) return fail(EFAULT, 'GET_INFO: cannot read the argument');
  const iv = new DataView(info.buffer);
  const argsz = iv.getUint32(0, true);
  if (argsz < minsz) return fail(EINVAL, `GET_INFO: argsz ${argsz} < ${minsz}`);
  if (!prof.infoCaps) {
    iv.setUint32(4, prof.infoFlagsPgsizes ? VFIO_IOMMU_INFO_PGSIZES : 0, true);
    iv.setBigUint64(8, iommu.pgsize_bitmap, true);
    return copyOut(prof, p, info, minsz);
  }
  /* 6.x zeroes the struct and copies back min(argsz, sizeof) */
  info.fill(0, 4);
  minsz = Math.min(argsz, vfio_iommu_type1_info.size);
  let flags = VFIO_IOMMU_INFO_PGSIZES;
  iv.setBigUint64(8, iommu.pgsize_bitmap, true);
  const caps = infoCaps(iommu);
  if (caps.length > 0) {
    flags |= VFIO_IOMMU_INFO_CAPS;
    const need = vfio_iommu_type1_info.size + caps.length;
    if (argsz < need) {
      iv.setUint32(0, need, true);
    } else {
      if (copyToUser(p + vfio_iommu_type1_info.size, caps) !== 0)
        return fail(EFAULT, 'GET_INFO: cannot write the capability chain');
      iv.setUint32(16, vfio_iommu_type1_info.size, true);
    }
  }
  iv.setUint32(4, flags, true);
  return copyToUser(p, info, minsz) !== 0 ? -EFAULT : 0;
}

function mapDma(iommu: VfioIommu, arg: bigint): number {
  const p = uarg(arg);
  const minsz = 32;
  if (copyFromUser(scratch, p, minsz) !== 0) return fail(EFAULT, 'MAP_DMA: cannot read the argument');
  const argsz = u32(0);
  const flags = u32(4);
  const mask =
    VFIO_DMA_MAP_FLAG_READ |
    VFIO_DMA_MAP_FLAG_WRITE |
    (iommu.profile.vaddrAndUnmapAll ? VFIO_DMA_MAP_FLAG_VADDR : 0);
  if (argsz < minsz || flags & ~mask)
    return fail(
      EINVAL,
      argsz < minsz ? `MAP_DMA: argsz ${argsz} < ${minsz}` : `MAP_DMA: unknown flags 0x${flags.toString(16)}`,
    );
  /* alignment lives in the low words; only huge values can wrap */
  const lowBits = u32(8) | u32(16) | u32(24);
  const sizeHi = u32(28);
  const mayWrap = u32(12) + sizeHi >= 0xffff_fff0 || u32(20) + sizeHi >= 0xffff_fff0;
  return vfioDmaDoMap(iommu, {
    flags,
    vaddr: u64(8),
    iova: u64(16),
    size: u64(24),
    vaddrN: num(8),
    iovaN: num(16),
    sizeN: num(24),
    lowBits,
    mayWrap,
  });
}

function unmapDma(iommu: VfioIommu, arg: bigint): number {
  const prof = iommu.profile;
  const p = uarg(arg);
  const minsz = 24;
  if (copyFromUser(scratch, p, minsz) !== 0) return fail(EFAULT, 'UNMAP_DMA: cannot read the argument');
  const argsz = u32(0);
  const flags = u32(4);
  const mask = prof.vaddrAndUnmapAll
    ? VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL
    : 0;
  if (argsz < minsz || flags & ~mask)
    return fail(
      EINVAL,
      argsz < minsz
        ? `UNMAP_DMA: argsz ${argsz} < ${minsz}`
        : `UNMAP_DMA: unknown flags 0x${flags.toString(16)}`,
    );
  const req: UnmapRequest = {
    flags,
    iova: u64(8),
    size: u64(16),
    iovaLo: u32(8),
    sizeLo: u32(16),
    bitmapPgsize: 0n,
    bitmapData: 0n,
  };
  if (
    flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP &&
    flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)
  )
    return fail(EINVAL, 'UNMAP_DMA: GET_DIRTY_BITMAP with ALL or VADDR');
  if (flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
    if (argsz < minsz + 24) return fail(EINVAL, 'UNMAP_DMA: argsz too small for the vfio_bitmap');
    const bm = new Uint8Array(24);
    if (copyFromUser(bm, p + minsz, 24) !== 0) return fail(EFAULT, 'UNMAP_DMA: cannot read the vfio_bitmap');
    const bv = new DataView(bm.buffer);
    req.bitmapPgsize = bv.getBigUint64(0, true);
    const bsize = bv.getBigUint64(8, true);
    req.bitmapData = bv.getBigUint64(16, true);
    if (!accessOk(req.bitmapData, bsize)) return fail(EINVAL, 'UNMAP_DMA: the bitmap is not in user memory');
    const ret = verifyBitmapSize(req.size >> BigInt(ffs64(req.bitmapPgsize)), bsize);
    if (ret !== 0) return fail(EINVAL, 'UNMAP_DMA: bitmap size does not fit the range');
  }
  const ret = vfioDmaDoUnmap(iommu, req);
  if (ret !== 0) return ret;
  if (LITTLE) s64[2] = req.size;
  else sv.setBigUint64(16, req.size, true);
  return copyOut(iommu.profile, p, scratch, minsz);
}

/** the ioctl's last copy_to_user: 4.1 returned its residual, later kernels -EFAULT */
function copyOut(prof: Type1Profile, p: number, src: Uint8Array, n: number): number {
  const left = copyToUser(p, src, n);
  if (left === 0) return 0;
  return prof.copyOutResidual ? left : fail(EFAULT, 'cannot write the result back');
}

function dirtyPages(iommu: VfioIommu, arg: bigint): number {
  if (!iommu.v2) return fail(EACCES, 'DIRTY_PAGES: not a v2 container');
  const p = uarg(arg);
  const minsz = 8;
  const hdr = new Uint8Array(8);
  if (copyFromUser(hdr, p, minsz) !== 0) return fail(EFAULT, 'DIRTY_PAGES: cannot read the argument');
  const hv = new DataView(hdr.buffer);
  const argsz = hv.getUint32(0, true);
  const flags = hv.getUint32(4, true);
  const mask =
    VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
    VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
    VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
  if (argsz < minsz || flags & ~mask) return fail(EINVAL, 'DIRTY_PAGES: argsz < 8 or unknown flags');
  /* only one flag should be set at a time */
  if (flags === 0 || (flags & (flags - 1)) !== 0) return fail(EINVAL, 'DIRTY_PAGES: not exactly one flag');
  const pgsize = 1n << BigInt(iommu.pgshift);
  if (flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
    iommu.lock.lock();
    try {
      if (!iommu.dirty_page_tracking) {
        let tooBig = false;
        iommu.dma_list.forEach((d) => {
          if (d.size / pgsize > BigInt(DIRTY_BITMAP_PAGES_MAX)) tooBig = true;
        });
        if (tooBig) return fail(EINVAL, 'DIRTY_PAGES START: a mapping is too large for a bitmap');
        iommu.dirty_page_tracking = true;
      }
      return 0;
    } finally {
      iommu.lock.unlock();
    }
  }
  if (flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
    iommu.lock.lock();
    iommu.dirty_page_tracking = false;
    iommu.lock.unlock();
    return 0;
  }
  /* GET_BITMAP: struct vfio_iommu_type1_dirty_bitmap_get follows the header */
  const dataSize = argsz - minsz;
  if (dataSize < 40) return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: argsz too small for the range');
  const r = new Uint8Array(40);
  if (copyFromUser(r, p + minsz, 40) !== 0)
    return fail(EFAULT, 'DIRTY_PAGES GET_BITMAP: cannot read the range');
  const rv = new DataView(r.buffer);
  const iova = rv.getBigUint64(0, true);
  const size = rv.getBigUint64(8, true);
  const bpgsize = rv.getBigUint64(16, true);
  const bsize = rv.getBigUint64(24, true);
  const bdata = rv.getBigUint64(32, true);
  if (iova + size > 0xffff_ffff_ffff_ffffn)
    return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: iova + size wraps around');
  if (!accessOk(bdata, bsize))
    return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: the bitmap is not in user memory');
  if (verifyBitmapSize(size >> BigInt(ffs64(bpgsize)), bsize) !== 0)
    return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: bitmap size does not fit the range');
  iommu.lock.lock();
  try {
    /* allow only smallest supported pgsize */
    if (bpgsize !== pgsize)
      return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: pgsize is not the smallest IOMMU page');
    if ((iova & (pgsize - 1n)) !== 0n) return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: iova not page aligned');
    if (size === 0n || (size & (pgsize - 1n)) !== 0n)
      return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: size 0 or not page aligned');
    if (!iommu.dirty_page_tracking) return fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: tracking is not started');
    const ret = vfioIovaDirtyBitmap(iommu, bdata, iova, size, iommu.pgshift);
    return ret === -EINVAL ? fail(EINVAL, 'DIRTY_PAGES GET_BITMAP: the range bisects a mapping') : ret;
  } finally {
    iommu.lock.unlock();
  }
}

export function vfioIommuType1Ioctl(iommu: VfioIommu, cmd: number, arg: bigint): number {
  switch (cmd) {
    case VFIO_IOMMU_MAP_DMA:
      return mapDma(iommu, arg);
    case VFIO_IOMMU_UNMAP_DMA:
      return unmapDma(iommu, arg);
    case VFIO_IOMMU_GET_INFO:
      return getInfo(iommu, arg);
    case VFIO_CHECK_EXTENSION:
      return vfioIommuType1CheckExtension(iommu, arg, iommu.profile);
    case VFIO_IOMMU_DIRTY_PAGES:
      if (iommu.profile.dirtyPages) return dirtyPages(iommu, arg);
      return -ENOTTY;
    default:
      return -ENOTTY;
  }
}
