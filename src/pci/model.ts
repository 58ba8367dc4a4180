/*
 * The device-model interface: what an emulated PCI function implements
 * (src/devices), and what the platform gives it in return (its side of
 * the bus: DMA that goes through the IOMMU, interrupts, the clock).
 */
export interface PciBarSpec {
  readonly size: number;
  readonly type: 'mem32' | 'mem64' | 'io';
  readonly prefetch?: boolean;
}

export interface PciDeviceIdentity {
  readonly vendor: number;
  readonly device: number;
  /** 24-bit class code: base class, subclass, prog-if */
  readonly classCode: number;
  readonly revision?: number;
  readonly subsystemVendor?: number;
  readonly subsystem?: number;
  /** 0 = no INTx, 1..4 = INTA..INTD */
  readonly interruptPin?: number;
  readonly headerType?: number;
}

export interface PciBus {
  /** device-initiated read of bus address addr; false if the IOMMU faulted (buf reads as zeros) */
  dmaRead(addr: bigint, buf: Uint8Array): boolean;
  /** device-initiated write; false if the IOMMU faulted (memory untouched) */
  dmaWrite(addr: bigint, data: Uint8Array): boolean;
  /**
   * device-initiated copy of len bytes from bus address src to dst, both
   * translated before anything moves: undefined when done, else the access
   * that was refused (nothing was copied; an IOMMU fault is logged)
   */
  dmaCopy(src: bigint, dst: bigint, len: number): DmaRefusal | undefined;
  /** assert or deassert the INTx line */
  setIntx(level: boolean): void;
  /** signal MSI vector n (or MSI-X entry n) as programmed in config space / the MSI-X table */
  msiNotify(vector: number): void;
  /** run fn after delayNs on the host's virtual clock */
  schedule(delayNs: number, fn: () => void): { cancel(): void };
  /** the function's own config space as the hardware sees it */
  readConfig(off: number, size: 1 | 2 | 4): number;
}

export interface DmaRefusal {
  readonly iova: bigint;
  readonly write: boolean;
}

export interface PciDeviceModel extends PciDeviceIdentity {
  /** model name shown in topology ('edu', 'generic', ...) */
  readonly model: string;
  readonly bars: readonly (PciBarSpec | undefined)[];
  readonly romSize?: number;
  /** PCIe function-level reset capability */
  readonly flr?: boolean;
  /**
   * A PCI Express function (4 KiB config space, PCIe capability) or a
   * conventional one (256 bytes, like QEMU's edu). Undefined: whatever the
   * host description says.
   */
  readonly pcie?: boolean;
  /** the driver a host would bind by default (e.g. 'e1000e'); undefined: none */
  readonly hostDriver?: string | undefined;
  /** lay out capabilities in config space: set cap list, return writable-bit masks */
  buildConfig?(cfg: Uint8Array, wmask: Uint8Array): void;
  /** connect the model to its bus (called once when the device is added) */
  realize(bus: PciBus): void;
  /** a read of BAR `bar` (6: the expansion ROM) at offset; size 1, 2, 4 or 8 */
  mmioRead(bar: number, offset: number, size: number): bigint;
  mmioWrite(bar: number, offset: number, size: number, value: bigint): void;
  /** the device observed a config write (after masks were applied) */
  configWritten?(offset: number, size: number): void;
  /** function reset: registers back to power-on state */
  reset(): void;
}
