import {
  CapBuilder,
  PCI_LATENCY_TIMER,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  type PciBarSpec,
  type PciBus,
  type PciDeviceModel,
} from '../pci/index.ts';

/*
 * QEMU's educational device (hw/misc/edu.c, docs/specs/edu.rst), as a VFIO
 * user meets it: 1234:11e8 rev 0x10, class 0x00ff, conventional PCI (256
 * bytes of config space), one 64-bit MSI capability at 0x40 with one
 * vector, INTx pin A, and a 1 MiB BAR0:
 *
 *   0x00 RO  identification 0x010000ed
 *   0x04 RW  liveness: reads back the bitwise NOT of what was written
 *   0x08 RW  factorial: write n; computed in the background into this register
 *   0x20 RW  status: 0x01 computing (RO), 0x80 raise interrupt 0x01 when done
 *   0x24 RO  interrupt status
 *   0x60 WO  interrupt raise (OR into status, assert)
 *   0x64 WO  interrupt acknowledge (clear bits; INTx drops at 0)
 *   0x80 RW  DMA source, 0x88 destination, 0x90 count (4 or 8 byte access)
 *   0x98 RW  DMA command: 0x01 start (reads 1 while running), 0x02
 *            direction (0: RAM -> buffer, 1: buffer -> RAM), 0x04 raise
 *            interrupt 0x100 when done
 *
 * Below 0x80 only 4-byte accesses mean anything (an 8-byte read gives all
 * ones); at 0x80 and above 4 or 8. Accesses smaller than 4 bytes or not
 * naturally aligned never reach the device (QEMU's memory core reads them
 * as zero and drops writes). A 4-byte write to 0x80/0x88/0x90 replaces the
 * whole 64-bit register. Unknown offsets read as all ones.
 *
 * The DMA buffer is 4 KiB at bus address 0x40000..0x40fff of the DMA
 * fields; a transfer starts 100 ms (virtual) after the command write, goes
 * through the function's IOMMU translation, and addresses are masked to
 * the DMA mask (28 bits unless the host description says `dmaMask`).
 * A transfer that does not fit the buffer is refused: QEMU logs it (older
 * QEMUs hw_error() and abort the VM) and then overruns its own buffer,
 * which no model can mirror; here the same log lines (range, then clamp)
 * go to `guestErrors` and the transfer completes without moving data
 * (start bit cleared, interrupt 0x100 raised if asked). The factorial is a
 * u32 (wraps as QEMU's does) and completes 1 µs after the write, where
 * QEMU's thread finishes "soon".
 *
 * Like QEMU's, the device has no reset handler: a reset clears config
 * space (MSI off, BARs, command) and drops INTx, but the registers, the
 * buffer and a pending DMA timer survive.
 */
export const EDU_ID = 0x010000ed;
export const EDU_FACT_IRQ = 0x00000001;
export const EDU_DMA_IRQ = 0x00000100;
export const EDU_STATUS_COMPUTING = 0x01;
export const EDU_STATUS_IRQFACT = 0x80;
export const EDU_DMA_RUN = 0x1;
export const EDU_DMA_TO_PCI = 0x2;
export const EDU_DMA_IRQ_FLAG = 0x4;
export const EDU_DMA_START = 0x40000;
export const EDU_DMA_SIZE = 4096;
export const EDU_DMA_DELAY_NS = 100_000_000;
export const EDU_FACT_DELAY_NS = 1000;
export const EDU_MSI_CAP = 0x40;

const ONES = 0xffff_ffff_ffff_ffffn;

function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

export interface EduOptions {
  /** QEMU's dma_mask property: the mask applied to DMA addresses */
  readonly dmaMask?: number | bigint;
}

export class EduModel implements PciDeviceModel {
  readonly model = 'edu';
  readonly vendor = 0x1234;
  readonly device = 0x11e8;
  readonly revision = 0x10;
  readonly classCode = 0x00ff00;
  readonly subsystemVendor = 0x1af4;
  readonly subsystem = 0x1100;
  readonly interruptPin = 1;
  readonly pcie = false;
  readonly bars: readonly (PciBarSpec | undefined)[] = [{ size: 1 << 20, type: 'mem32' }];
  readonly dmaMask: bigint;
  /** what QEMU would have logged as LOG_GUEST_ERROR */
  readonly guestErrors: string[] = [];
  private bus: PciBus | undefined;
  addr4 = 0;
  fact = 0;
  status = 0;
  irqStatus = 0;
  readonly dma = { src: 0n, dst: 0n, cnt: 0n, cmd: 0n };
  readonly dmaBuf = new Uint8Array(EDU_DMA_SIZE);
  private dmaTimer: { cancel(): void } | undefined;

  constructor(o: EduOptions = {}) {
    const m = o.dmaMask ?? 2 ** 28 - 1;
    this.dmaMask = typeof m === 'bigint' ? m : m >= 2 ** 64 - 1 ? ONES : BigInt(Math.trunc(m));
  }

  buildConfig(cfg: Uint8Array, wmask: Uint8Array): void {
    /* QEMU's conventional functions have no writable latency timer */
    wmask[PCI_LATENCY_TIMER] = 0;
    new CapBuilder(cfg, wmask).msi({ vectors: 1, addr64: true });
  }

  realize(bus: PciBus): void {
    this.bus = bus;
  }

  private get b(): PciBus {
    if (this.bus === undefined) throw new Error('edu: not realized');
    return this.bus;
  }

