// The container's set of DMA mappings (the kernel's iommu->dma_list, an
// rb-tree of struct vfio_dma keyed by iova), as a B+tree laid out in two flat
// Uint32Array arenas instead of one JS object per mapping.
//
// Why this shape rather than the kernel's rb-tree:
// - Memory. A JS object per mapping with three bigint fields costs ~150-200
//   bytes before any tree links, and the budget is 128 for a million live
//   mappings. Here a mapping is 10 u32 words inside a leaf block and a node
//   "pointer" is a block number, so there are no per-node JS objects for the
//   GC to trace (~60 bytes per mapping at 1M, arena slack included).
// - At 1M mappings the cost is cache misses, not compares: on the machine
//   this was tuned on, every random load past ~2 MB of working set took
//   ~180 ns. An rb-tree lookup is ~20 dependent misses; here a lookup is one
//   internal node per level (the levels near the root stay cached) and about
//   one round of misses in the leaf:
//   - a leaf keeps (iova, size, payload slot) of its entries in a dense key
//     region that is scanned linearly: the loop branch predicts well, so the
//     CPU issues the loads of the following lines while it compares, where a
//     binary search would wait for each probe in turn;
//   - the rest of an entry (vaddr, prot/flags, handle) sits in an unordered
//     payload slot of the same leaf, so insert and remove shift only the key
//     region, and lookups that answer "no overlap" never touch payloads.
//   One shift per insert/remove also matters because copyWithin costs ~40 ns
//   a call whatever the length.
// - u64 values are kept exact as (hi, lo) u32 pairs: the kernel accepts any
//   iova/size with iova + size <= 2^64, and rounding through doubles above
//   2^53 would silently merge distinct mappings. bigint <-> (hi, lo) goes
//   through a BigUint64Array cell (~3x cheaper than Number(x) or BigInt(n)).
// - A "finger" remembers the last leaf reached and the key range it covers,
//   so consecutive operations in one leaf skip the descent; it is dropped on
//   every structural change. On top, the position found by the last search
//   is remembered until the tree changes, so the backend's findOverlap ->
//   insert on one iova, or get -> remove, searches once.
// - Splitting the rightmost leaf when appending keeps it full (ascending map
//   patterns then fill leaves ~100% instead of ~50%), and nodes are merged
//   only below 1/4 full, so alternating map/unmap at one spot does not thrash
//   split/merge. Consequence: every non-root node has >= min entries except
//   the rightmost leaf, which has >= 1. Internal nodes always split evenly:
//   they are ~2% of the memory, and an uneven split would leave one-child
//   nodes whose leaf has no sibling to merge with.

import type { DmaEntry, DmaPatch, DmaTree } from './dma_entry.ts';
import {
  checkEntryFields,
  checkPatchFields,
  endError,
  missingError,
  mutationError,
  overlapError,
  PROT_MASK,
  sizeError,
  U64_LIMIT,
  U64_MAX,
} from './dma_entry.ts';

export type { DmaEntry, DmaPatch, DmaTree } from './dma_entry.ts';
export { createNaiveDmaTree } from './dma_tree_naive.ts';

// Imported bindings can compile to getter calls (tsx's CommonJS interop), so
// the hot paths use local copies.
const MAX = U64_MAX;
const LIMIT = U64_LIMIT;
const PMASK = PROT_MASK;

const NIL = 0xffff_ffff;
const TWO32 = 0x1_0000_0000;
const INVALID_BIT = 0x8000_0000;

// Leaf block: header, key region (cap entries of KS words, sorted), payload
// region (cap slots of PS words, unordered; the two L_USED words have a bit
// per used slot, hence cap <= 64).
const L_COUNT = 0;
const L_NEXT = 1; // also the free-list link of a freed leaf
const L_PREV = 2;
const L_USED = 3; // and 4
const L_KEYS = 5;
const K_IH = 0;
const K_IL = 1;
const K_SH = 2;
const K_SL = 3;
const K_SLOT = 4;
const KS = 5;
const P_VH = 0;
const P_VL = 1;
const P_META = 2; // prot | (vaddrInvalid << 31)
const P_H0 = 3; // handle, as the two words of its float64 bits
const P_H1 = 4;
const PS = 5;

// Internal block: [count of children] [fan-1 separator pairs] [fan children].
// Separator i is the lowest key of child i+1's subtree (a lower bound of it).
const N_COUNT = 0; // also the free-list link of a freed node
const N_SEPS = 1;

// The leaf arena is the bulk of the memory; 1.5x keeps the unused tail below
// a third of the arena while the amortised copy cost stays at two per word.
const GROWTH = 1.5;

// 32 keys are 640 bytes of key region, ten cache lines. Of leaf capacities
// 16..64 and fanouts 16..128, none measured clearly better than 32/64 at
// both 1k and 1M; 32 keeps the per-leaf header and the scans short.
export const DEFAULT_LEAF_CAPACITY = 32;
export const DEFAULT_FANOUT = 64;

const b64 = new BigUint64Array(1);
const w32 = new Uint32Array(b64.buffer);
b64[0] = 1n;
const LO = w32[0] === 1 ? 0 : 1;
const HI = 1 - LO;
const f64 = new Float64Array(1);
const f64w = new Uint32Array(f64.buffer);

// bigint -> (hi, lo) costs two range compares and a BigUint64Array store,
// ~50 ns, a tenth of a MAP+UNMAP pair each time. The backend converts the same
// values over and over: vfio_dma_do_map checks [iova, iova+size) and then
// links an entry with that iova and size, unmap finds an entry and removes it
// by its iova, and sizes are mostly the page size. One remembered value per
// role turns those repeats into a single === compare.
// Results come back in cv[CH], cv[CL]: module-level `let`s would box every
// u32 above 2^31 into a fresh HeapNumber on each store.
const cv = new Uint32Array(6);
const CH = 0;
const CL = 1;
const AH = 2;
const AL = 3;
const ZH = 4;
const ZL = 5;
let aKey = 0n;
let zKey = 1n;
cv[ZL] = 1;

