import type { IommuGroup } from '../iommu_group.ts';
import {
  DMA_NONE,
  DMA_TO_DEVICE,
  type DmaDirection,
  iommuTceDirection,
  TCE_PCI_READ,
  TCE_PCI_WRITE,
} from './tce.ts';

/*
 * struct iommu_table (arch/powerpc/include/asm/iommu.h): one TCE table,
 * the window of bus addresses it translates, the allocation bitmap the
 * host's DMA API hands entries out of, and the TCE array itself.
 *
 * The TCE array is 8 bytes an entry, stored as two 32-bit words (low word
 * first) in chunks of 64Ki entries allocated on first write, as the
 * kernel's multi-level tables fill in on demand: a huge dynamic window
 * costs what is mapped. The low word holds the permission bits and the
 * low part of the real address, which keeps the map/unmap loops free of
 * bigint arithmetic; `tceArray` gives the u64 array the hardware reads.
 */
export const IOMMU_NR_POOLS = 4;

export interface IommuPool {
  start: number;
  end: number;
  hint: number;
}

const TWO32 = 0x1_0000_0000;
const CHUNK = 65536;

export class IommuTable {
  /** LIOBN: the logical I/O bus number firmware names the table by */
  readonly it_index: number;
  readonly it_busno: number;
  /** first entry: the window starts at it_offset << it_page_shift */
  readonly it_offset: number;
  /** number of entries */
  readonly it_size: number;
  readonly it_page_shift: number;
  /** the DMA API hint rounding (powernv: 16) */
  readonly it_blocksize = 16;
  /** it_base: the TCE array, two little-endian words an entry, in chunks of CHUNK entries */
  private readonly chunks: (Uint32Array | undefined)[];
  /** allocation bitmap: bit n set = entry it_offset + n is in use (BITS_TO_LONGS rounded) */
  it_map: Uint8Array | undefined;
  /** 4.1: the group this table belongs to (iommu_register_group) */
  it_group: IommuGroup | undefined;
  /* the DMA API's allocation pools */
  nr_pools = 1;
  poolsize = 0;
  readonly pools: IommuPool[] = [];
  readonly large_pool: IommuPool = { start: 0, end: 0, hint: 0 };
  /* 6.x */
  it_reserved_start = 0;
  it_reserved_end = 0;
  it_indirect_levels = 0;
  it_level_size = 0;
  /** bytes of memory the table takes (charged to locked_vm for user-created tables) */
  it_allocated_size = 0;
  /** v2: the userspace address each entry maps (it_userspace); 0 for none */
  it_userspace: UserspaceView | undefined;
  /** it_kref: the table groups and containers that hold the table */
  it_kref = 1;

  constructor(opts: {
    readonly index: number;
    readonly busno?: number;
    readonly offset: number;
    readonly size: number;
    readonly pageShift: number;
  }) {
    this.it_index = opts.index;
    this.it_busno = opts.busno ?? 0;
    this.it_offset = opts.offset;
    this.it_size = opts.size;
    this.it_page_shift = opts.pageShift;
    this.pageSize = 2 ** opts.pageShift;
    this.windowStart = BigInt(opts.offset) << BigInt(opts.pageShift);
    this.windowSize = BigInt(opts.size) << BigInt(opts.pageShift);
    const safe = this.windowStart + this.windowSize <= BigInt(Number.MAX_SAFE_INTEGER);
    this.windowStartNum = safe ? Number(this.windowStart) : Number.NaN;
    this.windowEndNum = safe ? Number(this.windowStart + this.windowSize) : Number.NaN;
    this.chunks = new Array(Math.ceil(opts.size / CHUNK)).fill(undefined);
  }

  /** IOMMU_PAGE_SIZE(tbl) */
  readonly pageSize: number;

  /** the bus address range this table translates */
  readonly windowStart: bigint;
  readonly windowSize: bigint;
  /** the same as numbers, for windows below 2^53 (NaN above: the bigint path applies) */
  readonly windowStartNum: number;
  readonly windowEndNum: number;

  /** a copy of the TCE array as the u64 array the hardware reads */
  get tceArray(): BigUint64Array {
    const out = new BigUint64Array(this.it_size);
    this.chunks.forEach((c, n) => {
      if (c !== undefined)
        out.set(new BigUint64Array(c.buffer, 0, Math.min(CHUNK, this.it_size - n * CHUNK)), n * CHUNK);
    });
    return out;
  }

