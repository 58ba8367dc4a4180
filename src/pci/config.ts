import type { PciDeviceModel } from './model.ts';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CACHE_LINE_SIZE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_REVISION_ID,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './regs.ts';

/*
 * Hardware config space of one function: bytes, the writable-bit mask and
 * the write-1-to-clear mask, with BAR sizing as real hardware does it (the
 * low bits of a BAR are hardwired, so writing ~0 reads back the size mask).
 */
export class ConfigSpace {
  readonly bytes: Uint8Array;
  readonly wmask: Uint8Array;
  readonly w1cmask: Uint8Array;
  private readonly dv: DataView;

  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
    this.wmask = new Uint8Array(size);
    this.w1cmask = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }

  read(off: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.dv.getUint8(off);
    if (size === 2) return this.dv.getUint16(off, true);
    return this.dv.getUint32(off, true);
  }

  /** raw store, ignoring masks (the device's own logic) */
  set(off: number, size: 1 | 2 | 4, v: number): void {
    if (size === 1) this.dv.setUint8(off, v & 0xff);
    else if (size === 2) this.dv.setUint16(off, v & 0xffff, true);
    else this.dv.setUint32(off, v >>> 0, true);
  }

  /** a bus config write: writable bits take the value, RW1C bits clear where 1 is written */
  write(off: number, size: 1 | 2 | 4, v: number): void {
    for (let i = 0; i < size; i++) {
      const b = (v >>> (8 * i)) & 0xff;
      const o = off + i;
      const w = this.wmask[o] ?? 0;
      const c = this.w1cmask[o] ?? 0;
      const old = this.bytes[o] ?? 0;
      this.bytes[o] = ((old & ~w) | (b & w)) & ~(b & c) & 0xff;
    }
  }

  setMask(off: number, size: 1 | 2 | 4, mask: number): void {
    for (let i = 0; i < size; i++) this.wmask[off + i] = (mask >>> (8 * i)) & 0xff;
  }
}

/** power-on config space of a type 0 function described by a model */
export function buildConfigSpace(m: PciDeviceModel, cfgSize: number): ConfigSpace {
  const c = new ConfigSpace(cfgSize);
  c.set(PCI_VENDOR_ID, 2, m.vendor);
  c.set(PCI_DEVICE_ID, 2, m.device);
  c.set(PCI_REVISION_ID, 1, m.revision ?? 0);
  c.set(PCI_CLASS_PROG, 1, m.classCode & 0xff);
  c.set(PCI_CLASS_PROG + 1, 2, (m.classCode >>> 8) & 0xffff);
  c.set(PCI_HEADER_TYPE, 1, m.headerType ?? 0);
  c.set(PCI_SUBSYSTEM_VENDOR_ID, 2, m.subsystemVendor ?? 0);
  c.set(PCI_SUBSYSTEM_ID, 2, m.subsystem ?? 0);
  c.set(PCI_INTERRUPT_PIN, 1, m.interruptPin ?? 0);
  /* command: I/O, memory, bus master, parity, SERR, INTx disable */
  c.setMask(PCI_COMMAND, 2, 0x0547);
  /* status: error bits are RW1C */
  c.w1cmask[PCI_STATUS + 1] = 0xf9;
  c.setMask(PCI_CACHE_LINE_SIZE, 1, 0xff);
  c.setMask(PCI_LATENCY_TIMER, 1, 0xff);
  c.setMask(PCI_INTERRUPT_LINE, 1, 0xff);
  for (let i = 0; i < 6; i++) {
    const bar = m.bars[i];
    const off = PCI_BASE_ADDRESS_0 + 4 * i;
    if (bar === undefined) continue;
    if (bar.type === 'io') {
      c.set(off, 4, PCI_BASE_ADDRESS_SPACE_IO);
      c.setMask(off, 4, ~(bar.size - 1) & 0xfffffffc);
    } else {
      const flags =
        (bar.type === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
        (bar.prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
      c.set(off, 4, flags);
      c.setMask(off, 4, ~(bar.size - 1) & 0xfffffff0);
      if (bar.type === 'mem64') {
        c.setMask(
          off + 4,
          4,
          Math.floor(bar.size / 2 ** 32) > 0 ? ~(Math.floor(bar.size / 2 ** 32) - 1) : 0xffffffff,
        );
        i++;
      }
    }
  }
  if (m.romSize !== undefined && m.romSize > 0)
    c.setMask(PCI_ROM_ADDRESS, 4, (~(m.romSize - 1) & 0xfffff800) | 1);
  m.buildConfig?.(c.bytes, c.wmask);
  return c;
}
