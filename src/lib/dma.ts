import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../uapi/index.ts';
import { ScalarAccess } from './bytes.ts';
import type { VfioContainer } from './container.ts';
import { check, checkAddr, hex } from './error.ts';
import type { IovaAllocator } from './iova.ts';

export interface DmaBufferOptions {
  /** map at this IOVA (reserved in the allocator); else the allocator picks one */
  readonly iova?: bigint;
  /** where IOVAs come from (default: the container's own, container.iovas()) */
  readonly allocator?: IovaAllocator;
  /** an allocated IOVA must end at or below this (a device's DMA mask + 1) */
  readonly below?: bigint;
  /** the device may read the buffer (default true) */
  readonly read?: boolean;
  /** the device may write the buffer (default true) */
  readonly write?: boolean;
}

/**
 * Memory a device can DMA to: anonymous memory mmapped into the process
 * and mapped into the container's IOMMU at an IOVA. The process reads and
 * writes it through its own memory (p.mem); the device through the IOVA.
 * close() unmaps it from the IOMMU, munmaps it and frees the IOVA.
 */
export class DmaBuffer extends ScalarAccess implements Disposable {
  private closed = false;

  private constructor(
    private readonly container: VfioContainer,
    private readonly allocator: IovaAllocator,
    /** the user address */
    readonly vaddr: bigint,
    /** the bus address devices use */
    readonly iova: bigint,
    /** bytes (a multiple of the page size and of the IOMMU page) */
    readonly size: bigint,
  ) {
    super();
  }

  static allocate(container: VfioContainer, size: number | bigint, opts: DmaBufferOptions = {}): DmaBuffer {
    const sys = container.sys;
    const alloc = opts.allocator ?? container.iovas();
    const ps = BigInt(sys.pageSize);
    const gran = alloc.align > ps ? alloc.align : ps;
    const len = ((BigInt(size) + gran - 1n) / gran) * gran;
    if (len === 0n) throw new RangeError('a DMA buffer needs at least one byte');
    let iova: bigint;
    if (opts.iova !== undefined) {
      alloc.reserve(opts.iova, len);
      iova = opts.iova;
    } else iova = alloc.alloc(len, opts.below !== undefined ? { below: opts.below } : {});
    let vaddr = -1n;
    try {
      vaddr = checkAddr(sys, sys.mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n), {
        syscall: 'mmap',
        arg: `NULL, ${hex(len)}, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0`,
      });
      container.mapDma({
        iova,
        size: len,
        vaddr,
        ...(opts.read !== undefined ? { read: opts.read } : {}),
        ...(opts.write !== undefined ? { write: opts.write } : {}),
      });
    } catch (e) {
      if (vaddr >= 0n) sys.munmap(vaddr, len);
      alloc.free(iova);
      throw e;
    }
    return new DmaBuffer(container, alloc, vaddr, iova, len);
  }

  private at(offset: number | bigint, len: number): bigint {
    if (this.closed) throw new Error(`DMA buffer at IOVA ${hex(this.iova)} was closed`);
    const off = BigInt(offset);
    if (off < 0n || off + BigInt(len) > this.size)
      throw new RangeError(`offset ${hex(off)}+${len} is outside the ${hex(this.size)}-byte DMA buffer`);
    return this.vaddr + off;
  }

  read(offset: number | bigint, len: number): Uint8Array {
    return this.container.sys.mem.read(this.at(offset, len), len);
  }

  write(offset: number | bigint, bytes: Uint8Array): void {
    this.container.sys.mem.write(this.at(offset, bytes.length), bytes);
  }

  /** Fill [offset, offset+len) with one byte value. */
  fill(value: number, offset: number | bigint = 0, len: number = Number(this.size) - Number(offset)): void {
    this.write(offset, new Uint8Array(len).fill(value));
  }

  /** The IOVA of a byte of the buffer. */
  iovaAt(offset: number | bigint): bigint {
    return this.iova + BigInt(offset);
  }

  protected readBytes(offset: number | bigint, len: number): Uint8Array {
    return this.read(offset, len);
  }

  protected writeBytes(offset: number | bigint, bytes: Uint8Array): void {
    this.write(offset, bytes);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Unmap from the IOMMU (skipped when the container fd is already closed:
   * its mappings go when its last group leaves), munmap, free the IOVA.
   * Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const sys = this.container.sys;
    try {
      if (!this.container.closed) this.container.unmapDma(this.iova, this.size);
    } finally {
      this.allocator.free(this.iova);
      check(sys, sys.munmap(this.vaddr, this.size), {
        syscall: 'munmap',
        arg: `${hex(this.vaddr)}, ${hex(this.size)}`,
      });
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