  private msiEnabled(): boolean {
    return (this.b.readConfig(EDU_MSI_CAP + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE) !== 0;
  }

  private raiseIrq(val: number): void {
    this.irqStatus = (this.irqStatus | val) >>> 0;
    if (this.irqStatus === 0) return;
    if (this.msiEnabled()) this.b.msiNotify(0);
    else this.b.setIntx(true);
  }

  private lowerIrq(val: number): void {
    this.irqStatus = (this.irqStatus & ~val) >>> 0;
    if (this.irqStatus === 0 && !this.msiEnabled()) this.b.setIntx(false);
  }

  mmioRead(bar: number, addr: number, size: number): bigint {
    if (bar !== 0 || size < 4 || addr % size !== 0) return 0n;
    const ones = size === 8 ? ONES : 0xffffffffn;
    if (addr < 0x80 && size !== 4) return ones;
    let v: bigint;
    switch (addr) {
      case 0x00:
        v = BigInt(EDU_ID);
        break;
      case 0x04:
        v = BigInt(this.addr4);
        break;
      case 0x08:
        v = BigInt(this.fact);
        break;
      case 0x20:
        v = BigInt(this.status);
        break;
      case 0x24:
        v = BigInt(this.irqStatus);
        break;
      case 0x80:
        v = this.dma.src;
        break;
      case 0x88:
        v = this.dma.dst;
        break;
      case 0x90:
        v = this.dma.cnt;
        break;
      case 0x98:
        v = this.dma.cmd;
        break;
      default:
        return ones;
    }
    return size === 4 ? v & 0xffffffffn : v;
  }

  mmioWrite(bar: number, addr: number, size: number, value: bigint): void {
    if (bar !== 0 || size < 4 || addr % size !== 0) return;
    if (addr < 0x80 && size !== 4) return;
    const val = size === 4 ? value & 0xffffffffn : BigInt.asUintN(64, value);
    const v32 = Number(val & 0xffffffffn);
    const running = (this.dma.cmd & BigInt(EDU_DMA_RUN)) !== 0n;
    switch (addr) {
      case 0x04:
        this.addr4 = ~v32 >>> 0;
        break;
      case 0x08:
        if (this.status & EDU_STATUS_COMPUTING) break;
        this.fact = v32;
        this.status |= EDU_STATUS_COMPUTING;
        this.b.schedule(EDU_FACT_DELAY_NS, () => this.factDone());
        break;
      case 0x20:
        if (v32 & EDU_STATUS_IRQFACT) this.status |= EDU_STATUS_IRQFACT;
        else this.status &= ~EDU_STATUS_IRQFACT;
        break;
      case 0x60:
        this.raiseIrq(v32);
        break;
      case 0x64:
        this.lowerIrq(v32);
        break;
      case 0x80:
        if (!running) this.dma.src = val;
        break;
      case 0x88:
        if (!running) this.dma.dst = val;
        break;
      case 0x90:
        if (!running) this.dma.cnt = val;
        break;
      case 0x98:
        if (!(val & BigInt(EDU_DMA_RUN)) || running) break;
        this.dma.cmd = val;
        this.dmaTimer?.cancel();
        this.dmaTimer = this.b.schedule(EDU_DMA_DELAY_NS, () => this.dmaDone());
        break;
    }
  }

  private factDone(): void {
    let ret = 1;
    for (let n = this.fact; n > 0; n--) ret = Math.imul(ret, n) >>> 0;
    this.fact = ret;
    this.status &= ~EDU_STATUS_COMPUTING;
    if (this.status & EDU_STATUS_IRQFACT) this.raiseIrq(EDU_FACT_IRQ);
  }

  /* edu_check_range, with QEMU's u64 arithmetic in the message */
  private inBuffer(start: bigint, cnt: bigint): boolean {
    const end = BigInt.asUintN(64, start + cnt);
    const dmaEnd = BigInt(EDU_DMA_START + EDU_DMA_SIZE);
    if (end >= start && start >= BigInt(EDU_DMA_START) && end <= dmaEnd) return true;
    this.guestErrors.push(
      `EDU: DMA range 0x${hex64(start)}-0x${hex64(BigInt.asUintN(64, end - 1n))} out of bounds (0x${hex64(BigInt(EDU_DMA_START))}-0x${hex64(dmaEnd - 1n)})!`,
    );
    return false;
  }

  private clamp(addr: bigint): bigint {
    const res = addr & this.dmaMask;
    if (res !== addr) this.guestErrors.push(`EDU: clamping DMA 0x${hex64(addr)} to 0x${hex64(res)}!`);
    return res;
  }

  private dmaDone(): void {
    this.dmaTimer = undefined;
    if (!(this.dma.cmd & BigInt(EDU_DMA_RUN))) return;
    const cnt = this.dma.cnt;
    /* QEMU checks the range, then clamps the bus address (logging both) */
    if ((this.dma.cmd & BigInt(EDU_DMA_TO_PCI)) === 0n) {
      const ok = this.inBuffer(this.dma.dst, cnt);
      const src = this.clamp(this.dma.src);
      if (ok) {
        const off = Number(this.dma.dst) - EDU_DMA_START;
        this.b.dmaRead(src, this.dmaBuf.subarray(off, off + Number(cnt)));
      }
    } else {
      const ok = this.inBuffer(this.dma.src, cnt);
      const dst = this.clamp(this.dma.dst);
      if (ok) {
        const off = Number(this.dma.src) - EDU_DMA_START;
        this.b.dmaWrite(dst, this.dmaBuf.subarray(off, off + Number(cnt)));
      }
    }
    this.dma.cmd &= ~BigInt(EDU_DMA_RUN);
    if (this.dma.cmd & BigInt(EDU_DMA_IRQ_FLAG)) this.raiseIrq(EDU_DMA_IRQ);
  }

  reset(): void {
    this.bus?.setIntx(false);
  }
}
