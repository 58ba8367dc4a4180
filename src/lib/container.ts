import {
  O_RDWR,
  type Syscalls,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_EEH_PE_OP,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_INFO_DDW,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
  VFIO_IOMMU_SPAPR_TCE_CREATE,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO,
  VFIO_IOMMU_SPAPR_TCE_REMOVE,
  VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  vfio_eeh_pe_op,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_spapr_tce_create,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_spapr_tce_remove,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '../uapi/index.ts';
import { decodeType1Caps, type Type1Caps } from './caps.ts';
import { check, hex } from './error.ts';
import { FdObject } from './fd_object.ts';
import { IovaAllocator } from './iova.ts';

/** VFIO_IOMMU_GET_INFO on a type1 container, capability chain decoded. */
export interface Type1Info extends Type1Caps {
  readonly flags: number;
  /** bitmap of the IOMMU page sizes the container supports */
  readonly iovaPgsizes: bigint;
  /** the smallest of them: the alignment of every map and unmap */
  readonly minPageSize: bigint;
}

/** VFIO_IOMMU_SPAPR_TCE_GET_INFO. */
export interface SpaprInfo {
  readonly flags: number;
  /** the default 32-bit DMA window, in bytes */
  readonly dma32WindowStart: number;
  readonly dma32WindowSize: number;
  /** dynamic DMA windows, when the kernel reports them (VFIO_IOMMU_SPAPR_INFO_DDW) */
  readonly ddw?: {
    readonly pgsizes: bigint;
    readonly maxDynamicWindowsSupported: number;
    readonly levels: number;
  };
}

export interface DmaMapRequest {
  readonly iova: bigint;
  readonly size: bigint;
  /** the user address of the memory to map */
  readonly vaddr: bigint;
  /** device may read (default true) */
  readonly read?: boolean;
  /** device may write (default true) */
  readonly write?: boolean;
}

/** Bit flags as their names, for messages: 3 -> 'READ|WRITE'. */
function mapFlagNames(flags: number): string {
  const n = [flags & VFIO_DMA_MAP_FLAG_READ ? 'READ' : '', flags & VFIO_DMA_MAP_FLAG_WRITE ? 'WRITE' : ''];
  return n.filter((s) => s !== '').join('|') || '0';
}

/**
 * A VFIO container (/dev/vfio/vfio): the IOMMU context groups are attached
 * to. Owns its fd; close() (or `using`) closes it. Closing a container does
 * not detach its groups, as in the kernel.
 */
export class VfioContainer extends FdObject {
  /** the IOMMU type set with setIommu() through this object */
  iommuType: number | undefined;
  private allocator: IovaAllocator | undefined;

  private constructor(sys: Syscalls, fd: number) {
    super(sys, fd);
  }

  /** open("/dev/vfio/vfio", O_RDWR). */
  static open(sys: Syscalls, path = '/dev/vfio/vfio'): VfioContainer {
    const fd = check(sys, sys.open(path, O_RDWR), { syscall: 'open', arg: `"${path}", O_RDWR` });
    return new VfioContainer(sys, fd);
  }

  /** VFIO_GET_API_VERSION (VFIO_API_VERSION, 0, on every kernel). */
  apiVersion(): number {
    return this.ioctlValue(VFIO_GET_API_VERSION, 'VFIO_GET_API_VERSION');
  }

  /** VFIO_CHECK_EXTENSION: > 0 when supported (never an error). */
  checkExtension(extension: number): number {
    return this.ioctlValue(VFIO_CHECK_EXTENSION, 'VFIO_CHECK_EXTENSION', extension, String(extension));
  }

  /** VFIO_SET_IOMMU: needs at least one group attached. */
  setIommu(type: number): void {
    this.ioctlValue(VFIO_SET_IOMMU, 'VFIO_SET_IOMMU', type, String(type));
    this.iommuType = type;
  }

  /**
   * The container's IOVA allocator (made on first use, after setIommu):
   * DmaBuffer.allocate takes its IOVAs from here unless told otherwise.
   */
  iovas(): IovaAllocator {
    this.allocator ??= IovaAllocator.forContainer(this);
    return this.allocator;
  }

  /** VFIO_IOMMU_GET_INFO (type1), following the capability chain when the kernel has one. */
  iommuInfo(): Type1Info {
    const { info, bytes } = this.ioctlInfo(
      VFIO_IOMMU_GET_INFO,
      'VFIO_IOMMU_GET_INFO',
      vfio_iommu_type1_info,
      {},
    );
    const hasCaps = (info.flags & VFIO_IOMMU_INFO_CAPS) !== 0 && info.cap_offset !== 0;
    const caps = hasCaps ? decodeType1Caps(bytes, info.cap_offset) : { raw: [] };
    const pg = info.iova_pgsizes;
    return { flags: info.flags, iovaPgsizes: pg, minPageSize: pg & -pg, ...caps };
  }

  /** VFIO_IOMMU_SPAPR_TCE_GET_INFO. */
  spaprInfo(): SpaprInfo {
    const i = this.ioctlStruct(
      VFIO_IOMMU_SPAPR_TCE_GET_INFO,
      'VFIO_IOMMU_SPAPR_TCE_GET_INFO',
      vfio_iommu_spapr_tce_info,
      {},
    );
    const base = {
      flags: i.flags,
      dma32WindowStart: i.dma32_window_start,
      dma32WindowSize: i.dma32_window_size,
    };
    if ((i.flags & VFIO_IOMMU_SPAPR_INFO_DDW) === 0) return base;
    return {
      ...base,
      ddw: {
        pgsizes: i.ddw_pgsizes,
        maxDynamicWindowsSupported: i.ddw_max_dynamic_windows_supported,
        levels: i.ddw_levels,
      },
    };
  }

  /** VFIO_IOMMU_ENABLE (sPAPR): charges the DMA window to locked memory. */
  enable(): void {
    this.ioctlValue(VFIO_IOMMU_ENABLE, 'VFIO_IOMMU_ENABLE');
  }

  /** VFIO_IOMMU_DISABLE (sPAPR). */
  disable(): void {
    this.ioctlValue(VFIO_IOMMU_DISABLE, 'VFIO_IOMMU_DISABLE');
  }

  /** VFIO_IOMMU_MAP_DMA: make [vaddr, vaddr+size) visible to devices at [iova, iova+size). */
  mapDma(req: DmaMapRequest): void {
    const flags =
      (req.read === false ? 0 : VFIO_DMA_MAP_FLAG_READ) | (req.write === false ? 0 : VFIO_DMA_MAP_FLAG_WRITE);
    this.ioctlStruct(
      VFIO_IOMMU_MAP_DMA,
      'VFIO_IOMMU_MAP_DMA',
      vfio_iommu_type1_dma_map,
      { flags, vaddr: req.vaddr, iova: req.iova, size: req.size },
      `iova ${hex(req.iova)}, size ${hex(req.size)}, vaddr ${hex(req.vaddr)}, ${mapFlagNames(flags)}`,
    );
  }

  /**
   * VFIO_IOMMU_UNMAP_DMA. Returns the size the kernel wrote back: type1
   * reports the bytes it really unmapped (0 when nothing was mapped there;
   * more than asked when v1 took whole mappings); sPAPR writes nothing back,
   * so the requested size is returned.
   */
  unmapDma(iova: bigint, size: bigint, flags = 0): bigint {
    const out = this.ioctlStruct(
      VFIO_IOMMU_UNMAP_DMA,
      'VFIO_IOMMU_UNMAP_DMA',
      vfio_iommu_type1_dma_unmap,
      { flags, iova, size },
      `iova ${hex(iova)}, size ${hex(size)}${flags !== 0 ? `, flags ${hex(flags)}` : ''}`,
    );
    return out.size;
  }

  /** VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL (type1, v5.12+): returns the bytes unmapped. */
  unmapAll(): bigint {
    return this.unmapDma(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
  }

  private dirtyPages(flag: number, name: string): void {
    this.ioctlStruct(
      VFIO_IOMMU_DIRTY_PAGES,
      'VFIO_IOMMU_DIRTY_PAGES',
      vfio_iommu_type1_dirty_bitmap,
      {
        flags: flag,
      },
      name,
    );
  }

  /** VFIO_IOMMU_DIRTY_PAGES START. */
  startDirtyTracking(): void {
    this.dirtyPages(VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 'START');
  }

  /** VFIO_IOMMU_DIRTY_PAGES STOP. */
  stopDirtyTracking(): void {
    this.dirtyPages(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, 'STOP');
  }

  /**
   * VFIO_IOMMU_DIRTY_PAGES GET_BITMAP for [iova, iova+size): one bit per
   * `pgsize` page (LSB first), in u64 words, as the kernel fills it.
   */
  dirtyBitmap(iova: bigint, size: bigint, pgsize: bigint): Uint8Array {
    const hdr = vfio_iommu_type1_dirty_bitmap.size;
    const get = vfio_iommu_type1_dirty_bitmap_get.size;
    const pages = pgsize > 0n ? Number((size + pgsize - 1n) / pgsize) : 0;
    const bitmapBytes = Math.ceil(pages / 64) * 8;
    const total = hdr + get + bitmapBytes;
    const bitmapAddr = this.scratch.buf(total) + BigInt(hdr + get);
    const bytes = new Uint8Array(total);
    vfio_iommu_type1_dirty_bitmap.encode(
      { argsz: hdr + get, flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
      bytes,
    );
    vfio_iommu_type1_dirty_bitmap_get.encode(
      { iova, size, bitmap_pgsize: pgsize, bitmap_size: BigInt(bitmapBytes), bitmap_data: bitmapAddr },
      bytes,
      hdr,
    );
    const { out } = this.ioctlBytes(
      VFIO_IOMMU_DIRTY_PAGES,
      'VFIO_IOMMU_DIRTY_PAGES',
      bytes,
      `GET_BITMAP iova ${hex(iova)}, size ${hex(size)}, pgsize ${hex(pgsize)}`,
      total,
    );
    return out.slice(hdr + get);
  }

  /** VFIO_IOMMU_SPAPR_REGISTER_MEMORY (sPAPR v2): preregister memory for DMA. */
  registerMemory(vaddr: bigint, size: bigint): void {
    this.ioctlStruct(
      VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
      'VFIO_IOMMU_SPAPR_REGISTER_MEMORY',
      vfio_iommu_spapr_register_memory,
      { vaddr, size },
      `vaddr ${hex(vaddr)}, size ${hex(size)}`,
    );
  }

  /** VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY (sPAPR v2): exactly a registered range. */
  unregisterMemory(vaddr: bigint, size: bigint): void {
    this.ioctlStruct(
      VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
      'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY',
      vfio_iommu_spapr_register_memory,
      { vaddr, size },
      `vaddr ${hex(vaddr)}, size ${hex(size)}`,
    );
  }

  /** VFIO_IOMMU_SPAPR_TCE_CREATE (sPAPR v2): a dynamic DMA window; returns its bus address. */
  createWindow(pageShift: number, windowSize: bigint, levels = 1): bigint {
    const out = this.ioctlStruct(
      VFIO_IOMMU_SPAPR_TCE_CREATE,
      'VFIO_IOMMU_SPAPR_TCE_CREATE',
      vfio_iommu_spapr_tce_create,
      { page_shift: pageShift, window_size: windowSize, levels },
      `page_shift ${pageShift}, window_size ${hex(windowSize)}, levels ${levels}`,
    );
    return out.start_addr;
  }

  /** VFIO_IOMMU_SPAPR_TCE_REMOVE (sPAPR v2). */
  removeWindow(startAddr: bigint): void {
    this.ioctlStruct(
      VFIO_IOMMU_SPAPR_TCE_REMOVE,
      'VFIO_IOMMU_SPAPR_TCE_REMOVE',
      vfio_iommu_spapr_tce_remove,
      { start_addr: startAddr },
      `start_addr ${hex(startAddr)}`,
    );
  }

  /** VFIO_EEH_PE_OP (sPAPR): returns the EEH core's result (the PE state for GET_STATE). */
  eehPeOp(op: number): number {
    const bytes = vfio_eeh_pe_op.encode({ argsz: vfio_eeh_pe_op.offsetofend('op'), flags: 0, op });
    return this.ioctlBytes(VFIO_EEH_PE_OP, 'VFIO_EEH_PE_OP', bytes, `op ${op}`).ret;
  }
}
