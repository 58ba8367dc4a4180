import {
  EINVAL,
  ENOSPC,
  type Syscalls,
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_REGION_INFO_FLAG_CAPS,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfio_region_info,
} from '../uapi/index.ts';
import { s32Array } from './bytes.ts';
import { type DeviceCaps, decodeDeviceCaps, decodeRegionCaps } from './caps.ts';
import { check, errorFor, hex, VfioError } from './error.ts';
import { FdObject } from './fd_object.ts';
import { Interrupt, type IrqInfo, irqFlags, irqSetFlagNames, VfioVectorsError } from './irq.ts';
import { type MappedRegion, type RegionBackend, type RegionInfo, regionFlags, VfioRegion } from './region.ts';

/** VFIO_DEVICE_GET_INFO, flags and capability chain decoded. */
export interface DeviceInfo extends DeviceCaps {
  readonly flags: number;
  readonly numRegions: number;
  readonly numIrqs: number;
  /** VFIO_DEVICE_RESET works */
  readonly reset: boolean;
  readonly pci: boolean;
}

/** A device a hot reset of this one would also reset. */
export interface DependentDevice {
  /** its IOMMU group (the devid in the cdev interface) */
  readonly groupId: number;
  readonly segment: number;
  readonly bus: number;
  readonly devfn: number;
  /** "dddd:bb:ss.f" */
  readonly bdf: string;
}

export interface HotResetInfo {
  readonly flags: number;
  readonly devices: readonly DependentDevice[];
}

const h = (v: number, w: number): string => v.toString(16).padStart(w, '0');

/**
 * A device fd from VFIO_GROUP_GET_DEVICE_FD: its regions, interrupts and
 * resets. Owns the fd, the region mappings made through it and the
 * interrupt eventfds it created; close() releases all of them.
 */
export class VfioDevice extends FdObject implements RegionBackend {
  private readonly regionCache = new Map<number, VfioRegion>();
  private readonly mappings = new Set<MappedRegion>();
  private readonly irqTable = new Map<number, Interrupt[]>();

  private constructor(
    sys: Syscalls,
    fd: number,
    /** the name it was opened by ("0000:00:03.0") */
    readonly name: string,
  ) {
    super(sys, fd);
  }

  /** Wrap a device fd the caller got from VFIO_GROUP_GET_DEVICE_FD (the object takes ownership). */
  static fromFd(sys: Syscalls, fd: number, name: string): VfioDevice {
    return new VfioDevice(sys, fd, name);
  }

  /** VFIO_DEVICE_GET_INFO. */
  info(): DeviceInfo {
    const { info, bytes } = this.ioctlInfo(
      VFIO_DEVICE_GET_INFO,
      'VFIO_DEVICE_GET_INFO',
      vfio_device_info,
      {},
    );
    const hasCaps = (info.flags & VFIO_DEVICE_FLAGS_CAPS) !== 0 && info.cap_offset !== 0;
    return {
      flags: info.flags,
      numRegions: info.num_regions,
      numIrqs: info.num_irqs,
      reset: (info.flags & VFIO_DEVICE_FLAGS_RESET) !== 0,
      pci: (info.flags & VFIO_DEVICE_FLAGS_PCI) !== 0,
      ...(hasCaps ? decodeDeviceCaps(bytes, info.cap_offset) : { raw: [] }),
    };
  }

  /** VFIO_DEVICE_GET_REGION_INFO for one index (always asks the kernel). */
  regionInfo(index: number): RegionInfo {
    const { info, bytes } = this.ioctlInfo(
      VFIO_DEVICE_GET_REGION_INFO,
      'VFIO_DEVICE_GET_REGION_INFO',
      vfio_region_info,
      { index },
      `index ${index}`,
    );
    const hasCaps = (info.flags & VFIO_REGION_INFO_FLAG_CAPS) !== 0 && info.cap_offset !== 0;
    return {
      index,
      flags: info.flags,
      size: info.size,
      offset: info.offset,
      ...regionFlags(info.flags),
      ...(hasCaps ? decodeRegionCaps(bytes, info.cap_offset) : { msixMappable: false, raw: [] }),
    };
  }

  /** The region at index (its info is asked once and kept). */
  region(index: number): VfioRegion {
    let r = this.regionCache.get(index);
    if (r === undefined) {
      r = new VfioRegion(this, this.regionInfo(index));
      this.regionCache.set(index, r);
    }
    return r;
  }

  /**
   * Every region below num_regions that the device has: indexes the kernel
   * refuses with EINVAL (vfio-pci's VGA region on a non-VGA device) are left out.
   */
  regions(): VfioRegion[] {
    const out: VfioRegion[] = [];
    for (let i = 0; i < this.info().numRegions; i++) {
      try {
        out.push(this.region(i));
      } catch (e) {
        if (!(e instanceof VfioError && e.errno === EINVAL)) throw e;
      }
    }
    return out;
  }