// Is x a u64? If so its halves are left in cv[CH], cv[CL].
function addrOk(x: bigint): boolean {
  if (x === aKey) {
    cv[CH] = cv[AH]!;
    cv[CL] = cv[AL]!;
    return true;
  }
  if (!(x >= 0n && x <= MAX)) return false;
  b64[0] = x;
  const h = w32[HI]!;
  const l = w32[LO]!;
  cv[CH] = h;
  cv[AH] = h;
  cv[CL] = l;
  cv[AL] = l;
  aKey = x;
  return true;
}

// Is x in 1..2^64-1? If so its halves are left in cv[CH], cv[CL].
function sizeOk(x: bigint): boolean {
  if (x === zKey) {
    cv[CH] = cv[ZH]!;
    cv[CL] = cv[ZL]!;
    return true;
  }
  if (!(x > 0n && x <= MAX)) return false;
  b64[0] = x;
  const h = w32[HI]!;
  const l = w32[LO]!;
  cv[CH] = h;
  cv[ZH] = h;
  cv[CL] = l;
  cv[ZL] = l;
  zKey = x;
  return true;
}

// The fast paths only test validity; the shared checker produces the error,
// so both implementations report the same one.
function badEntry(e: DmaEntry): never {
  checkEntryFields(e);
  throw new TypeError('dma entry: invalid');
}

// First i in [0, n) whose key >= (kh, kl), or n. Linear on purpose (see the
// top of the file). Ascending, because the hardware prefetcher follows an
// ascending stream on into the lines the insert/remove shift then touches;
// scanning down from the end measured slower at 1M entries.
function lowerBound(lf: Uint32Array, kb: number, n: number, kh: number, kl: number): number {
  let i = 0;
  for (let p = kb; i < n; i++, p += KS) {
    const h = lf[p]!;
    if (h > kh || (h === kh && lf[p + 1]! >= kl)) break;
  }
  return i;
}

function keyBelow(lf: Uint32Array, p: number, qh: number, ql: number): boolean {
  const h = lf[p]!;
  return h < qh || (h === qh && lf[p + 1]! < ql);
}

// iova + size > q, computed exactly: the end may be 2^64, i.e. (2^32, 0).
function endsAfter(lf: Uint32Array, p: number, qh: number, ql: number): boolean {
  let el = lf[p + K_IL]! + lf[p + K_SL]!;
  let eh = lf[p + K_IH]! + lf[p + K_SH]!;
  if (el >= TWO32) {
    el -= TWO32;
    eh += 1;
  }
  return eh > qh || (eh === qh && el > ql);
}

function big(hi: number, lo: number): bigint {
  w32[HI] = hi;
  w32[LO] = lo;
  return b64[0]!;
}

// Claims the lowest free payload slot of the leaf at b (which has one).
function takeSlot(lf: Uint32Array, b: number): number {
  let w = b + L_USED;
  let used = lf[w]!;
  let s = 0;
  if (used === 0xffff_ffff) {
    w++;
    used = lf[w]!;
    s = 32;
  }
  const free = ~used;
  const bit = 31 - Math.clz32(free & -free);
  lf[w] = used | (1 << bit);
  return s + bit;
}

function dropSlot(lf: Uint32Array, b: number, slot: number): void {
  const w = b + L_USED + (slot >>> 5);
  lf[w] = lf[w]! & ~(1 << (slot & 31));
}

export interface DmaTreeStats {
  height: number;
  leaves: number;
  nodes: number;
  // Bytes reserved by the arenas (live blocks, free blocks and growth slack).
  arenaBytes: number;
}

class BTreeDmaTree implements DmaTree {
  private readonly cap: number;
  private readonly lmin: number;
  private readonly lmerge: number;
  private readonly lpay: number;
  private readonly lw: number;
  private readonly fan: number;
  private readonly nmin: number;
  private readonly nmerge: number;
  private readonly nch: number;
  private readonly nw: number;

  private lf = new Uint32Array(0);
  private lfTop = 0;
  private lfFree = NIL;
  private nd = new Uint32Array(0);
  private ndTop = 0;
  private ndFree = NIL;

  private root = 0;
  private height = 0;
  private head = 0;
  private n = 0;
  private version = 0;

  // Finger: leaf fLeaf holds every key k with fLo <= k < fUp. fLoH = -1 and
  // fUpH = 2^32 stand for -inf and +inf, so no extra flag is tested.
  private fLeaf = NIL;
  private fLoH = -1;
  private fLoL = 0;
  private fUpH = TWO32;
  private fUpL = 0;

  // Second result of locate(), before(), at() and splitLeafFor().
  private oBase = 0;

  // Memo of the last locate(): valid while the tree's version is unchanged.
  // findOverlap -> insert and insert -> remove of one iova then search once.
  private mVer = -1;
  private mKH = 0;
  private mKL = 0;
  private mBase = 0;
  private mPos = 0;

  // Filled by descend(): the internal node at each height and the child taken.
  private pathNode = new Uint32Array(32);
  private pathIdx = new Uint32Array(32);
  // Scratch for internal node split/merge/redistribute (rare: once per
  // ~cap/2 leaf splits), where gathering both halves keeps the code simple.
  private readonly sk: Uint32Array;
  private readonly sc: Uint32Array;

