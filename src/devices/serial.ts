import {
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  type PciBarSpec,
  type PciBus,
  type PciDeviceModel,
} from '../pci/index.ts';

/*
 * A PCI 16550 UART with one 8-byte I/O BAR and INTx only, like the
 * single-port card the kernel's mtty sample pretends to be (4348:3253,
 * class 0x070002). It is a PCI 2.2 function: DisINTx in the command
 * register is hardwired to 0, so a host driver can mask its interrupt only
 * at the interrupt controller (vfio-pci's non-"PCI 2.3" path).
 *
 * Registers (byte access, DLAB = LCR bit 7):
 *   0 RBR (read) / THR (write) / DLL (DLAB)
 *   1 IER / DLM (DLAB): bit 0 received data, bit 1 THR empty, bit 2 line status
 *   2 IIR (read) / FCR (write): IIR 0x01 no interrupt, 0x06 line status,
 *     0x04 received data, 0x02 THR empty; FIFOs enabled adds 0xc0
 *   3 LCR, 4 MCR (bit 4 loopback), 5 LSR (0x01 DR, 0x02 OE, 0x20 THRE,
 *   0x40 TEMT), 6 MSR, 7 SCR
 *
 * A character takes 10 bit times at the programmed divisor (1.8432 MHz
 * clock / 16) to leave; it lands in `output`, or, in loopback, in the
 * receive FIFO (16 deep; overruns set OE). `input()` is the other end of
 * the line. INTx is asserted while IIR reports an interrupt.
 */
const FIFO_DEPTH = 16;
const UART_CLOCK_HZ = 1_843_200;

export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_RLSI = 0x04;
export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_RLSI = 0x06;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_THRI = 0x02;
export const UART_LSR_DR = 0x01;
export const UART_LSR_OE = 0x02;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
export const UART_LCR_DLAB = 0x80;
export const UART_MCR_LOOP = 0x10;
export const UART_FCR_ENABLE = 0x01;
export const UART_FCR_CLEAR_RCVR = 0x02;

export class SerialModel implements PciDeviceModel {
  readonly model = 'serial';
  readonly vendor = 0x4348;
  readonly device = 0x3253;
  readonly revision = 0x01;
  readonly classCode = 0x070002;
  readonly subsystemVendor = 0x4348;
  readonly subsystem = 0x3253;
  readonly interruptPin = 1;
  readonly pcie = false;
  readonly bars: readonly (PciBarSpec | undefined)[] = [{ size: 8, type: 'io' }];
  /** characters sent on the line */
  readonly output: number[] = [];
  private bus: PciBus | undefined;
  private rx: number[] = [];
  ier = 0;
  lcr = 0;
  mcr = 0;
  lsr = UART_LSR_THRE | UART_LSR_TEMT;
  msr = 0;
  scr = 0;
  fcr = 0;
  divisor = 12;
  /** THR-empty interrupt pending (cleared by reading IIR or writing THR) */
  private thri = false;
  private tx: { cancel(): void } | undefined;

  buildConfig(_cfg: Uint8Array, wmask: Uint8Array): void {
    /* PCI 2.2: no Interrupt Disable bit */
    const m = (wmask[PCI_COMMAND + 1] ?? 0) & ~(PCI_COMMAND_INTX_DISABLE >> 8);
    wmask[PCI_COMMAND + 1] = m;
  }

  realize(bus: PciBus): void {
    this.bus = bus;
  }

  /** the far end of the line sends these bytes */
  input(bytes: Iterable<number>): void {
    for (const c of bytes) this.receive(c & 0xff);
    this.update();
  }

  private receive(c: number): void {
    if (this.rx.length >= (this.fcr & UART_FCR_ENABLE ? FIFO_DEPTH : 1)) {
      this.lsr |= UART_LSR_OE;
      return;
    }
    this.rx.push(c);
    this.lsr |= UART_LSR_DR;
  }

