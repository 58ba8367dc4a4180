import { currentKernel, type Device, type Kernel, type PhysObject, pr_info } from '../../kernel/index.ts';
import { bitmapClear, bitmapFindNextZeroAreaOff, bitmapSet, setBit } from './bitmap.ts';
import { IOMMU_NR_POOLS, type IommuPool, type IommuTable } from './iommu_table.ts';
import { allocKernelPages, freeKernelPages } from './page.ts';
import { DMA_BIDIRECTIONAL, type DmaDirection } from './tce.ts';

/*
 * The host kernel's own DMA API over a TCE table (arch/powerpc/kernel/
 * iommu.c: iommu_init_table, iommu_range_alloc, iommu_alloc, iommu_free,
 * iommu_alloc_coherent). Host drivers get their bus addresses here, and
 * every entry they hold is a set bit in it_map: that is what makes
 * iommu_take_ownership refuse a table the host still uses.
 */
export const DMA_ERROR_CODE = -1;

const welcomed = new WeakSet<Kernel>();

/** iommu_init_table: the bitmap (entry 0 reserved when the window starts at 0), the pools, a clean table */
export function iommuInitTable(tbl: IommuTable, reserved?: { start: number; end: number }): IommuTable {
  /* BITS_TO_LONGS(it_size) * sizeof(unsigned long) */
  tbl.it_map = new Uint8Array(Math.ceil(tbl.it_size / 64) * 8);
  iommuTableReservePages(tbl, reserved);
  /* We only split the IOMMU table if we have 1GB or more of space */
  tbl.nr_pools = tbl.it_size * tbl.pageSize >= 1024 * 1024 * 1024 ? IOMMU_NR_POOLS : 1;
  /* We reserve the top 1/4 of the table for large allocations */
  tbl.poolsize = Math.floor(Math.floor((tbl.it_size * 3) / 4) / tbl.nr_pools);
  tbl.pools.length = 0;
  for (let i = 0; i < tbl.nr_pools; i++) {
    const start = tbl.poolsize * i;
    tbl.pools.push({ start, hint: start, end: start + tbl.poolsize });
  }
  tbl.large_pool.start = tbl.poolsize * tbl.nr_pools;
  tbl.large_pool.hint = tbl.large_pool.start;
  tbl.large_pool.end = tbl.it_size;
  /* iommu_table_clear: firmware may have left entries behind */
  tbl.free(tbl.it_offset, tbl.it_size);
  const k = currentKernel();
  if (!welcomed.has(k)) {
    pr_info('IOMMU table initialized, virtual merging enabled');
    welcomed.add(k);
  }
  return tbl;
}

/**
 * iommu_table_reserve_pages: reserve entry 0 so DMA address 0 is never
 * handed out (buggy drivers take it for "no address"); 6.x also keeps a
 * reserved range (the 32-bit MMIO hole) out of the allocator.
 */
export function iommuTableReservePages(tbl: IommuTable, reserved?: { start: number; end: number }): void {
  const map = tbl.it_map;
  if (map === undefined) return;
  if (tbl.it_offset === 0) setBit(map, 0);
  if (reserved === undefined) return;
  const start = Math.max(reserved.start, tbl.it_offset);
  const end = Math.min(reserved.end, tbl.it_offset + tbl.it_size);
  if (start >= end) {
    tbl.it_reserved_start = tbl.it_offset;
    tbl.it_reserved_end = tbl.it_offset;
    return;
  }
  tbl.it_reserved_start = start;
  tbl.it_reserved_end = end;
  for (let i = start; i < end; i++) setBit(map, i - tbl.it_offset);
}

function iommuIsSpanBoundary(index: number, nr: number, shift: number, boundarySize: number): boolean {
  const offset = (shift + index) % boundarySize;
  return offset + nr > boundarySize;
}

/** iommu_area_alloc (lib/iommu-helper.c) */
function iommuAreaAlloc(
  map: Uint8Array,
  size: number,
  start: number,
  nr: number,
  shift: number,
  boundarySize: number,
  alignMask: number,
): number {
  for (;;) {
    const index = bitmapFindNextZeroAreaOff(map, size, start, nr, alignMask, shift);
    if (index >= size) return -1;
    if (iommuIsSpanBoundary(index, nr, shift, boundarySize)) {
      start = Math.ceil((shift + index) / boundarySize) * boundarySize - shift;
      continue;
    }
    bitmapSet(map, index, nr);
    return index;
  }
}