  constructor(cap: number, fan: number) {
    if (!Number.isInteger(cap) || cap < 4 || cap > 64)
      throw new RangeError(`leaf capacity ${cap} not in 4..64`);
    if (!Number.isInteger(fan) || fan < 4 || fan > 4096) throw new RangeError(`fanout ${fan} not in 4..4096`);
    this.cap = cap;
    this.lmin = Math.max(1, cap >> 2);
    this.lmerge = (3 * cap) >> 2;
    this.lpay = L_KEYS + KS * cap;
    this.lw = this.lpay + PS * cap;
    this.fan = fan;
    this.nmin = Math.max(2, fan >> 2);
    this.nmerge = (3 * fan) >> 2;
    this.nch = N_SEPS + 2 * (fan - 1);
    this.nw = this.nch + fan;
    this.sk = new Uint32Array(4 * fan);
    this.sc = new Uint32Array(2 * fan);
    this.reset();
  }

  get count(): number {
    return this.n;
  }

  private reset(): void {
    this.lf = new Uint32Array(this.lw);
    this.lfTop = 0;
    this.lfFree = NIL;
    this.nd = new Uint32Array(0);
    this.ndTop = 0;
    this.ndFree = NIL;
    const r = this.newLeaf();
    this.root = r;
    this.head = r;
    this.height = 0;
    this.n = 0;
    this.fLeaf = NIL;
    this.version++;
  }

  // An empty, unlinked leaf. Callers must re-read this.lf afterwards: the
  // arena may have moved.
  private newLeaf(): number {
    let id = this.lfFree;
    if (id !== NIL) {
      this.lfFree = this.lf[id * this.lw + L_NEXT]!;
    } else {
      const lw = this.lw;
      if ((this.lfTop + 1) * lw > this.lf.length) {
        const blocks = this.lf.length / lw;
        const grown = new Uint32Array(Math.max(blocks + 4, Math.ceil(blocks * GROWTH)) * lw);
        grown.set(this.lf);
        this.lf = grown;
      }
      id = this.lfTop++;
    }
    const b = id * this.lw;
    this.lf[b + L_COUNT] = 0;
    this.lf[b + L_NEXT] = NIL;
    this.lf[b + L_PREV] = NIL;
    this.lf[b + L_USED] = 0;
    this.lf[b + L_USED + 1] = 0;
    return id;
  }

  private freeLeaf(id: number): void {
    const b = id * this.lw;
    this.lf[b + L_COUNT] = 0;
    this.lf[b + L_USED] = 0;
    this.lf[b + L_USED + 1] = 0;
    this.lf[b + L_NEXT] = this.lfFree;
    this.lfFree = id;
  }

  // Callers must re-read this.nd afterwards.
  private newNode(): number {
    const id = this.ndFree;
    if (id !== NIL) {
      this.ndFree = this.nd[id * this.nw + N_COUNT]!;
      return id;
    }
    const nw = this.nw;
    if ((this.ndTop + 1) * nw > this.nd.length) {
      const blocks = this.nd.length / nw;
      const grown = new Uint32Array(Math.max(blocks + 4, Math.ceil(blocks * GROWTH)) * nw);
      grown.set(this.nd);
      this.nd = grown;
    }
    return this.ndTop++;
  }

  private freeNode(id: number): void {
    this.nd[id * this.nw + N_COUNT] = this.ndFree;
    this.ndFree = id;
  }

  // Full root-to-leaf walk; records the path and re-aims the finger.
  private descend(kh: number, kl: number): number {
    const nd = this.nd;
    const nw = this.nw;
    const nch = this.nch;
    let id = this.root;
    let loH = -1;
    let loL = 0;
    let upH = TWO32;
    let upL = 0;
    for (let h = this.height; h > 0; h--) {
      const b = id * nw;
      const nc = nd[b + N_COUNT]!;
      // Number of separators <= key, i.e. the child whose range holds key.
      // Linear for the same reason as in leaves.
      let a = 0;
      for (let p = b + N_SEPS, z = nc - 1; a < z; a++, p += 2) {
        const sh = nd[p]!;
        if (sh > kh || (sh === kh && nd[p + 1]! > kl)) break;
      }
      if (a > 0) {
        const p = b + N_SEPS + 2 * (a - 1);
        loH = nd[p]!;
        loL = nd[p + 1]!;
      }
      if (a < nc - 1) {
        const p = b + N_SEPS + 2 * a;
        upH = nd[p]!;
        upL = nd[p + 1]!;
      }
      this.pathNode[h] = id;
      this.pathIdx[h] = a;
      id = nd[b + nch + a]!;
    }
    this.fLeaf = id;
    this.fLoH = loH;
    this.fLoL = loL;
    this.fUpH = upH;
    this.fUpL = upL;
    return id;
  }

  private leafFor(kh: number, kl: number): number {
    const f = this.fLeaf;
    if (f !== NIL) {
      const lh = this.fLoH;
      const uh = this.fUpH;
      if ((kh > lh || (kh === lh && kl >= this.fLoL)) && (kh < uh || (kh === uh && kl < this.fUpL))) return f;
    }
    return this.descend(kh, kl);
  }

  // Position of the first entry >= key (kh, kl) in the leaf whose range
  // holds the key; that leaf's base is left in oBase.
  private locate(kh: number, kl: number): number {
    if (this.mVer === this.version && this.mKL === kl && this.mKH === kh) {
      this.oBase = this.mBase;
      return this.mPos;
    }
    const lf = this.lf;
    const base = this.leafFor(kh, kl) * this.lw;
    const pos = lowerBound(lf, base + L_KEYS, lf[base + L_COUNT]!, kh, kl);
    this.mVer = this.version;
    this.mKH = kh;
    this.mKL = kl;
    this.mBase = base;
    this.mPos = pos;
    this.oBase = base;
    return pos;
  }