  /** PCI config space (vfio-pci region 7). */
  get config(): VfioRegion {
    return this.region(VFIO_PCI_CONFIG_REGION_INDEX);
  }

  /** BAR n (vfio-pci regions 0-5). */
  bar(n: number): VfioRegion {
    if (!Number.isInteger(n) || n < 0 || n > 5) throw new RangeError(`BAR${n}: BARs are 0-5`);
    return this.region(n);
  }

  /* ---- RegionBackend ---- */

  readAt(offset: bigint, len: number): Uint8Array {
    this.assertOpen('pread');
    const addr = this.scratch.buf(len);
    const n = check(this.sys, this.sys.pread(this.fd, addr, len, offset), {
      syscall: 'pread64',
      fd: this.fd,
      arg: `${this.fd}, buf, ${len}, ${hex(offset)}`,
    });
    return this.sys.mem.read(addr, n);
  }

  writeAt(offset: bigint, bytes: Uint8Array): number {
    this.assertOpen('pwrite');
    const addr = this.scratch.put(bytes);
    return check(this.sys, this.sys.pwrite(this.fd, addr, bytes.length, offset), {
      syscall: 'pwrite64',
      fd: this.fd,
      arg: `${this.fd}, buf, ${bytes.length}, ${hex(offset)}`,
    });
  }

  adopt(m: MappedRegion): void {
    this.mappings.add(m);
  }

  forget(m: MappedRegion): void {
    this.mappings.delete(m);
  }

  /* ---- interrupts ---- */

  /** VFIO_DEVICE_GET_IRQ_INFO. */
  irqInfo(index: number): IrqInfo {
    const i = this.ioctlStruct(
      VFIO_DEVICE_GET_IRQ_INFO,
      'VFIO_DEVICE_GET_IRQ_INFO',
      vfio_irq_info,
      { index },
      `index ${index}`,
    );
    return { index, flags: i.flags, count: i.count, ...irqFlags(i.flags) };
  }

  /**
   * Every IRQ index below num_irqs that the device has: indexes the kernel
   * refuses with EINVAL (vfio-pci's ERR index on a conventional PCI device)
   * are left out.
   */
  irqs(): IrqInfo[] {
    const out: IrqInfo[] = [];
    for (let i = 0; i < this.info().numIrqs; i++) {
      try {
        out.push(this.irqInfo(i));
      } catch (e) {
        if (!(e instanceof VfioError && e.errno === EINVAL)) throw e;
      }
    }
    return out;
  }

  /**
   * VFIO_DEVICE_SET_IRQS as is: `data` is the payload after the header (u8
   * bools or s32 eventfds). Returns the ioctl's result, which is positive
   * when MSI/MSI-X could not get start+count vectors (how many it could).
   */
  setIrqs(
    index: number,
    flags: number,
    start: number,
    count: number,
    data: Uint8Array = new Uint8Array(0),
  ): number {
    const hdr = vfio_irq_set.size;
    const bytes = new Uint8Array(hdr + data.length);
    vfio_irq_set.encode({ argsz: bytes.length, flags, index, start, count }, bytes);
    bytes.set(data, hdr);
    const desc = `index ${index}, start ${start}, count ${count}, ${irqSetFlagNames(flags)}`;
    return this.ioctlBytes(VFIO_DEVICE_SET_IRQS, 'VFIO_DEVICE_SET_IRQS', bytes, desc, 0).ret;
  }

  /**
   * Signal vectors [start, start+count) of `index` on fresh eventfds
   * (DATA_EVENTFD | ACTION_TRIGGER). The device keeps the Interrupts and
   * closes them when the index is disabled or the device is closed.
   * Throws VfioVectorsError when the kernel can enable fewer vectors.
   */
  enableInterrupts(index: number, count: number, start = 0): Interrupt[] {
    const irqs: Interrupt[] = [];
    try {
      for (let v = 0; v < count; v++) irqs.push(Interrupt.create(this.sys, index, start + v));
      const ret = this.setIrqs(
        index,
        VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        start,
        count,
        s32Array(irqs.map((i) => i.fd)),
      );
      if (ret > 0)
        throw new VfioVectorsError(
          {
            errno: ENOSPC,
            syscall: 'ioctl',
            request: 'VFIO_DEVICE_SET_IRQS',
            fd: this.fd,
            arg: `index ${index}, start ${start}, count ${count}, DATA_EVENTFD|ACTION_TRIGGER`,
            reason: `the kernel can enable only ${ret} vectors (SET_IRQS returned ${ret})`,
          },
          start + count,
          ret,
        );
    } catch (e) {
      for (const i of irqs) i.close();
      throw e;
    }
    const old = this.irqTable.get(index) ?? [];
    const kept = old.filter((i) => i.vector < start || i.vector >= start + count);
    for (const i of old) if (!kept.includes(i)) i.close();
    this.irqTable.set(
      index,
      [...kept, ...irqs].sort((a, b) => a.vector - b.vector),
    );
    return irqs;
  }

