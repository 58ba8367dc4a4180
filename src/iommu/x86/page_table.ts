/*
 * The DMA-remapping page table of one domain: IOVA page -> physical page
 * and permissions, at every page size the hardware maps (VT-d: 4 KiB
 * leaves, 2 MiB and 1 GiB superpages).
 *
 * Why hashed rather than a radix tree of 512-entry tables: a VFIO user may
 * scatter a million 4 KiB mappings over a 48-bit space, and a radix tree
 * then spends a leaf table (4 KiB) per mapping. Here each page size has an
 * open-addressing hash keyed by the IOVA page number at that size, in one
 * Float64Array of [key, entry] pairs (16 bytes a slot, at most 60% full),
 * so a 4 KiB mapping costs ~32 bytes and a 2 MiB superpage the same. A lookup probes the
 * sizes from the largest down, skipping the empty ones, as a walk that
 * stops at the first leaf would.
 *
 * Units: IOVAs are page frame numbers (ipfn = iova >> 12) so a 57-bit
 * address space stays exact in a double; physical addresses are bytes.
 * An entry is `phys + prot`: phys is page aligned, so prot (< 4096) rides
 * in the low bits without any bigint.
 */
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;
export const IOMMU_NOEXEC = 1 << 3;
export const IOMMU_MMIO = 1 << 4;

export const VTD_PAGE_SHIFT = 12;
export const VTD_PAGE_SIZE = 4096;

const EMPTY = -1;
const PROT_MASK = VTD_PAGE_SIZE - 1;
const TWO32 = 0x1_0000_0000;
const MIN_SLOTS = 16;

/*
 * One page size: key = ipfn / pages(size). Slot i is [key, pte] at 2i and
 * 2i+1 of one Float64Array, so a probe touches one cache line: with a
 * million live mappings the table is 32 MiB and every lookup is a miss.
 *
 * Fields are `declare`d and set in the constructor so each object gets its
 * final shape at once (define-semantics field initialisers would first
 * make them undefined, and V8 would then box every number stored there).
 */
class Level {
  declare readonly shift: number;
  /** 4 KiB pages per entry */
  declare readonly pages: number;
  declare slots: Float64Array;
  declare mask: number;
  declare count: number;

  constructor(shift: number) {
    this.shift = shift;
    this.pages = 2 ** (shift - VTD_PAGE_SHIFT);
    this.slots = Level.table(MIN_SLOTS);
    this.mask = MIN_SLOTS - 1;
    this.count = 0;
  }

  private static table(slots: number): Float64Array {
    const t = new Float64Array(slots * 2);
    for (let i = 0; i < t.length; i += 2) t[i] = EMPTY;
    return t;
  }

  home(key: number): number {
    let h = Math.imul((key >>> 0) ^ Math.imul((key / TWO32) >>> 0, 0x27d4eb2d), 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca77);
    h ^= h >>> 13;
    return h & this.mask;
  }

  /** the entry for key, or -1 */
  get(key: number): number {
    const t = this.slots;
    const mask = this.mask;
    let h = Math.imul((key >>> 0) ^ Math.imul((key / TWO32) >>> 0, 0x27d4eb2d), 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca77);
    h ^= h >>> 13;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const k = t[2 * i]!;
      if (k === key) return t[2 * i + 1]!;
      if (k === EMPTY) return EMPTY;
    }
  }

  set(key: number, pte: number): void {
    if ((this.count + 1) * 5 > (this.mask + 1) * 3) this.resize((this.mask + 1) * 2);
    const t = this.slots;
    const mask = this.mask;
    let i = this.home(key);
    for (;;) {
      const k = t[2 * i]!;
      if (k === EMPTY) break;
      if (k === key) {
        t[2 * i + 1] = pte;
        return;
      }
      i = (i + 1) & mask;
    }
    t[2 * i] = key;
    t[2 * i + 1] = pte;
    this.count++;
  }

  delete(key: number): boolean {
    const t = this.slots;
    const mask = this.mask;
    let i = this.home(key);
    for (;;) {
      const k = t[2 * i]!;
      if (k === EMPTY) return false;
      if (k === key) break;
      i = (i + 1) & mask;
    }
    /* backward-shift deletion: no tombstones, probe chains stay short */
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const k = t[2 * j]!;
      if (k === EMPTY) break;
      const h = this.home(k);
      const movable = i <= j ? h <= i || h > j : h <= i && h > j;
      if (movable) {
        t[2 * i] = k;
        t[2 * i + 1] = t[2 * j + 1]!;
        i = j;
      }
    }
    t[2 * i] = EMPTY;
    this.count--;
    const slots = this.mask + 1;
    if (slots > MIN_SLOTS && this.count * 8 < slots) this.resize(slots / 2);
    return true;
  }

  private resize(slots: number): void {
    const old = this.slots;
    this.slots = Level.table(slots);
    this.mask = slots - 1;
    this.count = 0;
    for (let i = 0; i < old.length; i += 2) {
      const k = old[i]!;
      if (k !== EMPTY) this.set(k, old[i + 1]!);
    }
  }

  get bytes(): number {
    return this.slots.byteLength;
  }

  forEach(fn: (key: number, pte: number) => void): void {
    const t = this.slots;
    for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY) fn(t[i]!, t[i + 1]!);
  }
}

/* is n a multiple of the power of two `pages`, without a float modulo */
function aligned(n: number, pages: number): boolean {
  if (pages === 1) return true;
  if (pages <= 0x8000_0000) return ((n >>> 0) & (pages - 1)) === 0;
  return Math.floor(n / pages) * pages === n;
}

export interface PageTableEntry {
  /** first IOVA page the entry maps */
  readonly ipfn: number;
  readonly pages: number;
  readonly phys: number;
  readonly prot: number;
}

