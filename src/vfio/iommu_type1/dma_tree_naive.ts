// Sorted array of entries, binary search, splice: O(n) insert/remove.
// Deliberately plain bigint code with no cleverness: it is the reference model
// the property tests hold the B+tree to, and the benchmark's baseline.

import type { DmaEntry, DmaPatch, DmaTree } from './dma_entry.ts';
import {
  checkEntryFields,
  checkPatchFields,
  endError,
  missingError,
  mutationError,
  overlapError,
  sizeError,
  U64_LIMIT,
} from './dma_entry.ts';

function copy(e: DmaEntry): DmaEntry {
  return {
    iova: e.iova,
    size: e.size,
    vaddr: e.vaddr,
    prot: e.prot,
    handle: e.handle,
    vaddrInvalid: e.vaddrInvalid,
  };
}

class NaiveDmaTree implements DmaTree {
  private a: DmaEntry[] = [];
  private version = 0;

  get count(): number {
    return this.a.length;
  }

  // First index whose iova >= key.
  private lowerBound(key: bigint): number {
    const a = this.a;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid]!.iova < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(e: DmaEntry): void {
    checkEntryFields(e);
    if (e.iova + e.size > U64_LIMIT) throw endError(e.iova, e.size);
    const end = e.iova + e.size;
    const i = this.lowerBound(e.iova);
    const next = this.a[i];
    const prev = this.a[i - 1];
    if ((next !== undefined && next.iova < end) || (prev !== undefined && prev.iova + prev.size > e.iova)) {
      throw overlapError(e.iova, e.size);
    }
    this.a.splice(i, 0, copy(e));
    this.version++;
  }

  remove(iova: bigint): boolean {
    const i = this.lowerBound(iova);
    if (this.a[i]?.iova !== iova) return false;
    this.a.splice(i, 1);
    this.version++;
    return true;
  }

  get(iova: bigint): DmaEntry | undefined {
    const e = this.a[this.lowerBound(iova)];
    return e !== undefined && e.iova === iova ? copy(e) : undefined;
  }

  findOverlap(start: bigint, size: bigint): DmaEntry | undefined {
    if (!(size > 0n)) throw sizeError(size);
    const i = this.lowerBound(start);
    const prev = this.a[i - 1];
    if (prev !== undefined && prev.iova + prev.size > start) return copy(prev);
    const next = this.a[i];
    if (next !== undefined && next.iova < start + size) return copy(next);
    return undefined;
  }

  findContaining(addr: bigint): DmaEntry | undefined {
    const i = this.lowerBound(addr + 1n) - 1;
    const e = this.a[i];
    return e !== undefined && addr < e.iova + e.size ? copy(e) : undefined;
  }

  firstAtOrAfter(start: bigint): DmaEntry | undefined {
    const e = this.a[this.lowerBound(start)];
    return e === undefined ? undefined : copy(e);
  }

  update(iova: bigint, patch: DmaPatch): void {
    const i = this.lowerBound(iova);
    const e = this.a[i];
    if (e === undefined || e.iova !== iova) throw missingError(iova);
    checkPatchFields(patch);
    if (patch.size !== undefined) {
      const end = iova + patch.size;
      if (end > U64_LIMIT) throw endError(iova, patch.size);
      const next = this.a[i + 1];
      if (next !== undefined && next.iova < end) throw overlapError(iova, patch.size);
      e.size = patch.size;
    }
    if (patch.vaddr !== undefined) e.vaddr = patch.vaddr;
    if (patch.prot !== undefined) e.prot = patch.prot;
    if (patch.handle !== undefined) e.handle = patch.handle;
    if (patch.vaddrInvalid !== undefined) e.vaddrInvalid = patch.vaddrInvalid;
    this.version++;
  }

  forEach(fn: (e: DmaEntry) => void): void {
    const v = this.version;
    for (const e of this.a) {
      fn(copy(e));
      if (this.version !== v) throw mutationError();
    }
  }

  range(start: bigint, end: bigint): DmaEntry[] {
    const out: DmaEntry[] = [];
    if (!(end > start)) return out;
    let i = this.lowerBound(start);
    const prev = this.a[i - 1];
    if (prev !== undefined && prev.iova + prev.size > start && prev.iova < end) out.push(copy(prev));
    for (let e = this.a[i]; e !== undefined && e.iova < end; e = this.a[++i]) {
      if (e.iova + e.size > start) out.push(copy(e));
    }
    return out;
  }

  clear(): void {
    this.a = [];
    this.version++;
  }
}

export function createNaiveDmaTree(): DmaTree {
  return new NaiveDmaTree();
}