  // Key-entry address of the entry just before position pos of the leaf at
  // `base` (possibly the last of the previous leaf), or -1. Its leaf's base
  // is left in oBase.
  private before(base: number, pos: number): number {
    if (pos > 0) {
      this.oBase = base;
      return base + L_KEYS + KS * (pos - 1);
    }
    const lf = this.lf;
    const pv = lf[base + L_PREV]!;
    if (pv === NIL) return -1;
    const pb = pv * this.lw;
    this.oBase = pb;
    return pb + L_KEYS + KS * (lf[pb + L_COUNT]! - 1);
  }

  // Key-entry address of the entry at position pos of the leaf at `base`, or
  // of the first entry of the next leaf if pos is past the end, or -1. Its
  // leaf's base is left in oBase.
  private at(base: number, pos: number): number {
    const lf = this.lf;
    if (pos < lf[base + L_COUNT]!) {
      this.oBase = base;
      return base + L_KEYS + KS * pos;
    }
    const nx = lf[base + L_NEXT]!;
    if (nx === NIL) return -1;
    this.oBase = nx * this.lw;
    return this.oBase + L_KEYS;
  }

  private entryAt(base: number, p: number): DmaEntry {
    const lf = this.lf;
    const q = base + this.lpay + PS * lf[p + K_SLOT]!;
    const iova = big(lf[p + K_IH]!, lf[p + K_IL]!);
    const size = big(lf[p + K_SH]!, lf[p + K_SL]!);
    const vaddr = big(lf[q + P_VH]!, lf[q + P_VL]!);
    const meta = lf[q + P_META]!;
    f64w[0] = lf[q + P_H0]!;
    f64w[1] = lf[q + P_H1]!;
    return { iova, size, vaddr, prot: meta & PMASK, handle: f64[0]!, vaddrInvalid: meta >= INVALID_BIT };
  }

  insert(e: DmaEntry): void {
    const prot = e.prot;
    const handle = e.handle;
    const inv = e.vaddrInvalid;
    if (!addrOk(e.iova)) badEntry(e);
    const kh = cv[CH]!;
    const kl = cv[CL]!;
    if (!sizeOk(e.size)) badEntry(e);
    const sh = cv[CH]!;
    const sl = cv[CL]!;
    const vaddr = e.vaddr;
    if (!(vaddr >= 0n && vaddr <= MAX)) badEntry(e);
    if ((prot & PMASK) !== prot || typeof handle !== 'number' || typeof inv !== 'boolean') badEntry(e);
    let el = kl + sl;
    let eh = kh + sh;
    if (el >= TWO32) {
      el -= TWO32;
      eh += 1;
    }
    if (eh > TWO32 || (eh === TWO32 && el !== 0)) throw endError(e.iova, e.size);

    let pos = this.locate(kh, kl);
    let base = this.oBase;
    let lf = this.lf;
    const n = lf[base + L_COUNT]!;
    const s = this.at(base, pos);
    if (s >= 0 && keyBelow(lf, s, eh, el)) throw overlapError(e.iova, e.size);
    const p = this.before(base, pos);
    if (p >= 0 && endsAfter(lf, p, kh, kl)) throw overlapError(e.iova, e.size);

    if (n === this.cap) {
      pos = this.splitLeafFor(kh, kl, base / this.lw, pos);
      base = this.oBase;
      lf = this.lf;
    }
    const kb = base + L_KEYS;
    const cnt = lf[base + L_COUNT]!;
    const w = kb + KS * pos;
    if (pos < cnt) lf.copyWithin(w + KS, w, kb + KS * cnt);
    lf[base + L_COUNT] = cnt + 1;
    const slot = takeSlot(lf, base);
    lf[w + K_IH] = kh;
    lf[w + K_IL] = kl;
    lf[w + K_SH] = sh;
    lf[w + K_SL] = sl;
    lf[w + K_SLOT] = slot;
    const q = base + this.lpay + PS * slot;
    b64[0] = vaddr;
    lf[q + P_VH] = w32[HI]!;
    lf[q + P_VL] = w32[LO]!;
    lf[q + P_META] = inv ? prot | INVALID_BIT : prot;
    f64[0] = handle;
    lf[q + P_H0] = f64w[0]!;
    lf[q + P_H1] = f64w[1]!;
    this.n++;
    this.mVer = ++this.version;
    this.mBase = base;
    this.mPos = pos;
  }

  // Moves k entries from position si of the leaf at sb to position di of the
  // leaf at db (whose key region must already have room there), carrying
  // their payloads into free slots of the destination.
  private transfer(sb: number, si: number, db: number, di: number, k: number): void {
    const lf = this.lf;
    const lpay = this.lpay;
    for (let t = 0; t < k; t++) {
      const sp = sb + L_KEYS + KS * (si + t);
      const dp = db + L_KEYS + KS * (di + t);
      const ss = lf[sp + K_SLOT]!;
      const ds = takeSlot(lf, db);
      dropSlot(lf, sb, ss);
      lf[dp + K_IH] = lf[sp + K_IH]!;
      lf[dp + K_IL] = lf[sp + K_IL]!;
      lf[dp + K_SH] = lf[sp + K_SH]!;
      lf[dp + K_SL] = lf[sp + K_SL]!;
      lf[dp + K_SLOT] = ds;
      lf.copyWithin(db + lpay + PS * ds, sb + lpay + PS * ss, sb + lpay + PS * (ss + 1));
    }
  }