export class PageTable {
  /* largest page size first */
  declare private readonly levels: Level[];
  /* the last lookup's entry, so walks need no allocation */
  declare hitBase: number;
  declare hitPages: number;
  declare hitPhys: number;
  declare hitProt: number;
  /** the first physical address of the last contiguousPages() run */
  declare runPhys: number;
  /** 4 KiB pages currently mapped */
  declare mappedPages: number;

  constructor(pgsizeBitmap: bigint) {
    const levels: Level[] = [];
    for (let shift = 63; shift >= VTD_PAGE_SHIFT; shift--)
      if ((pgsizeBitmap >> BigInt(shift)) & 1n) levels.push(new Level(shift));
    if (levels.length === 0 || levels[levels.length - 1]?.shift !== VTD_PAGE_SHIFT)
      levels.push(new Level(VTD_PAGE_SHIFT));
    this.levels = levels;
    this.hitBase = 0;
    this.hitPages = 0;
    this.hitPhys = 0;
    this.hitProt = 0;
    this.runPhys = 0;
    this.mappedPages = 0;
  }

  /** find the entry mapping page ipfn; fills hit* and returns true */
  lookup(ipfn: number): boolean {
    const levels = this.levels;
    for (let l = 0; l < levels.length; l++) {
      const lv = levels[l]!;
      if (lv.count === 0) continue;
      const key = lv.pages === 1 ? ipfn : Math.floor(ipfn / lv.pages);
      const pte = lv.get(key);
      if (pte === EMPTY) continue;
      /* pte mod 4096 without a float modulo: 4096 divides 2^32 */
      const prot = (pte >>> 0) & PROT_MASK;
      this.hitBase = key * lv.pages;
      this.hitPages = lv.pages;
      this.hitPhys = pte - prot;
      this.hitProt = prot;
      return true;
    }
    return false;
  }

  /** iommu_iova_to_phys for the page at ipfn: its physical address, or 0 */
  iovaToPhys(ipfn: number): number {
    if (!this.lookup(ipfn)) return 0;
    return this.hitPhys + (ipfn - this.hitBase) * VTD_PAGE_SIZE;
  }

  /**
   * The physically contiguous run mapped from ipfn, at most maxPages long:
   * its length in pages (0 when ipfn is unmapped), its first physical
   * address left in runPhys.
   */
  contiguousPages(ipfn: number, maxPages: number): number {
    if (!this.lookup(ipfn)) return 0;
    const phys0 = this.hitPhys + (ipfn - this.hitBase) * VTD_PAGE_SIZE;
    this.runPhys = phys0;
    let n = Math.min(this.hitBase + this.hitPages - ipfn, maxPages);
    while (n < maxPages) {
      if (!this.lookup(ipfn + n)) break;
      if (this.hitPhys + (ipfn + n - this.hitBase) * VTD_PAGE_SIZE !== phys0 + n * VTD_PAGE_SIZE) break;
      n = Math.min(this.hitBase + this.hitPages - ipfn, maxPages);
    }
    return n;
  }

  /** is any page of [ipfn, ipfn+npages) mapped? */
  anyMapped(ipfn: number, npages: number): boolean {
    for (let p = ipfn; p < ipfn + npages; p++) if (this.lookup(p)) return true;
    return false;
  }

  /**
   * Map npages from ipfn to phys with the largest pages both addresses are
   * aligned to (iommu_pgsize). The range must be unmapped.
   */
  map(ipfn: number, phys: number, npages: number, prot: number): void {
    const levels = this.levels;
    let p = ipfn;
    let ph = phys;
    let left = npages;
    while (left > 0) {
      const pfn = ph / VTD_PAGE_SIZE;
      let lv = levels[levels.length - 1]!;
      for (let l = 0; l < levels.length; l++) {
        const cand = levels[l]!;
        if (cand.pages <= left && aligned(p, cand.pages) && aligned(pfn, cand.pages)) {
          lv = cand;
          break;
        }
      }
      lv.set(lv.pages === 1 ? p : p / lv.pages, ph + prot);
      p += lv.pages;
      ph += lv.pages * VTD_PAGE_SIZE;
      left -= lv.pages;
      this.mappedPages += lv.pages;
    }
  }

  /**
   * Unmap from ipfn on, at least npages. A superpage is unmapped whole even
   * when the range covers only part of it (VT-d's coarse-grained superpages):
   * returns the pages actually unmapped, counting through holes.
   */
  unmap(ipfn: number, npages: number): number {
    const end = ipfn + npages;
    let p = ipfn;
    while (p < end) {
      if (!this.lookup(p)) {
        p++;
        continue;
      }
      const lv = this.levelOf(this.hitPages);
      lv.delete(lv.pages === 1 ? this.hitBase : this.hitBase / lv.pages);
      this.mappedPages -= this.hitPages;
      p = this.hitBase + this.hitPages;
    }
    return p - ipfn;
  }

  private levelOf(pages: number): Level {
    for (const lv of this.levels) if (lv.pages === pages) return lv;
    throw new Error(`page table: no level of ${pages} pages`);
  }

  /** every entry, unordered (for dumps and tests) */
  entries(): PageTableEntry[] {
    const out: PageTableEntry[] = [];
    for (const lv of this.levels)
      lv.forEach((key, pte) => {
        const prot = (pte >>> 0) & PROT_MASK;
        out.push({ ipfn: key * lv.pages, pages: lv.pages, phys: pte - prot, prot });
      });
    return out.sort((a, b) => a.ipfn - b.ipfn);
  }

  /** bytes the tables occupy */
  get bytes(): number {
    let n = 0;
    for (const lv of this.levels) n += lv.bytes;
    return n;
  }
}
