import {
  FIELD_SIZE,
  type FieldTable,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  type StructLayout,
  type StructValue,
  type Syscalls,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from '../uapi/index.ts';
import { ScalarAccess } from './bytes.ts';
import type { RegionCaps } from './caps.ts';
import { check, checkAddr, hex } from './error.ts';

/** VFIO_DEVICE_GET_REGION_INFO, flags and capability chain decoded. */
export interface RegionInfo extends RegionCaps {
  readonly index: number;
  readonly flags: number;
  /** bytes; 0 for an unimplemented BAR */
  readonly size: bigint;
  /** where the region starts in the device fd (index << 40 for vfio-pci) */
  readonly offset: bigint;
  readonly readable: boolean;
  readonly writable: boolean;
  readonly mmappable: boolean;
}

export function regionFlags(flags: number): Pick<RegionInfo, 'readable' | 'writable' | 'mmappable'> {
  return {
    readable: (flags & VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (flags & VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mmappable: (flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0,
  };
}

/** What a region needs from its device: positioned I/O and mmap on the device fd. */
export interface RegionBackend {
  readonly sys: Syscalls;
  readonly fd: number;
  /** pread on the device fd; returns the bytes read (short at the end of a BAR) */
  readAt(offset: bigint, len: number): Uint8Array;
  /** pwrite on the device fd; returns the bytes written */
  writeAt(offset: bigint, bytes: Uint8Array): number;
  /** the device keeps track of its mappings to unmap them when it closes */
  adopt(m: MappedRegion): void;
  forget(m: MappedRegion): void;
}

/**
 * One region of a device (a BAR, the config space, the ROM): typed
 * read/write at offsets inside the region through pread/pwrite on the
 * device fd, and mmap of mmap-capable regions.
 */
export class VfioRegion extends ScalarAccess {
  constructor(
    private readonly dev: RegionBackend,
    readonly info: RegionInfo,
  ) {
    super();
  }

  get index(): number {
    return this.info.index;
  }

  get size(): bigint {
    return this.info.size;
  }

  /** Up to len bytes at offset (fewer at the end of a BAR, as the kernel clips). */
  read(offset: number | bigint, len: number): Uint8Array {
    return this.dev.readAt(this.info.offset + BigInt(offset), len);
  }

  /** Write bytes at offset; returns the count the kernel accepted. */
  write(offset: number | bigint, bytes: Uint8Array): number {
    return this.dev.writeAt(this.info.offset + BigInt(offset), bytes);
  }

  protected readBytes(offset: number | bigint, len: number): Uint8Array {
    const b = this.read(offset, len);
    if (b.length !== len)
      throw new RangeError(`region ${this.index}: short read of ${b.length}/${len} bytes at ${hex(offset)}`);
    return b;
  }

  protected writeBytes(offset: number | bigint, bytes: Uint8Array): void {
    const n = this.write(offset, bytes);
    if (n !== bytes.length)
      throw new RangeError(
        `region ${this.index}: short write of ${n}/${bytes.length} bytes at ${hex(offset)}`,
      );
  }

  /**
   * mmap the region (or [offset, offset+size) of it) MAP_SHARED into the
   * process; accesses through the mapping reach the device. Read/write
   * protection follows the region's flags unless `prot` says otherwise.
   */
  mmap(opts: { offset?: bigint; size?: bigint; prot?: number } = {}): MappedRegion {
    const offset = opts.offset ?? 0n;
    const size = opts.size ?? this.info.size - offset;
    const prot = opts.prot ?? (this.info.readable ? PROT_READ : 0) | (this.info.writable ? PROT_WRITE : 0);
    const sys = this.dev.sys;
    const at = this.info.offset + offset;
    const addr = checkAddr(sys, sys.mmap(0n, size, prot, MAP_SHARED, this.dev.fd, at), {
      syscall: 'mmap',
      fd: this.dev.fd,
      arg: `NULL, ${hex(size)}, ${prot}, MAP_SHARED, ${this.dev.fd}, ${hex(at)}`,
    });
    const m = new MappedRegion(sys, addr, size, this.index, offset, () => this.dev.forget(m));
    this.dev.adopt(m);
    return m;
  }

  /**
   * mmap every part of the region that may be mapped: the sparse mmap
   * areas when the region has them, else the whole region.
   */
  mmapAreas(): MappedRegion[] {
    const areas = this.info.sparseMmap;
    if (areas === undefined) return [this.mmap()];
    return areas.filter((a) => a.size > 0n).map((a) => this.mmap({ offset: a.offset, size: a.size }));
  }
}

/**
 * A region mapped into the process: typed access at offsets through the
 * process's own memory (p.mem), which the kernel routes to the device.
 */
export class MappedRegion extends ScalarAccess implements Disposable {
  private unmapped = false;
  private readonly sizeNum: number;

  constructor(
    private readonly sys: Syscalls,
    /** the user address of the mapping */
    readonly addr: bigint,
    readonly size: bigint,
    readonly regionIndex: number,
    /** where the mapping starts inside the region */
    readonly regionOffset: bigint,
    private readonly onUnmap: () => void,
  ) {
    super();
    this.sizeNum = Number(size);
  }

  private span(offset: number | bigint, len: number): bigint {
    if (this.unmapped)
      throw new Error(`region ${this.regionIndex} mapping at ${hex(this.addr)} was unmapped`);
    const off = typeof offset === 'number' ? offset : Number(offset);
    if (!(off >= 0 && off + len <= this.sizeNum))
      throw new RangeError(`offset ${hex(offset)}+${len} is outside the ${hex(this.size)}-byte mapping`);
    return this.addr + BigInt(off);
  }

  /** len bytes at offset, as one access of that width when len is 1, 2, 4 or 8. */
  bytes(offset: number | bigint, len: number): Uint8Array {
    return this.sys.mem.read(this.span(offset, len), len);
  }

  setBytes(offset: number | bigint, bytes: Uint8Array): void {
    this.sys.mem.write(this.span(offset, bytes.length), bytes);
  }

  protected readBytes(offset: number | bigint, len: number): Uint8Array {
    return this.bytes(offset, len);
  }

  protected writeBytes(offset: number | bigint, bytes: Uint8Array): void {
    this.setBytes(offset, bytes);
  }

  /** A register block described by a struct layout, read at offset. */
  get<F extends FieldTable>(layout: StructLayout<F>, offset: number | bigint = 0): StructValue<F> {
    return layout.decode(this.bytes(offset, layout.size));
  }

  /** Write the given fields of a register block (each field as its own access). */
  set<F extends FieldTable>(
    layout: StructLayout<F>,
    value: Partial<StructValue<F>>,
    offset: number | bigint = 0,
  ): void {
    const off = BigInt(offset);
    for (const [name, v] of Object.entries(value)) {
      if (v === undefined) continue;
      const field = layout.fields[name];
      if (field === undefined) throw new TypeError(`${layout.name} has no field ${name}`);
      const [type, at] = field;
      const whole = layout.encode({ [name]: v } as Partial<StructValue<F>>);
      this.setBytes(off + BigInt(at), whole.subarray(at, at + FIELD_SIZE[type]));
    }
  }

  /** munmap (idempotent). */
  unmap(): void {
    if (this.unmapped) return;
    this.unmapped = true;
    this.onUnmap();
    check(this.sys, this.sys.munmap(this.addr, this.size), {
      syscall: 'munmap',
      arg: `${hex(this.addr)}, ${hex(this.size)}`,
    });
  }

  [Symbol.dispose](): void {
    this.unmap();
  }
}