  // Splits the full `leaf`, where key (kh, kl) belongs at position pos.
  // Returns the position it now belongs at, in the leaf whose base is left
  // in oBase; that leaf has room.
  private splitLeafFor(kh: number, kl: number, leaf: number, pos: number): number {
    this.descend(kh, kl);
    this.fLeaf = NIL;
    const r = this.newLeaf();
    const lf = this.lf;
    const lw = this.lw;
    const cap = this.cap;
    const base = leaf * lw;
    const rb = r * lw;
    const next = lf[base + L_NEXT]!;
    const m = pos === cap && next === NIL ? cap : cap >> 1;
    this.transfer(base, m, rb, 0, cap - m);
    lf[base + L_COUNT] = m;
    lf[rb + L_COUNT] = cap - m;
    lf[rb + L_NEXT] = next;
    lf[rb + L_PREV] = leaf;
    lf[base + L_NEXT] = r;
    if (next !== NIL) lf[next * lw + L_PREV] = r;
    let at: number;
    let sepH: number;
    let sepL: number;
    if (pos < m) {
      this.oBase = base;
      at = pos;
      sepH = lf[rb + L_KEYS + K_IH]!;
      sepL = lf[rb + L_KEYS + K_IL]!;
    } else {
      this.oBase = rb;
      at = pos - m;
      // The new key becomes the right leaf's first when it lands at 0.
      sepH = at === 0 ? kh : lf[rb + L_KEYS + K_IH]!;
      sepL = at === 0 ? kl : lf[rb + L_KEYS + K_IL]!;
    }
    this.insertInParent(1, sepH, sepL, r);
    return at;
  }

  // Copies node `id`'s c children and c-1 separators into the scratch,
  // starting at child index `at` (separator j sits between children j, j+1).
  private gather(id: number, c: number, at: number): void {
    const nd = this.nd;
    const b = id * this.nw;
    const sk = this.sk;
    const sc = this.sc;
    for (let j = 0; j < c - 1; j++) {
      sk[2 * (at + j)] = nd[b + N_SEPS + 2 * j]!;
      sk[2 * (at + j) + 1] = nd[b + N_SEPS + 2 * j + 1]!;
    }
    for (let j = 0; j < c; j++) sc[at + j] = nd[b + this.nch + j]!;
  }

  // Writes scratch children [from, from+c) and the separators between them
  // into node `id`.
  private scatter(id: number, from: number, c: number): void {
    const nd = this.nd;
    const b = id * this.nw;
    const sk = this.sk;
    const sc = this.sc;
    nd[b + N_COUNT] = c;
    for (let j = 0; j < c - 1; j++) {
      nd[b + N_SEPS + 2 * j] = sk[2 * (from + j)]!;
      nd[b + N_SEPS + 2 * j + 1] = sk[2 * (from + j) + 1]!;
    }
    for (let j = 0; j < c; j++) nd[b + this.nch + j] = sc[from + j]!;
  }

  // Adds `child` right after the child taken at height h on the recorded
  // path, with separator (sh, sl) between them; splits upwards as needed.
  private insertInParent(h: number, sh: number, sl: number, child: number): void {
    if (h > this.height) {
      const r = this.newNode();
      const nd = this.nd;
      const b = r * this.nw;
      nd[b + N_COUNT] = 2;
      nd[b + N_SEPS] = sh;
      nd[b + N_SEPS + 1] = sl;
      nd[b + this.nch] = this.root;
      nd[b + this.nch + 1] = child;
      this.root = r;
      this.height = h;
      if (h + 1 >= this.pathNode.length) {
        const pn = new Uint32Array(2 * this.pathNode.length);
        pn.set(this.pathNode);
        this.pathNode = pn;
        const pi = new Uint32Array(2 * this.pathIdx.length);
        pi.set(this.pathIdx);
        this.pathIdx = pi;
      }
      return;
    }
    const node = this.pathNode[h]!;
    const idx = this.pathIdx[h]!;
    const nd = this.nd;
    const b = node * this.nw;
    const c = nd[b + N_COUNT]!;
    if (c < this.fan) {
      const sp = b + N_SEPS + 2 * idx;
      nd.copyWithin(sp + 2, sp, b + N_SEPS + 2 * (c - 1));
      nd[sp] = sh;
      nd[sp + 1] = sl;
      const cp = b + this.nch + idx + 1;
      nd.copyWithin(cp + 1, cp, b + this.nch + c);
      nd[cp] = child;
      nd[b + N_COUNT] = c + 1;
      return;
    }
    const sk = this.sk;
    const sc = this.sc;
    this.gather(node, c, 0);
    // Open slot idx+1 for the new child and separator slot idx for its key.
    for (let j = c - 1; j > idx; j--) {
      sk[2 * j] = sk[2 * (j - 1)]!;
      sk[2 * j + 1] = sk[2 * (j - 1) + 1]!;
    }
    sk[2 * idx] = sh;
    sk[2 * idx + 1] = sl;
    for (let j = c; j > idx + 1; j--) sc[j] = sc[j - 1]!;
    sc[idx + 1] = child;
    const total = c + 1;
    const keep = total >> 1;
    const r = this.newNode();
    this.scatter(node, 0, keep);
    this.scatter(r, keep, total - keep);
    this.insertInParent(h + 1, sk[2 * (keep - 1)]!, sk[2 * (keep - 1) + 1]!, r);
  }

  remove(iova: bigint): boolean {
    if (!addrOk(iova)) return false;
    const kh = cv[CH]!;
    const kl = cv[CL]!;
    const pos = this.locate(kh, kl);
    const base = this.oBase;
    const lf = this.lf;
    const kb = base + L_KEYS;
    const n = lf[base + L_COUNT]!;
    if (pos === n) return false;
    const w = kb + KS * pos;
    if (lf[w + K_IH] !== kh || lf[w + K_IL] !== kl) return false;
    dropSlot(lf, base, lf[w + K_SLOT]!);
    if (pos + 1 < n) lf.copyWithin(w, w + KS, kb + KS * n);
    lf[base + L_COUNT] = n - 1;
    this.n--;
    this.version++;
    if (n - 1 < this.lmin && this.height > 0) this.rebalanceLeaf(kh, kl);
    return true;
  }

