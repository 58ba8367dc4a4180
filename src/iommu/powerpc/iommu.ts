import { type MmStruct, pr_err, traced } from '../../kernel/index.ts';
import { EBUSY, EINVAL } from '../../uapi/index.ts';
import { bitmapEmpty, clearBit, findNextBit, setBit } from './bitmap.ts';
import type { IommuTable } from './iommu_table.ts';
import { putPage, setPageDirty } from './page.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, type DmaDirection, TCE_PCI_READ, TCE_PCI_WRITE } from './tce.ts';

/*
 * The SPAPR TCE API of arch/powerpc/kernel/iommu.c: what VFIO calls to
 * check, build and clear TCEs and to take a table away from the host's
 * DMA API. Two generations: the seed's (v3.11-v4.1: param checks that
 * return -EINVAL, iommu_tce_build refusing a busy entry, ownership by
 * filling it_map) and 6.x's (iommu_tce_check_ioba/gpa behind macros,
 * xchg that replaces an entry and hands back the old one).
 */

/* ---- v4.1 ---- */

/** iommu_tce_clear_param_check: 0 or -EINVAL */
export function iommuTceClearParamCheck(
  tbl: IommuTable,
  ioba: bigint,
  tceValue: bigint,
  npages: bigint,
): number {
  /* ppc_md.tce_free() does not support any value but 0 */
  if (tceValue !== 0n) return -EINVAL;
  const shift = BigInt(tbl.it_page_shift);
  if ((ioba & ((1n << shift) - 1n)) !== 0n) return -EINVAL;
  const page = ioba >> shift;
  if (page < BigInt(tbl.it_offset)) return -EINVAL;
  if (page + npages > BigInt(tbl.it_offset + tbl.it_size)) return -EINVAL;
  return 0;
}

/** iommu_tce_put_param_check: 0 or -EINVAL; only the first page is checked against the window */
export function iommuTcePutParamCheck(tbl: IommuTable, ioba: bigint, tce: bigint): number {
  const perms = BigInt(TCE_PCI_READ | TCE_PCI_WRITE);
  if ((tce & perms) === 0n) return -EINVAL;
  const mask = (1n << BigInt(tbl.it_page_shift)) - 1n;
  if ((tce & ~(~mask | perms)) !== 0n) return -EINVAL;
  if ((ioba & mask) !== 0n) return -EINVAL;
  const page = ioba >> BigInt(tbl.it_page_shift);
  if (page < BigInt(tbl.it_offset)) return -EINVAL;
  if (page + 1n > BigInt(tbl.it_offset + tbl.it_size)) return -EINVAL;
  return 0;
}

/** iommu_clear_tce: clear a valid entry and return its old TCE (address | permissions), else 0 */
export function iommuClearTce(tbl: IommuTable, entry: number): number {
  const perm = tbl.perm(entry);
  if ((perm & (TCE_PCI_READ | TCE_PCI_WRITE)) === 0) return 0;
  const old = tbl.get(entry);
  tbl.free(entry, 1);
  return old;
}

/** the address and permissions packed in a TCE value (a number, exact below 2^53) */
export function tceAddr(tce: number): number {
  return tce - (tce % 4096);
}

export function tcePerm(tce: number): number {
  return (tce % 4096) & (TCE_PCI_READ | TCE_PCI_WRITE);
}

/** iommu_clear_tces_and_put_pages: every valid entry cleared, its page released (dirty if writable) */
export const iommuClearTcesAndPutPages = traced(
  'iommu_clear_tces_and_put_pages',
  (tbl: IommuTable, entry: number, pages: number): number => {
    for (; pages > 0; --pages, ++entry) {
      const oldtce = iommuClearTce(tbl, entry);
      if (oldtce === 0) continue;
      putPage(tceAddr(oldtce), (tcePerm(oldtce) & TCE_PCI_WRITE) !== 0);
    }
    return 0;
  },
  (tbl, entry, pages) => `liobn=0x${tbl.it_index.toString(16)} entry=0x${entry.toString(16)} pages=${pages}`,
);

/**
 * iommu_tce_build: install one TCE for the kernel address `hwaddr`;
 * -EBUSY if the entry is valid already (the seed never overwrites).
 * An entry outside the table is -EINVAL here: the kernel would write past
 * the end of the TCE array.
 */
export function iommuTceBuild(
  tbl: IommuTable,
  entry: number,
  hwaddr: number,
  direction: DmaDirection,
): number {
  if (!tbl.contains(entry)) return -EINVAL;
  const oldPerm = tbl.perm(entry);
  /* Add new entry if it is not busy */
  if (oldPerm & (TCE_PCI_WRITE | TCE_PCI_READ)) return -EBUSY;
  return tbl.build(entry, 1, hwaddr - (hwaddr % tbl.pageSize), direction);
}

/** iommu_flush_tce: invalidate the PHB's TCE cache (nothing is cached in the model) */
export function iommuFlushTce(_tbl: IommuTable): void {}

