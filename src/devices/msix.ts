import {
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  type PciBus,
} from '../pci/index.ts';

/*
 * An MSI-X table and pending-bit array as a device implements them in one
 * of its BARs: 16-byte entries (address, data, vector control), masked at
 * reset; a vector signalled while masked sets its pending bit and is sent
 * when unmasked.
 */
export class MsixTable {
  private table: DataView;
  private pba: Uint8Array;

  constructor(
    readonly entries: number,
    /** config offset of the MSI-X capability */
    readonly capOffset: number,
  ) {
    this.table = new DataView(new ArrayBuffer(entries * PCI_MSIX_ENTRY_SIZE));
    this.pba = new Uint8Array(Math.ceil(entries / 64) * 8);
    this.reset();
  }

  reset(): void {
    for (let i = 0; i < this.table.byteLength; i++) this.table.setUint8(i, 0);
    for (let e = 0; e < this.entries; e++)
      this.table.setUint32(
        e * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL,
        PCI_MSIX_ENTRY_CTRL_MASKBIT,
        true,
      );
    this.pba.fill(0);
  }

  get tableBytes(): number {
    return this.table.byteLength;
  }

  get pbaBytes(): number {
    return this.pba.length;
  }

  private flags(bus: PciBus): number {
    return bus.readConfig(this.capOffset + PCI_MSIX_FLAGS, 2);
  }

  enabled(bus: PciBus): boolean {
    return (this.flags(bus) & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }

  private masked(bus: PciBus, e: number): boolean {
    const ctrl = this.table.getUint32(e * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, true);
    return (ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0 || (this.flags(bus) & PCI_MSIX_FLAGS_MASKALL) !== 0;
  }

  /** signal entry e: sent now, or left pending while masked */
  notify(bus: PciBus, e: number): void {
    if (e >= this.entries || !this.enabled(bus)) return;
    if (this.masked(bus, e)) {
      this.pba[e >> 3] = (this.pba[e >> 3] ?? 0) | (1 << (e & 7));
      return;
    }
    bus.msiNotify(e);
  }

  private deliverPending(bus: PciBus): void {
    for (let e = 0; e < this.entries; e++) {
      const bit = 1 << (e & 7);
      if ((this.pba[e >> 3] ?? 0) & bit && this.enabled(bus) && !this.masked(bus, e)) {
        this.pba[e >> 3] = (this.pba[e >> 3] ?? 0) & ~bit;
        bus.msiNotify(e);
      }
    }
  }

  /** the function's MSI-X control changed in config space (function mask cleared ...) */
  configChanged(bus: PciBus): void {
    this.deliverPending(bus);
  }

  readTable(off: number, size: number): bigint {
    if (off + size > this.table.byteLength) return 0n;
    return readLe(this.table, off, size);
  }

  writeTable(bus: PciBus, off: number, size: number, v: bigint): void {
    if (off + size > this.table.byteLength) return;
    writeLe(this.table, off, size, v);
    this.deliverPending(bus);
  }

  readPba(off: number, size: number): bigint {
    if (off + size > this.pba.length) return 0n;
    return readLe(new DataView(this.pba.buffer), off, size);
  }
}

export function readLe(dv: DataView, off: number, size: number): bigint {
  if (size === 1) return BigInt(dv.getUint8(off));
  if (size === 2) return BigInt(dv.getUint16(off, true));
  if (size === 4) return BigInt(dv.getUint32(off, true));
  return dv.getBigUint64(off, true);
}

export function writeLe(dv: DataView, off: number, size: number, v: bigint): void {
  if (size === 1) dv.setUint8(off, Number(v & 0xffn));
  else if (size === 2) dv.setUint16(off, Number(v & 0xffffn), true);
  else if (size === 4) dv.setUint32(off, Number(v & 0xffffffffn), true);
  else dv.setBigUint64(off, BigInt.asUintN(64, v), true);
}
