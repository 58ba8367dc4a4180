import {
  CapBuilder,
  PCI_EXP_TYPE_ENDPOINT,
  type PciBarSpec,
  type PciBus,
  type PciDeviceModel,
} from '../pci/index.ts';

/*
 * A generic PCI function: identity from the host description, and memory
 * BARs that behave as plain registers (what is written reads back). It
 * stands for any device a host driver owns (a NIC, a disk controller):
 * what matters to VFIO is who drives it and which group it is in.
 */
export interface GenericModelOptions {
  readonly vendor?: number;
  readonly device?: number;
  readonly classCode?: number;
  readonly bars?: readonly (PciBarSpec | undefined)[];
  readonly interruptPin?: number;
  readonly headerType?: number;
  readonly hostDriver?: string;
  readonly flr?: boolean;
  /** a PCIe function (the default): 4 KiB config space and a PCIe capability, with FLR if `flr` */
  readonly pcie?: boolean;
}

export class GenericPciModel implements PciDeviceModel {
  readonly model: string = 'generic';
  readonly vendor: number;
  readonly device: number;
  readonly classCode: number;
  readonly interruptPin: number;
  readonly headerType: number;
  readonly bars: readonly (PciBarSpec | undefined)[];
  readonly hostDriver: string | undefined;
  readonly flr: boolean;
  readonly pcie: boolean;
  private regs: Map<number, DataView>;
  bus: PciBus | undefined;

  constructor(o: GenericModelOptions = {}) {
    this.vendor = o.vendor ?? 0x8086;
    this.device = o.device ?? 0x10d3;
    this.classCode = o.classCode ?? 0x020000;
    this.interruptPin = o.interruptPin ?? 1;
    this.headerType = o.headerType ?? 0;
    this.bars = o.bars ?? [{ size: 0x20000, type: 'mem32' }];
    this.hostDriver = o.hostDriver;
    this.flr = o.flr ?? false;
    this.pcie = o.pcie ?? true;
    this.regs = new Map();
  }

  buildConfig(cfg: Uint8Array, wmask: Uint8Array): void {
    if (this.pcie) new CapBuilder(cfg, wmask).pcie({ type: PCI_EXP_TYPE_ENDPOINT, flr: this.flr });
  }

  realize(bus: PciBus): void {
    this.bus = bus;
  }

  private bar(i: number): DataView | undefined {
    const spec = this.bars[i];
    if (spec === undefined) return undefined;
    let dv = this.regs.get(i);
    if (dv === undefined) {
      dv = new DataView(new ArrayBuffer(Math.min(spec.size, 1 << 16)));
      this.regs.set(i, dv);
    }
    return dv;
  }

  mmioRead(bar: number, offset: number, size: number): bigint {
    const dv = this.bar(bar);
    if (dv === undefined || offset + size > dv.byteLength) return 0n;
    if (size === 1) return BigInt(dv.getUint8(offset));
    if (size === 2) return BigInt(dv.getUint16(offset, true));
    if (size === 4) return BigInt(dv.getUint32(offset, true));
    return dv.getBigUint64(offset, true);
  }

  mmioWrite(bar: number, offset: number, size: number, value: bigint): void {
    const dv = this.bar(bar);
    if (dv === undefined || offset + size > dv.byteLength) return;
    if (size === 1) dv.setUint8(offset, Number(value & 0xffn));
    else if (size === 2) dv.setUint16(offset, Number(value & 0xffffn), true);
    else if (size === 4) dv.setUint32(offset, Number(value & 0xffffffffn), true);
    else dv.setBigUint64(offset, BigInt.asUintN(64, value), true);
  }

  reset(): void {
    this.regs = new Map();
  }
}