/** iommu_range_alloc: npages entries (table-relative index) or DMA_ERROR_CODE */
export function iommuRangeAlloc(tbl: IommuTable, npages: number, mask: number, alignOrder: number): number {
  const map = tbl.it_map;
  if (map === undefined || npages === 0) return DMA_ERROR_CODE;
  const largealloc = npages > 15;
  const alignMask = 2 ** alignOrder - 1;
  /* the default segment boundary (4 GiB), in entries */
  const boundarySize = Math.max(1, Math.floor(0x1_0000_0000 / tbl.pageSize));
  let poolNr = 0; /* one CPU: its hash picks pool 0 */
  let pool: IommuPool = largealloc ? tbl.large_pool : (tbl.pools[poolNr] as IommuPool);
  let pass = 0;
  for (;;) {
    let start = pool.hint;
    let limit = pool.end;
    /* a small segment appended to a large one, or the previous alloc at the very end */
    if (start >= limit) start = pool.start;
    if (limit + tbl.it_offset > mask) {
      limit = mask - tbl.it_offset + 1;
      /* constrained on address range: first try at the masked hint, then from pool 0 */
      if (start % (mask + 1) >= limit || pass > 0) {
        pool = tbl.pools[0] as IommuPool;
        start = pool.start;
      } else start = start % (mask + 1);
    }
    const n = iommuAreaAlloc(map, limit, start, npages, tbl.it_offset, boundarySize, alignMask);
    if (n === -1) {
      if (pass === 0) {
        /* First try the pool from the start */
        pool.hint = pool.start;
        pass++;
        continue;
      }
      if (pass <= tbl.nr_pools) {
        /* Now try scanning all the other pools */
        poolNr = (poolNr + 1) & (tbl.nr_pools - 1);
        pool = tbl.pools[poolNr] as IommuPool;
        pool.hint = pool.start;
        pass++;
        continue;
      }
      if (pass === tbl.nr_pools + 1) {
        /* Last resort: try largepool */
        pool = tbl.large_pool;
        pool.hint = pool.start;
        pass++;
        continue;
      }
      return DMA_ERROR_CODE;
    }
    const end = n + npages;
    /* Bump the hint to a new block for small allocs */
    if (largealloc) pool.hint = end;
    else pool.hint = Math.ceil(end / tbl.it_blocksize) * tbl.it_blocksize;
    return n;
  }
}

/** iommu_alloc: entries for npages at kernel address `addr`; the bus address or DMA_ERROR_CODE */
export function iommuAlloc(
  tbl: IommuTable,
  addr: number,
  npages: number,
  direction: DmaDirection,
  mask: number,
  alignOrder: number,
): number {
  const n = iommuRangeAlloc(tbl, npages, mask, alignOrder);
  if (n === DMA_ERROR_CODE) return DMA_ERROR_CODE;
  const entry = n + tbl.it_offset; /* Offset into real TCE table */
  const pageMaskedAddr = addr - (addr % tbl.pageSize);
  tbl.build(entry, npages, pageMaskedAddr, direction);
  return entry * tbl.pageSize;
}

/** __iommu_free: clear the TCEs, then the bitmap */
export function iommuFree(tbl: IommuTable, dmaAddr: number, npages: number): void {
  const entry = Math.floor(dmaAddr / tbl.pageSize);
  const freeEntry = entry - tbl.it_offset;
  if (freeEntry + npages > tbl.it_size || entry < tbl.it_offset) {
    pr_info('iommu_free: invalid entry');
    return;
  }
  tbl.free(entry, npages);
  if (tbl.it_map !== undefined) bitmapClear(tbl.it_map, freeEntry, npages);
}

/** a coherent buffer the host kernel shares with a device */
export interface CoherentBuffer {
  readonly pages: PhysObject;
  readonly size: number;
  readonly dma: number;
}

function getOrder(size: number, shift: number): number {
  return size <= 2 ** shift ? 0 : Math.ceil(Math.log2(size)) - shift;
}

/** iommu_alloc_coherent (dma_alloc_coherent): pages plus a bidirectional mapping, or undefined */
export function iommuAllocCoherent(
  dev: Device,
  tbl: IommuTable,
  size: number,
  mask: number,
): CoherentBuffer | undefined {
  const k = currentKernel();
  size = Math.ceil(size / k.pageSize) * k.pageSize; /* PAGE_ALIGN */
  const pages = allocKernelPages(size);
  const nioPages = Math.ceil(size / tbl.pageSize);
  const ioOrder = getOrder(size, tbl.it_page_shift);
  const mapping = iommuAlloc(
    tbl,
    pages.phys,
    nioPages,
    DMA_BIDIRECTIONAL,
    Math.floor(mask / tbl.pageSize),
    ioOrder,
  );
  if (mapping === DMA_ERROR_CODE) {
    k.printk('info', `${dev.name}: iommu_alloc failed, tbl ${tbl.it_index.toString(16)} npages ${nioPages}`);
    freeKernelPages(pages);
    return undefined;
  }
  return { pages, size, dma: mapping + (pages.phys % tbl.pageSize) };
}

/** iommu_free_coherent */
export function iommuFreeCoherent(tbl: IommuTable, buf: CoherentBuffer): void {
  iommuFree(tbl, buf.dma, Math.ceil(buf.size / tbl.pageSize));
  freeKernelPages(buf.pages);
}