  private iir(): number {
    const fifo = this.fcr & UART_FCR_ENABLE ? 0xc0 : 0;
    if (this.ier & UART_IER_RLSI && this.lsr & UART_LSR_OE) return fifo | UART_IIR_RLSI;
    if (this.ier & UART_IER_RDI && this.lsr & UART_LSR_DR) return fifo | UART_IIR_RDI;
    if (this.ier & UART_IER_THRI && this.thri) return fifo | UART_IIR_THRI;
    return fifo | UART_IIR_NO_INT;
  }

  private update(): void {
    this.bus?.setIntx((this.iir() & UART_IIR_NO_INT) === 0);
  }

  private charTimeNs(): number {
    const d = this.divisor === 0 ? 0x10000 : this.divisor;
    return Math.ceil((10 * 16 * d * 1e9) / UART_CLOCK_HZ);
  }

  private transmit(c: number): void {
    this.lsr &= ~(UART_LSR_THRE | UART_LSR_TEMT);
    this.thri = false;
    this.tx?.cancel();
    this.tx = this.bus?.schedule(this.charTimeNs(), () => {
      this.tx = undefined;
      if (this.mcr & UART_MCR_LOOP) this.receive(c);
      else this.output.push(c);
      this.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
      this.thri = true;
      this.update();
    });
    this.update();
  }

  mmioRead(bar: number, off: number, size: number): bigint {
    if (bar !== 0) return 0n;
    let v = 0n;
    for (let i = 0; i < size; i++) v |= BigInt(this.readReg(off + i)) << BigInt(8 * i);
    return v;
  }

  private readReg(off: number): number {
    const dlab = (this.lcr & UART_LCR_DLAB) !== 0;
    switch (off) {
      case 0: {
        if (dlab) return this.divisor & 0xff;
        const c = this.rx.shift() ?? 0;
        if (this.rx.length === 0) this.lsr &= ~UART_LSR_DR;
        this.update();
        return c;
      }
      case 1:
        return dlab ? (this.divisor >> 8) & 0xff : this.ier;
      case 2: {
        const iir = this.iir();
        if ((iir & 0x0f) === UART_IIR_THRI) {
          this.thri = false;
          this.update();
        }
        return iir;
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const v = this.lsr;
        this.lsr &= ~UART_LSR_OE;
        this.update();
        return v;
      }
      case 6:
        return this.msr;
      case 7:
        return this.scr;
      default:
        return 0xff;
    }
  }

  mmioWrite(bar: number, off: number, size: number, value: bigint): void {
    if (bar !== 0) return;
    for (let i = 0; i < size; i++) this.writeReg(off + i, Number((value >> BigInt(8 * i)) & 0xffn));
  }

  private writeReg(off: number, v: number): void {
    const dlab = (this.lcr & UART_LCR_DLAB) !== 0;
    switch (off) {
      case 0:
        if (dlab) this.divisor = (this.divisor & 0xff00) | v;
        else this.transmit(v);
        return;
      case 1:
        if (dlab) this.divisor = (this.divisor & 0x00ff) | (v << 8);
        else {
          /* enabling THRI with the THR already empty reports it at once */
          if (v & UART_IER_THRI && !(this.ier & UART_IER_THRI) && this.lsr & UART_LSR_THRE) this.thri = true;
          this.ier = v & 0x0f;
        }
        break;
      case 2:
        this.fcr = v & 0xc9;
        if (v & UART_FCR_CLEAR_RCVR) {
          this.rx = [];
          this.lsr &= ~UART_LSR_DR;
        }
        break;
      case 3:
        this.lcr = v;
        break;
      case 4:
        this.mcr = v & 0x1f;
        break;
      case 7:
        this.scr = v;
        break;
    }
    this.update();
  }

  reset(): void {
    this.tx?.cancel();
    this.tx = undefined;
    this.rx = [];
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.lsr = UART_LSR_THRE | UART_LSR_TEMT;
    this.scr = 0;
    this.fcr = 0;
    this.divisor = 12;
    this.thri = false;
    this.bus?.setIntx(false);
  }
}