  // The leaf holding key (kh, kl)'s range fell below lmin: merge it with a
  // sibling, or even out the two if together they would be too full.
  private rebalanceLeaf(kh: number, kl: number): void {
    const leaf = this.descend(kh, kl);
    this.fLeaf = NIL;
    const nd = this.nd;
    const parent = this.pathNode[1]!;
    const idx = this.pathIdx[1]!;
    const pb = parent * this.nw;
    let left: number;
    let right: number;
    let sep: number;
    if (idx > 0) {
      left = nd[pb + this.nch + idx - 1]!;
      right = leaf;
      sep = idx - 1;
    } else {
      left = leaf;
      right = nd[pb + this.nch + 1]!;
      sep = 0;
    }
    const lf = this.lf;
    const lw = this.lw;
    const lb = left * lw;
    const rb = right * lw;
    const nl = lf[lb + L_COUNT]!;
    const nr = lf[rb + L_COUNT]!;
    const rk = rb + L_KEYS;
    if (nl + nr <= this.lmerge) {
      this.transfer(rb, 0, lb, nl, nr);
      lf[lb + L_COUNT] = nl + nr;
      const nx = lf[rb + L_NEXT]!;
      lf[lb + L_NEXT] = nx;
      if (nx !== NIL) lf[nx * lw + L_PREV] = left;
      this.freeLeaf(right);
      this.removeFromNode(1, sep);
      return;
    }
    const total = nl + nr;
    const keep = total >> 1;
    if (nl > keep) {
      const k = nl - keep;
      lf.copyWithin(rk + KS * k, rk, rk + KS * nr);
      this.transfer(lb, keep, rb, 0, k);
    } else {
      const k = keep - nl;
      this.transfer(rb, 0, lb, nl, k);
      lf.copyWithin(rk, rk + KS * k, rk + KS * nr);
    }
    lf[lb + L_COUNT] = keep;
    lf[rb + L_COUNT] = total - keep;
    nd[pb + N_SEPS + 2 * sep] = lf[rk + K_IH]!;
    nd[pb + N_SEPS + 2 * sep + 1] = lf[rk + K_IL]!;
  }

  // Drops separator `sep` and child sep+1 from the node at height h of the
  // recorded path, then fixes its underflow the same way as for leaves.
  private removeFromNode(h: number, sep: number): void {
    const nd = this.nd;
    const nw = this.nw;
    const nch = this.nch;
    const node = this.pathNode[h]!;
    const b = node * nw;
    const c = nd[b + N_COUNT]!;
    nd.copyWithin(b + N_SEPS + 2 * sep, b + N_SEPS + 2 * (sep + 1), b + N_SEPS + 2 * (c - 1));
    nd.copyWithin(b + nch + sep + 1, b + nch + sep + 2, b + nch + c);
    nd[b + N_COUNT] = c - 1;
    if (h === this.height) {
      if (c - 1 === 1) {
        this.root = nd[b + nch]!;
        this.height--;
        this.freeNode(node);
      }
      return;
    }
    if (c - 1 >= this.nmin) return;
    const parent = this.pathNode[h + 1]!;
    const idx = this.pathIdx[h + 1]!;
    const pb = parent * nw;
    let left: number;
    let right: number;
    let psep: number;
    if (idx > 0) {
      left = nd[pb + nch + idx - 1]!;
      right = node;
      psep = idx - 1;
    } else {
      left = node;
      right = nd[pb + nch + 1]!;
      psep = 0;
    }
    const cl = nd[left * nw + N_COUNT]!;
    const cr = nd[right * nw + N_COUNT]!;
    const sk = this.sk;
    this.gather(left, cl, 0);
    sk[2 * (cl - 1)] = nd[pb + N_SEPS + 2 * psep]!;
    sk[2 * (cl - 1) + 1] = nd[pb + N_SEPS + 2 * psep + 1]!;
    this.gather(right, cr, cl);
    const total = cl + cr;
    if (total <= this.nmerge) {
      this.scatter(left, 0, total);
      this.freeNode(right);
      this.removeFromNode(h + 1, psep);
      return;
    }
    const keep = total >> 1;
    this.scatter(left, 0, keep);
    this.scatter(right, keep, total - keep);
    nd[pb + N_SEPS + 2 * psep] = sk[2 * (keep - 1)]!;
    nd[pb + N_SEPS + 2 * psep + 1] = sk[2 * (keep - 1) + 1]!;
  }

  get(iova: bigint): DmaEntry | undefined {
    if (!addrOk(iova)) return undefined;
    const kh = cv[CH]!;
    const kl = cv[CL]!;
    const pos = this.locate(kh, kl);
    const base = this.oBase;
    const lf = this.lf;
    if (pos === lf[base + L_COUNT]) return undefined;
    const w = base + L_KEYS + KS * pos;
    return lf[w + K_IH] === kh && lf[w + K_IL] === kl ? this.entryAt(base, w) : undefined;
  }

