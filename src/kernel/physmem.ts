/*
 * Physical memory. Anonymous memory is allocated as PhysObjects: runs of
 * physically contiguous pages with a physical base address, backed by
 * lazily allocated chunks (an untouched chunk costs nothing and reads as
 * zeros). Pinning (get_user_pages) counts references per page; an object
 * outlives its mappings while any page is pinned, as a page does when a
 * device still holds it.
 */
/* large enough that one mapping is one zero-copy run; untouched memory costs nothing (calloc) */
const CHUNK_BYTES = 1 << 30;
/* below this a byte loop beats subarray() + set(): ioctl arguments are a few dozen bytes */
const SMALL_COPY = 64;
/* where physical allocations start: above the 32-bit hole, like RAM above 4 GiB */
const PHYS_BASE = 0x1_0000_0000;

/*
 * Small aligned copies go word by word (a quarter of the byte loop's
 * iterations). The Int32Array over the caller's array is cached for the
 * last array seen: ioctl arguments come and go through the same scratch.
 * A cache only (no machine state), so sharing it between hosts is harmless.
 */
let lastArr: Uint8Array | undefined;
let lastWords: Int32Array = new Int32Array(0);
/* lastArr.byteOffset / 4, or -1 when it is not a multiple of 4 */
let lastWordOff = -1;

/* b's words starting at byte off, or -1 when a word copy of [off, off+len) cannot be done */
function wordStart(b: Uint8Array, off: number, len: number): number {
  if (len < 16 || len > SMALL_COPY || off < 0 || off + len > b.length || (off | len) % 4 !== 0) return -1;
  if (b !== lastArr) {
    const buf = b.buffer;
    lastWords = new Int32Array(buf, 0, buf.byteLength >>> 2);
    lastWordOff = b.byteOffset % 4 === 0 ? b.byteOffset >>> 2 : -1;
    lastArr = b;
  }
  return lastWordOff < 0 ? -1 : lastWordOff + (off >>> 2);
}

export class PhysObject {
  readonly chunkBytes: number;
  private readonly chunks: (Uint8Array | undefined)[];
  /** an Int32Array over each chunk, made on the first word copy */
  private readonly chunkWords: (Int32Array | undefined)[] = [];
  pins: Uint32Array | undefined;
  dirty: Uint8Array | undefined;
  totalPins = 0;
  /** VMAs that map this object */
  mapcount = 0;
  freed = false;

  constructor(
    readonly phys: number,
    readonly size: number,
    readonly pageSize: number,
  ) {
    this.chunkBytes = Math.min(size, CHUNK_BYTES);
    this.chunks = new Array(Math.ceil(size / this.chunkBytes)).fill(undefined);
  }

  get npages(): number {
    return this.size / this.pageSize;
  }

  private chunk(i: number, alloc: boolean): Uint8Array | undefined {
    let c = this.chunks[i];
    if (c === undefined && alloc) {
      c = new Uint8Array(Math.min(this.chunkBytes, this.size - i * this.chunkBytes));
      this.chunks[i] = c;
    }
    return c;
  }

  private wordsOfChunk(ci: number, c: Uint8Array): Int32Array {
    let w = this.chunkWords[ci];
    if (w === undefined) {
      w = new Int32Array(c.buffer, c.byteOffset, c.length >>> 2);
      this.chunkWords[ci] = w;
    }
    return w;
  }

  /** copy out [off, off+len) into dst at dstOff */
  readInto(off: number, dst: Uint8Array, dstOff: number, len: number): void {
    const to = off % 4 === 0 ? wordStart(dst, dstOff, len) : -1;
    if (to >= 0) {
      const ci = Math.floor(off / this.chunkBytes);
      const co = off - ci * this.chunkBytes;
      const c = this.chunk(ci, false);
      if (c !== undefined && co + len <= c.length) {
        const w = this.wordsOfChunk(ci, c);
        const d = lastWords;
        const from = co >>> 2;
        const n = len >>> 2;
        for (let i = 0; i < n; i++) d[to + i] = w[from + i] as number;
        return;
      }
    }
    while (len > 0) {
      const ci = Math.floor(off / this.chunkBytes);
      const co = off - ci * this.chunkBytes;
      const n = Math.min(len, this.chunkBytes - co);
      const c = this.chunk(ci, false);
      if (c === undefined) dst.fill(0, dstOff, dstOff + n);
      else if (n <= SMALL_COPY) for (let i = 0; i < n; i++) dst[dstOff + i] = c[co + i] as number;
      else dst.set(c.subarray(co, co + n), dstOff);
      off += n;
      dstOff += n;
      len -= n;
    }
  }