  /** the TCE of entry `index` (absolute entry number, as the TCE ops take) */
  tceAt(index: number): bigint {
    const i = index - this.it_offset;
    if (i < 0 || i >= this.it_size) return 0n;
    const c = this.chunks[Math.floor(i / CHUNK)];
    if (c === undefined) return 0n;
    const j = (i % CHUNK) * 2;
    return (BigInt(c[j + 1] ?? 0) << 32n) | BigInt(c[j] ?? 0);
  }

  /**
   * The first entry >= index whose part of the table has ever been
   * written (it_offset + it_size when none): clearing loops skip what was
   * never populated, as the kernel skips missing levels of a multi-level
   * table.
   */
  nextPopulated(index: number): number {
    const end = this.it_offset + this.it_size;
    let i = Math.max(index - this.it_offset, 0);
    while (i < this.it_size) {
      if (this.chunks[Math.floor(i / CHUNK)] !== undefined) return i + this.it_offset;
      i = (Math.floor(i / CHUNK) + 1) * CHUNK;
    }
    return end;
  }

  /** whether the part of the table holding `index` was ever written */
  populated(index: number): boolean {
    return this.chunks[Math.floor((index - this.it_offset) / CHUNK)] !== undefined;
  }

  /** entries with a permission bit set */
  validEntries(): number {
    let n = 0;
    for (const c of this.chunks)
      if (c !== undefined) for (let j = 0; j < c.length; j += 2) if ((c[j] ?? 0) & 3) n++;
    return n;
  }

  /** debugfs hook (src/debugfs/json.ts): the table for snapshots and `vfio-ts graph` */
  debugSnapshot(): object {
    let hostUsed = 0;
    const map = this.it_map;
    if (map !== undefined)
      for (let i = 0; i < this.it_size; i++) if ((map[i >>> 3] ?? 0) & (1 << (i & 7))) hostUsed++;
    return {
      type: 'iommu_table',
      liobn: this.it_index,
      group: this.it_group?.id ?? null,
      windowStart: this.windowStart,
      windowSize: this.windowSize,
      pageShift: this.it_page_shift,
      entries: this.it_size,
      inUse: this.validEntries(),
      itMapUsed: hostUsed,
    };
  }

  contains(index: number): boolean {
    const i = index - this.it_offset;
    return i >= 0 && i < this.it_size;
  }

  /* ---- the platform's TCE ops (powernv pnv_tce_build/free/get/xchg) ---- */

  /** tce_get: the raw TCE (address | permissions) as a number; 0 outside the table */
  get(index: number): number {
    const i = index - this.it_offset;
    if (i < 0 || i >= this.it_size) return 0;
    const c = this.chunks[Math.floor(i / CHUNK)];
    if (c === undefined) return 0;
    const j = (i % CHUNK) * 2;
    return c[j + 1]! * TWO32 + c[j]!;
  }

  /** the permission bits of entry `index` */
  perm(index: number): number {
    const i = index - this.it_offset;
    if (i < 0 || i >= this.it_size) return 0;
    const c = this.chunks[Math.floor(i / CHUNK)];
    if (c === undefined) return 0;
    return c[(i % CHUNK) * 2]! & (TCE_PCI_READ | TCE_PCI_WRITE);
  }

  /** the real address entry `index` points at (permission bits stripped) */
  addr(index: number): number {
    const i = index - this.it_offset;
    if (i < 0 || i >= this.it_size) return 0;
    const c = this.chunks[Math.floor(i / CHUNK)];
    if (c === undefined) return 0;
    const j = (i % CHUNK) * 2;
    return c[j + 1]! * TWO32 + ((c[j]! & 0xffff_f000) >>> 0);
  }

  private put(i: number, addr: number, perm: number): void {
    const n = Math.floor(i / CHUNK);
    let c = this.chunks[n];
    if (c === undefined) {
      c = new Uint32Array(2 * Math.min(CHUNK, this.it_size - n * CHUNK));
      this.chunks[n] = c;
    }
    const j = (i % CHUNK) * 2;
    c[j] = ((addr % TWO32) | perm) >>> 0;
    c[j + 1] = Math.floor(addr / TWO32);
  }

  private zero(i: number): void {
    const c = this.chunks[Math.floor(i / CHUNK)];
    if (c === undefined) return;
    const j = (i % CHUNK) * 2;
    c[j] = 0;
    c[j + 1] = 0;
  }