  findOverlap(start: bigint, size: bigint): DmaEntry | undefined {
    let sh: number;
    let sl: number;
    let eh: number;
    let el: number;
    if (sizeOk(size) && addrOk(start)) {
      sh = cv[CH]!;
      sl = cv[CL]!;
      // sizeOk's halves are still in its cache slot.
      eh = sh + cv[ZH]!;
      el = sl + cv[ZL]!;
      if (el >= TWO32) {
        el -= TWO32;
        eh += 1;
      }
    } else {
      if (!(size > 0n)) throw sizeError(size);
      // Out-of-ABI arguments: clip the interval to [0, 2^64) in bigint.
      const s = start < 0n ? 0n : start;
      let e = start + size;
      if (e > LIMIT) e = LIMIT;
      if (s > MAX || e <= s) return undefined;
      b64[0] = s;
      sh = w32[HI]!;
      sl = w32[LO]!;
      if (e === LIMIT) {
        eh = TWO32;
        el = 0;
      } else {
        b64[0] = e;
        eh = w32[HI]!;
        el = w32[LO]!;
      }
    }
    const pos = this.locate(sh, sl);
    const base = this.oBase;
    const lf = this.lf;
    // Mappings do not overlap, so only the predecessor can reach over start,
    // and if it does it is the lowest overlapping one.
    const p = this.before(base, pos);
    if (p >= 0 && endsAfter(lf, p, sh, sl)) return this.entryAt(this.oBase, p);
    const s = this.at(base, pos);
    if (s >= 0 && keyBelow(lf, s, eh, el)) return this.entryAt(this.oBase, s);
    return undefined;
  }

  findContaining(addr: bigint): DmaEntry | undefined {
    if (!addrOk(addr)) return undefined;
    const kh = cv[CH]!;
    const kl = cv[CL]!;
    const pos = this.locate(kh, kl);
    const base = this.oBase;
    const lf = this.lf;
    if (pos < lf[base + L_COUNT]!) {
      const w = base + L_KEYS + KS * pos;
      if (lf[w + K_IH] === kh && lf[w + K_IL] === kl) return this.entryAt(base, w);
    }
    const p = this.before(base, pos);
    return p >= 0 && endsAfter(lf, p, kh, kl) ? this.entryAt(this.oBase, p) : undefined;
  }

  firstAtOrAfter(start: bigint): DmaEntry | undefined {
    if (!addrOk(start < 0n ? 0n : start)) return undefined;
    const kh = cv[CH]!;
    const kl = cv[CL]!;
    const lf = this.lf;
    const base = this.leafFor(kh, kl) * this.lw;
    const w = this.at(base, lowerBound(lf, base + L_KEYS, lf[base + L_COUNT]!, kh, kl));
    return w >= 0 ? this.entryAt(this.oBase, w) : undefined;
  }

  update(iova: bigint, patch: DmaPatch): void {
    if (!addrOk(iova)) throw missingError(iova);
    const kh = cv[CH]!;
    const kl = cv[CL]!;
    const pos = this.locate(kh, kl);
    const base = this.oBase;
    const lf = this.lf;
    const w = base + L_KEYS + KS * pos;
    if (pos === lf[base + L_COUNT] || lf[w + K_IH] !== kh || lf[w + K_IL] !== kl) throw missingError(iova);
    checkPatchFields(patch);
    const { vaddr, size, prot, handle, vaddrInvalid } = patch;
    // Everything is checked before anything is written, so a throw leaves
    // the entry as it was.
    if (size !== undefined) {
      sizeOk(size);
      const zh = cv[CH]!;
      const zl = cv[CL]!;
      let el = kl + zl;
      let eh = kh + zh;
      if (el >= TWO32) {
        el -= TWO32;
        eh += 1;
      }
      if (eh > TWO32 || (eh === TWO32 && el !== 0)) throw endError(iova, size);
      const s = this.at(base, pos + 1);
      if (s >= 0 && keyBelow(lf, s, eh, el)) throw overlapError(iova, size);
      lf[w + K_SH] = zh;
      lf[w + K_SL] = zl;
    }
    const q = base + this.lpay + PS * lf[w + K_SLOT]!;
    if (vaddr !== undefined) {
      b64[0] = vaddr;
      lf[q + P_VH] = w32[HI]!;
      lf[q + P_VL] = w32[LO]!;
    }
    if (prot !== undefined || vaddrInvalid !== undefined) {
      const m = lf[q + P_META]!;
      const pr = prot ?? m & PMASK;
      const inv = vaddrInvalid ?? m >= INVALID_BIT;
      lf[q + P_META] = inv ? pr | INVALID_BIT : pr;
    }
    if (handle !== undefined) {
      f64[0] = handle;
      lf[q + P_H0] = f64w[0]!;
      lf[q + P_H1] = f64w[1]!;
    }
    this.version++;
  }

  forEach(fn: (e: DmaEntry) => void): void {
    const v = this.version;
    for (let leaf = this.head; leaf !== NIL; ) {
      const b = leaf * this.lw;
      const n = this.lf[b + L_COUNT]!;
      for (let i = 0; i < n; i++) {
        fn(this.entryAt(b, b + L_KEYS + KS * i));
        if (this.version !== v) throw mutationError();
      }
      leaf = this.lf[b + L_NEXT]!;
    }
  }

  range(start: bigint, end: bigint): DmaEntry[] {
    const out: DmaEntry[] = [];
    if (!(end > start) || end <= 0n) return out;
    if (!addrOk(start < 0n ? 0n : start)) return out;
    const sh = cv[CH]!;
    const sl = cv[CL]!;
    let eh = TWO32;
    let el = 0;
    if (end < LIMIT) {
      b64[0] = end;
      eh = w32[HI]!;
      el = w32[LO]!;
    }
    const lf = this.lf;
    const lw = this.lw;
    let leaf = this.leafFor(sh, sl);
    let i = lowerBound(lf, leaf * lw + L_KEYS, lf[leaf * lw + L_COUNT]!, sh, sl);
    // The predecessor starts below start < end, so it is in iff it reaches start.
    const p = this.before(leaf * lw, i);
    if (p >= 0 && endsAfter(lf, p, sh, sl)) out.push(this.entryAt(this.oBase, p));
    for (;;) {
      const b = leaf * lw;
      const n = lf[b + L_COUNT]!;
      for (; i < n; i++) {
        const w = b + L_KEYS + KS * i;
        if (!keyBelow(lf, w, eh, el)) return out;
        out.push(this.entryAt(b, w));
      }
      leaf = lf[b + L_NEXT]!;
      if (leaf === NIL) return out;
      i = 0;
    }
  }

