// The vfio_iommu_type1 DMA mapping record and the ordered set of them
// (the kernel's struct vfio_dma and iommu->dma_list), shared by the compact
// B+tree (dma_tree.ts) and the sorted-array reference (dma_tree_naive.ts).
// Both implementations run the checks below in the same order so that a
// property test can require them to fail identically, not merely both fail.

export interface DmaEntry {
  iova: bigint;
  size: bigint;
  vaddr: bigint;
  prot: number; // IOMMU_READ | IOMMU_WRITE | ..., an integer in 0..2^31-1
  handle: number; // the backend's own reference (e.g. an index into its pin table)
  vaddrInvalid: boolean;
}

// Entries go in and come out as copies: an entry a lookup returns is a
// snapshot, changed only through update(). iova, size and vaddr are u64
// (iova + size <= 2^64, size > 0); insert/update throw RangeError or
// TypeError for values outside that, and lookups given an address outside
// 0..2^64-1 treat it as the mathematical interval it names (so they find
// nothing there) rather than throwing.
export interface DmaTree {
  readonly count: number;
  // Throws Error if the entry overlaps one already in the tree (callers check
  // findOverlap first, as vfio_dma_do_map does).
  insert(e: DmaEntry): void;
  // Removes the entry starting exactly at iova.
  remove(iova: bigint): boolean;
  // The entry starting exactly at iova.
  get(iova: bigint): DmaEntry | undefined;
  // The lowest entry overlapping [start, start+size); size must be > 0.
  findOverlap(start: bigint, size: bigint): DmaEntry | undefined;
  // The entry with iova <= addr < iova+size.
  findContaining(addr: bigint): DmaEntry | undefined;
  // The lowest entry with iova >= start.
  firstAtOrAfter(start: bigint): DmaEntry | undefined;
  // Throws Error if no entry starts at iova or if a new size would overlap
  // the next entry; writes nothing when it throws.
  update(iova: bigint, patch: DmaPatch): void;
  // Ascending iova. fn must not mutate the tree (throws Error if it does).
  forEach(fn: (e: DmaEntry) => void): void;
  // Entries overlapping [start, end), ascending; end may be 2^64.
  range(start: bigint, end: bigint): DmaEntry[];
  clear(): void;
}

export type DmaPatch = Partial<Pick<DmaEntry, 'vaddr' | 'prot' | 'handle' | 'vaddrInvalid' | 'size'>>;

export const U64_MAX = 0xffff_ffff_ffff_ffffn;
export const U64_LIMIT = 0x1_0000_0000_0000_0000n;

// prot shares a 32-bit word with the vaddrInvalid bit in the compact tree.
// The kernel's IOMMU_* prot flags use the low six bits, so 31 is plenty.
export const PROT_MASK = 0x7fff_ffff;

// Entries are kept as copies, so an entry handed out by a lookup is a
// snapshot; these checks make sure what we copy is representable in the
// compact encoding (u64 fields, 31-bit prot), so both implementations accept
// exactly the same inputs.
export function checkEntryFields(e: DmaEntry): void {
  if (!(e.iova >= 0n && e.iova <= U64_MAX)) throw new RangeError(`dma entry: iova ${e.iova} is not a u64`);
  if (!(e.size > 0n && e.size <= U64_MAX))
    throw new RangeError(`dma entry: size ${e.size} is not in 1..2^64-1`);
  if (!(e.vaddr >= 0n && e.vaddr <= U64_MAX))
    throw new RangeError(`dma entry: vaddr ${e.vaddr} is not a u64`);
  checkProt(e.prot);
  checkHandle(e.handle);
  checkFlag(e.vaddrInvalid);
}

export function checkPatchFields(p: DmaPatch): void {
  const { vaddr, size, prot, handle, vaddrInvalid } = p;
  if (vaddr !== undefined && !(vaddr >= 0n && vaddr <= U64_MAX)) {
    throw new RangeError(`dma update: vaddr ${vaddr} is not a u64`);
  }
  if (size !== undefined && !(size > 0n && size <= U64_MAX)) {
    throw new RangeError(`dma update: size ${size} is not in 1..2^64-1`);
  }
  if (prot !== undefined) checkProt(prot);
  if (handle !== undefined) checkHandle(handle);
  if (vaddrInvalid !== undefined) checkFlag(vaddrInvalid);
}

function checkProt(prot: number): void {
  // Also rejects NaN, fractions, negatives and non-numbers in one test.
  if ((prot & PROT_MASK) !== prot)
    throw new RangeError(`dma entry: prot ${prot} is not an integer in 0..2^31-1`);
}

function checkHandle(handle: number): void {
  if (typeof handle !== 'number') throw new TypeError('dma entry: handle must be a number');
}

function checkFlag(flag: boolean): void {
  if (typeof flag !== 'boolean') throw new TypeError('dma entry: vaddrInvalid must be a boolean');
}

export function overlapError(iova: bigint, size: bigint): Error {
  return new Error(`dma entry [${hex(iova)}, +${hex(size)}) overlaps an existing mapping`);
}

export function endError(iova: bigint, size: bigint): RangeError {
  return new RangeError(`dma entry: iova ${hex(iova)} + size ${hex(size)} exceeds 2^64`);
}

export function missingError(iova: bigint): Error {
  return new Error(`dma update: no mapping starts at iova ${hex(iova)}`);
}

export function sizeError(size: bigint): RangeError {
  return new RangeError(`dma lookup: size ${size} must be > 0`);
}

export function mutationError(): Error {
  return new Error('dma tree mutated during forEach');
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}