  /** INTx on an eventfd (automasked: unmaskIntx() after each interrupt). */
  enableIntx(): Interrupt {
    return this.enableInterrupts(VFIO_PCI_INTX_IRQ_INDEX, 1)[0]!;
  }

  /** MSI with `count` vectors. */
  enableMsi(count = 1): Interrupt[] {
    return this.enableInterrupts(VFIO_PCI_MSI_IRQ_INDEX, count);
  }

  /** MSI-X with `count` vectors. */
  enableMsix(count: number): Interrupt[] {
    return this.enableInterrupts(VFIO_PCI_MSIX_IRQ_INDEX, count);
  }

  /** The AER error notification (vfio-pci ERR index, PCIe devices). */
  enableErr(): Interrupt {
    return this.enableInterrupts(VFIO_PCI_ERR_IRQ_INDEX, 1)[0]!;
  }

  /** The device-request notification (vfio-pci REQ index): the host wants the device back. */
  enableReq(): Interrupt {
    return this.enableInterrupts(VFIO_PCI_REQ_IRQ_INDEX, 1)[0]!;
  }

  /** The Interrupts this object enabled on an index. */
  interrupts(index: number): readonly Interrupt[] {
    return this.irqTable.get(index) ?? [];
  }

  /** DATA_NONE | ACTION_TRIGGER with count 0: turn the index off, close its eventfds. */
  disableInterrupts(index: number): void {
    this.setIrqs(index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0);
    for (const i of this.irqTable.get(index) ?? []) i.close();
    this.irqTable.delete(index);
  }

  /** Mask INTx (DATA_NONE | ACTION_MASK). */
  maskIntx(): void {
    this.setIrqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 1);
  }

  /** Unmask INTx (DATA_NONE | ACTION_UNMASK): after each automasked interrupt. */
  unmaskIntx(): void {
    this.setIrqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1);
  }

  /** Loopback: fire vectors [start, start+count) from userspace (DATA_NONE | ACTION_TRIGGER). */
  trigger(index: number, start = 0, count = 1): void {
    this.setIrqs(index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, start, count);
  }

  /* ---- resets ---- */

  /** VFIO_DEVICE_RESET. */
  reset(): void {
    this.ioctlValue(VFIO_DEVICE_RESET, 'VFIO_DEVICE_RESET');
  }

  /** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: asks for the count first (ENOSPC), then the list. */
  hotResetInfo(): HotResetInfo {
    const name = 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO';
    this.assertOpen(name);
    const hdr = vfio_pci_hot_reset_info.size;
    const ent = vfio_pci_dependent_device.size;
    let argsz = hdr;
    for (;;) {
      const addr = this.scratch.put(vfio_pci_hot_reset_info.encode({ argsz }), argsz);
      const ret = this.sys.ioctl(this.fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, addr);
      /* the reason first: any later call (even reading memory) is a new syscall */
      const err =
        ret < 0 ? errorFor(this.sys, ret, { syscall: 'ioctl', request: name, fd: this.fd }) : undefined;
      const head = vfio_pci_hot_reset_info.decode(this.scratch.read(hdr));
      if (ret === -ENOSPC && hdr + head.count * ent > argsz) {
        argsz = hdr + head.count * ent;
        continue;
      }
      if (err !== undefined) throw err;
      const body = this.scratch.read(head.count * ent, hdr);
      const devices: DependentDevice[] = [];
      for (let i = 0; i < head.count; i++) {
        const d = vfio_pci_dependent_device.decode(body, i * ent);
        const bdf = `${h(d.segment, 4)}:${h(d.bus, 2)}:${h(d.devfn >> 3, 2)}.${d.devfn & 7}`;
        devices.push({ groupId: d.group_id, segment: d.segment, bus: d.bus, devfn: d.devfn, bdf });
      }
      return { flags: head.flags, devices };
    }
  }

  /** VFIO_DEVICE_PCI_HOT_RESET, proving ownership of every affected group by its fd. */
  hotReset(groups: readonly ({ readonly fd: number } | number)[]): void {
    const fds = groups.map((g) => (typeof g === 'number' ? g : g.fd));
    const hdr = vfio_pci_hot_reset.size;
    const bytes = new Uint8Array(hdr + fds.length * 4);
    vfio_pci_hot_reset.encode({ argsz: bytes.length, flags: 0, count: fds.length }, bytes);
    bytes.set(s32Array(fds), hdr);
    this.ioctlBytes(
      VFIO_DEVICE_PCI_HOT_RESET,
      'VFIO_DEVICE_PCI_HOT_RESET',
      bytes,
      `group fds [${fds.join(', ')}]`,
      0,
    );
  }

  /** Unmap this device's mappings, close its interrupt eventfds, then the device fd. */
  override close(): void {
    if (this.closed) return;
    for (const m of [...this.mappings]) m.unmap();
    for (const irqs of this.irqTable.values()) for (const i of irqs) i.close();
    this.irqTable.clear();
    super.close();
  }
}