  clear(): void {
    this.reset();
  }

  stats(): DmaTreeStats {
    let leaves = 0;
    for (let l = this.head; l !== NIL; l = this.lf[l * this.lw + L_NEXT]!) leaves++;
    let nodes = 0;
    const walk = (id: number, h: number): void => {
      if (h === 0) return;
      nodes++;
      const b = id * this.nw;
      const c = this.nd[b + N_COUNT]!;
      for (let j = 0; j < c; j++) walk(this.nd[b + this.nch + j]!, h - 1);
    };
    walk(this.root, this.height);
    return { height: this.height, leaves, nodes, arenaBytes: this.lf.byteLength + this.nd.byteLength };
  }

  // Throws if any structural invariant is broken. For tests; O(n).
  checkInvariants(): void {
    const fail = (why: string): never => {
      throw new Error(`dma tree invariant: ${why}`);
    };
    const lf = this.lf;
    const nd = this.nd;
    const key = (hi: number, lo: number): bigint => (BigInt(hi) << 32n) | BigInt(lo);
    const leaves: number[] = [];
    let entries = 0;
    let prevEnd = -1n;
    let prevKey = -1n;
    const walk = (
      id: number,
      h: number,
      lo: bigint,
      hi: bigint,
      isRoot: boolean,
      rightmost: boolean,
    ): void => {
      if (h === 0) {
        const b = id * this.lw;
        const n = lf[b + L_COUNT]!;
        if (n > this.cap) fail(`leaf ${id} holds ${n} > ${this.cap}`);
        if (!isRoot && n < (rightmost ? 1 : this.lmin)) fail(`leaf ${id} holds ${n} entries`);
        const slots = [0, 0];
        for (let i = 0; i < n; i++) {
          const w = b + L_KEYS + KS * i;
          const k = key(lf[w + K_IH]!, lf[w + K_IL]!);
          const z = key(lf[w + K_SH]!, lf[w + K_SL]!);
          if (k < lo || k >= hi) fail(`key ${k} outside its leaf range [${lo}, ${hi})`);
          if (k <= prevKey) fail(`keys not ascending at ${k}`);
          if (k < prevEnd) fail(`entry at ${k} overlaps the previous one`);
          if (z === 0n || k + z > LIMIT) fail(`entry at ${k} has size ${z}`);
          const slot = lf[w + K_SLOT]!;
          const bit = 1 << (slot & 31);
          if (slot >= this.cap || slots[slot >>> 5]! & bit)
            fail(`entry at ${k} has bad payload slot ${slot}`);
          slots[slot >>> 5] = (slots[slot >>> 5]! | bit) >>> 0;
          prevKey = k;
          prevEnd = k + z;
        }
        if (slots[0] !== lf[b + L_USED] || slots[1] !== lf[b + L_USED + 1]) fail(`leaf ${id} slot mask`);
        entries += n;
        leaves.push(id);
        return;
      }
      const b = id * this.nw;
      const c = nd[b + N_COUNT]!;
      if (c > this.fan) fail(`node ${id} has ${c} > ${this.fan} children`);
      if (c < (isRoot ? 2 : this.nmin)) fail(`node ${id} has ${c} children`);
      let clo = lo;
      for (let j = 0; j < c; j++) {
        const chi = j < c - 1 ? key(nd[b + N_SEPS + 2 * j]!, nd[b + N_SEPS + 2 * j + 1]!) : hi;
        if (chi <= clo && j < c - 1) fail(`node ${id} separators not ascending`);
        walk(nd[b + this.nch + j]!, h - 1, clo, chi, false, rightmost && j === c - 1);
        clo = chi;
      }
    };
    walk(this.root, this.height, 0n, LIMIT + 1n, true, true);
    if (entries !== this.n) fail(`count ${this.n} but ${entries} entries`);
    if (leaves[0] !== this.head) fail('head is not the leftmost leaf');
    for (let i = 0; i < leaves.length; i++) {
      const b = leaves[i]! * this.lw;
      if (lf[b + L_NEXT] !== (leaves[i + 1] ?? NIL)) fail(`leaf ${leaves[i]} next link`);
      if (lf[b + L_PREV] !== (i > 0 ? leaves[i - 1]! : NIL)) fail(`leaf ${leaves[i]} prev link`);
    }
    if (this.fLeaf !== NIL) {
      const f = [this.fLeaf, this.fLoH, this.fLoL, this.fUpH, this.fUpL];
      this.descend(Math.max(0, this.fLoH), this.fLoL);
      const g = [this.fLeaf, this.fLoH, this.fLoL, this.fUpH, this.fUpL];
      if (f.join() !== g.join()) fail(`stale finger ${f.join()} vs ${g.join()}`);
    }
  }
}

export function createDmaTree(): DmaTree {
  return new BTreeDmaTree(DEFAULT_LEAF_CAPACITY, DEFAULT_FANOUT);
}

// Small orders make every split, merge and redistribution path reachable
// with a few hundred entries; for tests and benchmarks.
export function createDmaTreeWithOrder(leafCapacity: number, fanout: number): DmaTree {
  return new BTreeDmaTree(leafCapacity, fanout);
}

export function checkDmaTreeInvariants(t: DmaTree): void {
  if (t instanceof BTreeDmaTree) t.checkInvariants();
}

export function dmaTreeStats(t: DmaTree): DmaTreeStats | undefined {
  return t instanceof BTreeDmaTree ? t.stats() : undefined;
}
