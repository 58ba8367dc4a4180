import { VFIO_SPAPR_TCE_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU } from '../uapi/index.ts';
import type { IovaRange } from './caps.ts';
import type { VfioContainer } from './container.ts';
import { hex } from './error.ts';

/* A free interval [start, end): exclusive end, unlike the kernel's ranges. */
interface Span {
  start: bigint;
  end: bigint;
}

const U64_MAX = (1n << 64n) - 1n;
/** sPAPR's IOMMU page (it_page_shift 12) */
const TCE_PAGE = 4096n;

const alignUp = (v: bigint, a: bigint): bigint => ((v + a - 1n) / a) * a;

/**
 * A first-fit IOVA allocator over the ranges a container may map (type1's
 * IOVA_RANGE capability, sPAPR's DMA window). Sizes round up to the
 * allocator's alignment, the container's smallest IOMMU page. Plain
 * bookkeeping: nothing is mapped here.
 */
export class IovaAllocator {
  private spans: Span[];
  private readonly used = new Map<bigint, bigint>();

  /**
   * @param ranges where IOVAs may lie (inclusive ends, as the kernel reports them)
   * @param align  alignment and size granule (a power of two)
   */
  constructor(
    ranges: readonly IovaRange[],
    readonly align = 4096n,
  ) {
    if (align <= 0n || (align & (align - 1n)) !== 0n)
      throw new RangeError(`alignment ${align} is not a power of two`);
    const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.spans = [];
    for (const r of sorted) {
      if (r.end < r.start)
        throw new RangeError(`IOVA range ${hex(r.start)}-${hex(r.end)} ends before it starts`);
      const start = alignUp(r.start, align);
      const end = ((r.end + 1n) / align) * align;
      if (end > start) this.insert({ start, end });
    }
  }

  /**
   * The allocator for what a container may map: the type1 IOVA ranges
   * when the kernel reports them (else the whole 64-bit space), or the
   * sPAPR 32-bit DMA window; aligned to the smallest IOMMU page.
   */
  static forContainer(c: VfioContainer): IovaAllocator {
    if (c.iommuType === VFIO_SPAPR_TCE_IOMMU || c.iommuType === VFIO_SPAPR_TCE_v2_IOMMU) {
      const w = c.spaprInfo();
      const start = BigInt(w.dma32WindowStart);
      return new IovaAllocator([{ start, end: start + BigInt(w.dma32WindowSize) - 1n }], TCE_PAGE);
    }
    const info = c.iommuInfo();
    const ranges = info.iovaRanges ?? [{ start: 0n, end: U64_MAX }];
    return new IovaAllocator(ranges, info.minPageSize > 0n ? info.minPageSize : 4096n);
  }

  /** size rounded up to the granule */
  roundUp(size: bigint): bigint {
    return alignUp(size, this.align);
  }

  /**
   * The lowest free IOVA for `size` bytes aligned to `align` (at least the
   * allocator's alignment) and ending at or below `below` (a device's DMA
   * mask + 1, say). Throws RangeError when nothing fits.
   */
  alloc(size: bigint, opts: { align?: bigint; below?: bigint } = {}): bigint {
    if (size <= 0n) throw new RangeError(`cannot allocate ${size} bytes of IOVA`);
    const len = this.roundUp(size);
    const a = opts.align !== undefined && opts.align > this.align ? opts.align : this.align;
    const limit = opts.below ?? U64_MAX + 1n;
    for (const s of this.spans) {
      const start = alignUp(s.start, a);
      if (start + len <= s.end && start + len <= limit) {
        this.take(start, len);
        return start;
      }
      if (s.start >= limit) break;
    }
    throw new RangeError(
      `no free IOVA range of ${hex(len)} bytes${opts.below !== undefined ? ` below ${hex(limit)}` : ''}`,
    );
  }

  /** Take exactly [iova, iova+size) (rounded up); throws RangeError unless all of it is free. */
  reserve(iova: bigint, size: bigint): void {
    const len = this.roundUp(size);
    if (iova % this.align !== 0n) throw new RangeError(`IOVA ${hex(iova)} is not ${hex(this.align)}-aligned`);
    if (len <= 0n) throw new RangeError(`cannot reserve ${size} bytes of IOVA`);
    const s = this.spans.find((x) => x.start <= iova && iova + len <= x.end);
    if (s === undefined) throw new RangeError(`IOVA ${hex(iova)}+${hex(len)} is not free`);
    this.take(iova, len);
  }

  /** Give back an allocation by its start (as alloc/reserve returned it). */
  free(iova: bigint): void {
    const len = this.used.get(iova);
    if (len === undefined) throw new RangeError(`IOVA ${hex(iova)} was not allocated here`);
    this.used.delete(iova);
    this.insert({ start: iova, end: iova + len });
  }

  /** Size of the allocation starting at iova, if any. */
  sizeOf(iova: bigint): bigint | undefined {
    return this.used.get(iova);
  }

  /** The free ranges (inclusive ends). */
  freeRanges(): IovaRange[] {
    return this.spans.map((s) => ({ start: s.start, end: s.end - 1n }));
  }

  /** Free bytes in total. */
  get available(): bigint {
    return this.spans.reduce((n, s) => n + (s.end - s.start), 0n);
  }

  private take(start: bigint, len: bigint): void {
    const i = this.spans.findIndex((s) => s.start <= start && start + len <= s.end);
    const s = this.spans[i]!;
    const pieces: Span[] = [];
    if (s.start < start) pieces.push({ start: s.start, end: start });
    if (start + len < s.end) pieces.push({ start: start + len, end: s.end });
    this.spans.splice(i, 1, ...pieces);
    this.used.set(start, len);
  }

  /* insert a free span, merging with its neighbours */
  private insert(span: Span): void {
    let i = 0;
    while (i < this.spans.length && this.spans[i]!.start < span.start) i++;
    const prev = this.spans[i - 1];
    const next = this.spans[i];
    if (prev !== undefined && prev.end > span.start)
      throw new RangeError(`IOVA ${hex(span.start)} overlaps a free range`);
    if (next !== undefined && span.end > next.start)
      throw new RangeError(`IOVA ${hex(span.start)} overlaps a free range`);
    if (prev !== undefined && prev.end === span.start) {
      prev.end = span.end;
      if (next !== undefined && next.start === prev.end) {
        prev.end = next.end;
        this.spans.splice(i, 1);
      }
      return;
    }
    if (next !== undefined && next.start === span.end) {
      next.start = span.start;
      return;
    }
    this.spans.splice(i, 0, span);
  }
}