  /**
   * tce_build: point npages entries from `index` at the pages from `addr`
   * (IOMMU-page aligned). Read is always granted, as the PHB's TCE
   * builder does; write unless the direction is to-device.
   */
  build(index: number, npages: number, addr: number, direction: DmaDirection): number {
    const perm = TCE_PCI_READ | (direction !== DMA_TO_DEVICE ? TCE_PCI_WRITE : 0);
    const base = index - this.it_offset;
    const step = this.pageSize;
    for (let n = 0; n < npages; n++) this.put(base + n, addr + n * step, perm);
    return 0;
  }

  /** tce_free: clear npages entries from `index` */
  free(index: number, npages: number): void {
    const base = index - this.it_offset;
    for (let n = 0; n < npages; n++) {
      const i = base + n;
      if (i < 0 || i >= this.it_size) continue;
      this.zero(i);
    }
  }

  /**
   * xchg (6.x pnv_tce_xchg): install hpa with the permissions of
   * `direction` (write implies read) and return the old address and
   * direction. DMA_NONE clears the entry.
   */
  xchg(index: number, hpa: number, direction: DmaDirection): { hpa: number; direction: DmaDirection } {
    const i = index - this.it_offset;
    if (i < 0 || i >= this.it_size) return { hpa: 0, direction: DMA_NONE };
    const old = this.addr(index);
    const oldPerm = this.perm(index);
    /* iommu_direction_to_tce_perm, then "if (newtce & TCE_PCI_WRITE) newtce |= TCE_PCI_READ" */
    const perm = direction === DMA_TO_DEVICE ? TCE_PCI_READ : TCE_PCI_READ | TCE_PCI_WRITE;
    if (direction === DMA_NONE) this.zero(i);
    else this.put(i, hpa, perm);
    return { hpa: old, direction: iommuTceDirection(oldPerm) };
  }
}

/* ---- struct iommu_table_group (6.x): a PE's windows and what the platform can do with them ---- */

export const IOMMU_TABLE_GROUP_MAX_TABLES = 2;

export interface IommuTableGroupOps {
  get_table_size(page_shift: number, window_size: bigint, levels: number): number;
  /** returns a new table, or -errno */
  create_table(
    table_group: IommuTableGroup,
    num: number,
    page_shift: number,
    window_size: bigint,
    levels: number,
  ): IommuTable | number;
  set_window(table_group: IommuTableGroup, num: number, tbl: IommuTable): number;
  unset_window(table_group: IommuTableGroup, num: number): number;
  take_ownership(table_group: IommuTableGroup): number;
  release_ownership(table_group: IommuTableGroup): void;
}

export class IommuTableGroup {
  readonly tables: (IommuTable | undefined)[] = [undefined, undefined];
  group: IommuGroup | undefined;
  constructor(
    readonly ops: IommuTableGroupOps,
    /** the 32-bit DMA window */
    readonly tce32_start: number,
    readonly tce32_size: number,
    /** bitmap of supported IOMMU page sizes */
    readonly pgsizes: number,
    readonly max_dynamic_windows_supported: number,
    readonly max_levels: number,
  ) {}

  /** debugfs hook: the group's tables */
  debugSnapshot(): object {
    return {
      type: 'iommu_table_group',
      tables: this.tables.filter((t) => t !== undefined).map((t) => t.debugSnapshot()),
    };
  }
}

/**
 * it_userspace: the userspace address behind each entry of a v2 table, in
 * chunks like the TCEs (0 means none, as the kernel's cleared entries).
 */
export class UserspaceView {
  private readonly chunks: (Float64Array | undefined)[];
  constructor(readonly size: number) {
    this.chunks = new Array(Math.ceil(size / CHUNK)).fill(undefined);
  }

  /** the ua of table-relative entry i (0: none) */
  get(i: number): number {
    const c = this.chunks[Math.floor(i / CHUNK)];
    return c === undefined ? 0 : c[i % CHUNK]!;
  }

  set(i: number, ua: number): void {
    const n = Math.floor(i / CHUNK);
    let c = this.chunks[n];
    if (c === undefined) {
      if (ua === 0) return;
      c = new Float64Array(Math.min(CHUNK, this.size - n * CHUNK));
      this.chunks[n] = c;
    }
    c[i % CHUNK] = ua;
  }
}