/**
 * iommu_take_ownership (v3.11-v4.1, the seed): entry 0 is released from
 * its boot reservation when the window starts at 0, the table must then
 * be unused by the host, and the whole bitmap is filled so the host's DMA
 * API can no longer allocate. The -EBUSY path leaves bit 0 cleared.
 */
export const iommuTakeOwnership = traced('iommu_take_ownership', (tbl: IommuTable): number => {
  const map = tbl.it_map as Uint8Array;
  const sz = (tbl.it_size + 7) >> 3;
  if (tbl.it_offset === 0) clearBit(map, 0);
  if (!bitmapEmpty(map, tbl.it_size)) {
    pr_err('iommu_tce: it_map is not empty');
    return -EBUSY;
  }
  map.fill(0xff, 0, sz);
  iommuClearTcesAndPutPages(tbl, tbl.it_offset, tbl.it_size);
  return 0;
});

/** iommu_release_ownership (v4.1): clear every TCE, empty the bitmap, restore bit 0 */
export const iommuReleaseOwnership = traced('iommu_release_ownership', (tbl: IommuTable): void => {
  const map = tbl.it_map as Uint8Array;
  const sz = (tbl.it_size + 7) >> 3;
  iommuClearTcesAndPutPages(tbl, tbl.it_offset, tbl.it_size);
  map.fill(0, 0, sz);
  /* Restore bit#0 set by iommu_init_table() */
  if (tbl.it_offset === 0) setBit(map, 0);
});

/* ---- 6.x ---- */

/** iommu_tce_check_ioba: 0 or -EINVAL (npages is not used: only the first page is checked) */
export function iommuTceCheckIoba(
  pageShift: number,
  offset: number,
  size: number,
  ioba: bigint,
  _npages: number,
): number {
  const mask = (1n << BigInt(pageShift)) - 1n;
  if ((ioba & mask) !== 0n) return -EINVAL;
  const page = ioba >> BigInt(pageShift);
  if (page < BigInt(offset)) return -EINVAL;
  if (page + 1n > BigInt(offset + size)) return -EINVAL;
  return 0;
}

/** iommu_tce_check_gpa */
export function iommuTceCheckGpa(pageShift: number, gpa: bigint): number {
  const mask = (1n << BigInt(pageShift)) - 1n;
  return (gpa & mask) !== 0n ? -EINVAL : 0;
}

/**
 * 6.x's iommu_tce_put_param_check is a macro: `check_ioba(...) ||
 * check_gpa(...)`, so a failed check evaluates to 1, which the ioctl then
 * returns as it is.
 */
export function iommuTcePutParamCheck6(tbl: IommuTable, ioba: bigint, gpa: bigint): number {
  return iommuTceCheckIoba(tbl.it_page_shift, tbl.it_offset, tbl.it_size, ioba, 1) !== 0 ||
    iommuTceCheckGpa(tbl.it_page_shift, gpa) !== 0
    ? 1
    : 0;
}

/** 6.x's iommu_tce_clear_param_check macro: 1 on failure */
export function iommuTceClearParamCheck6(
  tbl: IommuTable,
  ioba: bigint,
  tceValue: bigint,
  npages: number,
): number {
  return iommuTceCheckIoba(tbl.it_page_shift, tbl.it_offset, tbl.it_size, ioba, npages) !== 0 ||
    tceValue !== 0n
    ? 1
    : 0;
}

/**
 * iommu_tce_xchg_no_kill: exchange an entry; the old page is marked dirty
 * when the device could write it. Returns the old address and direction.
 */
export function iommuTceXchgNoKill(
  _mm: MmStruct | null,
  tbl: IommuTable,
  entry: number,
  hpa: number,
  direction: DmaDirection,
): { hpa: number; direction: DmaDirection } {
  const old = tbl.xchg(entry, hpa, direction);
  if (old.direction === DMA_FROM_DEVICE || old.direction === DMA_BIDIRECTIONAL) setPageDirty(old.hpa);
  return old;
}

/** iommu_tce_kill: invalidate cached TCEs (nothing is cached in the model) */
export function iommuTceKill(_tbl: IommuTable, _entry: number, _pages: number): void {}

/** iommu_table_in_use: any entry allocated outside bit 0 and the reserved range */
export function iommuTableInUse(tbl: IommuTable): boolean {
  const map = tbl.it_map;
  if (map === undefined) return false;
  const start = tbl.it_offset === 0 ? 1 : 0;
  if (tbl.it_reserved_start === 0 && tbl.it_reserved_end === 0)
    return findNextBit(map, tbl.it_size, start) !== tbl.it_size;
  let end = tbl.it_reserved_start - tbl.it_offset;
  if (findNextBit(map, end, start) !== end) return true;
  end = tbl.it_size;
  return findNextBit(map, end, tbl.it_reserved_end - tbl.it_offset) !== end;
}