  writeFrom(off: number, src: Uint8Array, srcOff: number, len: number): void {
    const from = off % 4 === 0 ? wordStart(src, srcOff, len) : -1;
    if (from >= 0) {
      const ci = Math.floor(off / this.chunkBytes);
      const co = off - ci * this.chunkBytes;
      const c = this.chunk(ci, true) as Uint8Array;
      if (co + len <= c.length) {
        const w = this.wordsOfChunk(ci, c);
        const s = lastWords;
        const to = co >>> 2;
        const n = len >>> 2;
        for (let i = 0; i < n; i++) w[to + i] = s[from + i] as number;
        return;
      }
    }
    while (len > 0) {
      const ci = Math.floor(off / this.chunkBytes);
      const co = off - ci * this.chunkBytes;
      const n = Math.min(len, this.chunkBytes - co);
      const c = this.chunk(ci, true) as Uint8Array;
      if (n <= SMALL_COPY) for (let i = 0; i < n; i++) c[co + i] = src[srcOff + i] as number;
      else c.set(src.subarray(srcOff, srcOff + n), co);
      off += n;
      srcOff += n;
      len -= n;
    }
  }

  /** a zero-copy view when [off, off+len) lies in one chunk */
  view(off: number, len: number): Uint8Array | undefined {
    const ci = Math.floor(off / this.chunkBytes);
    const co = off - ci * this.chunkBytes;
    if (co + len > this.chunkBytes) return undefined;
    const c = this.chunk(ci, true);
    return c?.subarray(co, co + len);
  }

  pin(page: number): void {
    if (this.pins === undefined) this.pins = new Uint32Array(this.npages);
    this.pins[page] = (this.pins[page] ?? 0) + 1;
    this.totalPins++;
  }

  unpin(page: number, dirty: boolean): void {
    const p = this.pins;
    const n = p?.[page] ?? 0;
    if (p === undefined || n === 0) throw new Error('put_page on a page that is not pinned');
    p[page] = n - 1;
    this.totalPins--;
    if (dirty) {
      if (this.dirty === undefined) this.dirty = new Uint8Array(this.npages);
      this.dirty[page] = 1;
    }
  }

  pinCount(page: number): number {
    return this.pins?.[page] ?? 0;
  }

  isDirty(page: number): boolean {
    return (this.dirty?.[page] ?? 0) !== 0;
  }
}

export class PhysicalMemory {
  private objects: PhysObject[] = [];
  private next = PHYS_BASE;
  /** called when an object is allocated / freed (for object accounting) */
  onAlloc: (o: PhysObject) => void = () => {};
  onFree: (o: PhysObject) => void = () => {};

  alloc(size: number, pageSize: number): PhysObject {
    /* align bases generously and leave a gap: two objects are never contiguous */
    const align = Math.max(pageSize, 2 << 20);
    const base = Math.ceil(this.next / align) * align;
    const o = new PhysObject(base, size, pageSize);
    this.next = base + size + align;
    this.objects.push(o);
    this.onAlloc(o);
    return o;
  }

  /** free the object once nothing maps or pins it */
  maybeFree(o: PhysObject): void {
    if (o.freed || o.mapcount > 0 || o.totalPins > 0) return;
    o.freed = true;
    const i = this.indexOf(o.phys);
    if (i >= 0 && this.objects[i] === o) this.objects.splice(i, 1);
    this.onFree(o);
  }

  get liveObjects(): number {
    return this.objects.length;
  }

  private indexOf(phys: number): number {
    let lo = 0;
    let hi = this.objects.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const o = this.objects[mid];
      if (o === undefined) break;
      if (phys < o.phys) hi = mid - 1;
      else if (phys >= o.phys + o.size) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  lookup(phys: number): PhysObject | undefined {
    const i = this.indexOf(phys);
    return i < 0 ? undefined : this.objects[i];
  }

  /** read physical memory; false if any byte is not RAM */
  read(phys: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): boolean {
    while (len > 0) {
      const o = this.lookup(phys);
      if (o === undefined) return false;
      const off = phys - o.phys;
      const n = Math.min(len, o.size - off);
      o.readInto(off, dst, dstOff, n);
      phys += n;
      dstOff += n;
      len -= n;
    }
    return true;
  }

  write(phys: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): boolean {
    while (len > 0) {
      const o = this.lookup(phys);
      if (o === undefined) return false;
      const off = phys - o.phys;
      const n = Math.min(len, o.size - off);
      o.writeFrom(off, src, srcOff, n);
      phys += n;
      srcOff += n;
      len -= n;
    }
    return true;
  }

  /** zero-copy view of [phys, phys+len) when it lies in one chunk of one object */
  view(phys: number, len: number): Uint8Array | undefined {
    const o = this.lookup(phys);
    if (o === undefined || phys - o.phys + len > o.size) return undefined;
    return o.view(phys - o.phys, len);
  }
}
