import {
  CapBuilder,
  PCI_EXP_TYPE_ENDPOINT,
  type PciBarSpec,
  type PciBus,
  type PciDeviceModel,
} from '../pci/index.ts';
import { MsixTable, readLe, writeLe } from './msix.ts';

/*
 * A bulk memcpy engine in the manner of the DMA engines the kernel's VFIO
 * selftests drive (Intel IOAT / DSA): software writes 64-byte descriptors
 * into a ring in its own memory, rings a doorbell, and the engine copies
 * from IOVA to IOVA through the IOMMU, writes a completion record and
 * signals MSI-X. An access to an IOVA the IOMMU refuses halts the engine
 * with an error code and the faulting address.
 *
 * Identity: 1234:11ce rev 1, class 0x088000 (system peripheral), PCIe
 * endpoint with FLR, PM (No_Soft_Reset), MSI-X with 4 vectors.
 *
 * BAR0 (32-bit MMIO, 16 KiB, non-prefetchable): registers at 0x0000,
 *   MSI-X table at 0x2000 (4 x 16 bytes), PBA at 0x3000.
 * BAR2 (64-bit prefetchable, 1 MiB): device-local scratch RAM, plain
 *   read/write at any size.
 * ROM (64 KiB BAR): one 2 KiB x86 image ("55 AA", "PCIR", last image).
 *
 * Registers (4-byte access; the 64-bit ones also 8-byte):
 *   0x000 ID          RO  0x43450100 ("CE" 1.0)
 *   0x004 CAP         RO  [7:0] log2 max ring entries (12), [15:8] MSI-X
 *                         vectors (4), [23:16] log2 max transfer (30)
 *   0x008 CTRL        RW  bit 0 ENABLE: process the ring; bit 1 RESET
 *                         (write 1: abort, ring state and errors cleared)
 *   0x00c STATUS      RO  bit 0 ENABLED, bit 1 BUSY, bit 2 HALTED
 *   0x010 ERROR       RW1C error code of the halt (CE_ERR_*)
 *   0x014 ERR_DESC    RO  ring index of the descriptor that failed
 *   0x018 ERR_ADDR    RO  64-bit: the bus address the IOMMU refused
 *   0x020 INT_CTRL    RW  bit 0 completion interrupts, bit 1 error
 *                         interrupts; [15:8] MSI-X entry for completions,
 *                         [23:16] MSI-X entry for errors
 *   0x024 INT_STATUS  RW1C bit 0 completion, bit 1 error (INTx follows it
 *                         when MSI-X is off)
 *   0x040 RING_BASE   RW  64-bit IOVA of the ring, 64-byte aligned
 *   0x048 RING_SIZE   RW  entries, a power of two from 2 to 4096
 *   0x04c HEAD        RO  next descriptor the engine takes
 *   0x050 TAIL        RW  doorbell: one past the last valid descriptor
 *   0x054 COMPLETED   RO  descriptors completed since reset (wraps)
 *
 * Descriptor (64 bytes, little-endian):
 *   0x00 u32 opcode: 0 NOP, 1 MEMCPY, 2 FILL (u64 pattern repeated)
 *   0x04 u32 flags: bit 0 interrupt on completion, bit 1 write a
 *            completion record
 *   0x08 u64 source IOVA, 0x10 u64 destination IOVA
 *   0x18 u64 length in bytes (1 .. 1 GiB)
 *   0x20 u64 completion record IOVA (32-byte aligned)
 *   0x28 u64 fill pattern, 0x30 u64 tag (echoed), 0x38 reserved
 *
 * Completion record (32 bytes): 0x00 u8 status (1 success, 0x80|error
 *   code on failure), 0x04 u32 bytes completed, 0x08 u64 fault address,
 *   0x10 u64 tag.
 *
 * Timing (virtual clock): a descriptor takes 500 ns plus 16 bytes per ns;
 * the engine fetches it when it starts and moves the data when it ends.
 * MEMCPY translates its whole source and destination before moving a
 * byte: if the IOMMU refuses either, nothing is written, the completion
 * record reports 0 bytes and ERR_ADDR the refused IOVA (the IOMMU logs the
 * fault). FILL writes page by page in order and stops at the first refused
 * page, the pages before it written.
 */
export const CE_ID = 0x43450100;
export const CE_REG_ID = 0x000;
export const CE_REG_CAP = 0x004;
export const CE_REG_CTRL = 0x008;
export const CE_REG_STATUS = 0x00c;
export const CE_REG_ERROR = 0x010;
export const CE_REG_ERR_DESC = 0x014;
export const CE_REG_ERR_ADDR = 0x018;
export const CE_REG_INT_CTRL = 0x020;
export const CE_REG_INT_STATUS = 0x024;
export const CE_REG_RING_BASE = 0x040;
export const CE_REG_RING_SIZE = 0x048;
export const CE_REG_HEAD = 0x04c;
export const CE_REG_TAIL = 0x050;
export const CE_REG_COMPLETED = 0x054;

export const CE_CTRL_ENABLE = 0x1;
export const CE_CTRL_RESET = 0x2;
export const CE_STATUS_ENABLED = 0x1;
export const CE_STATUS_BUSY = 0x2;
export const CE_STATUS_HALTED = 0x4;
export const CE_INT_COMPLETION = 0x1;
export const CE_INT_ERROR = 0x2;

export const CE_OP_NOP = 0;
export const CE_OP_MEMCPY = 1;
export const CE_OP_FILL = 2;
export const CE_DESC_INTERRUPT = 0x1;
export const CE_DESC_COMPLETION = 0x2;
export const CE_DESC_SIZE = 64;
export const CE_COMPLETION_SIZE = 32;

export const CE_ERR_DESC_READ = 1;
export const CE_ERR_SRC_READ = 2;
export const CE_ERR_DST_WRITE = 3;
export const CE_ERR_COMPLETION_WRITE = 4;
export const CE_ERR_BAD_OPCODE = 5;
export const CE_ERR_BAD_LENGTH = 6;
export const CE_ERR_BAD_RING = 7;
export const CE_COMP_SUCCESS = 1;

export const CE_MSIX_VECTORS = 4;
export const CE_MSIX_TABLE = 0x2000;
export const CE_MSIX_PBA = 0x3000;
export const CE_MAX_TRANSFER = 1 << 30;
export const CE_DESC_SETUP_NS = 500;
export const CE_BYTES_PER_NS = 16;

const RING_MAX_LOG2 = 12;
const PAGE = 4096;
const ROM_SIZE = 0x10000;
const ROM_IMAGE = 0x800;

interface Descriptor {
  readonly index: number;
  readonly opcode: number;
  readonly flags: number;
  readonly src: bigint;
  readonly dst: bigint;
  readonly len: bigint;
  readonly completion: bigint;
  readonly pattern: bigint;
  readonly tag: bigint;
}

function buildRom(vendor: number, device: number): Uint8Array {
  const rom = new Uint8Array(ROM_IMAGE);
  const dv = new DataView(rom.buffer);
  dv.setUint16(0, 0xaa55, true);
  rom[2] = ROM_IMAGE / 512;
  dv.setUint16(0x18, 0x1c, true);
  /* PCI Data Structure */
  rom.set([0x50, 0x43, 0x49, 0x52], 0x1c);
  dv.setUint16(0x1c + 4, vendor, true);
  dv.setUint16(0x1c + 6, device, true);
  dv.setUint16(0x1c + 10, 0x18, true);
  dv.setUint16(0x1c + 16, ROM_IMAGE / 512, true);
  rom[0x1c + 20] = 0; /* x86 code */
  rom[0x1c + 21] = 0x80; /* last image */
  rom.set(new TextEncoder().encode('vfio-ts copy engine option ROM'), 0x40);
  return rom;
}

export class CopyEngineModel implements PciDeviceModel {
  readonly model = 'copy-engine';
  readonly vendor = 0x1234;
  readonly device = 0x11ce;
  readonly revision = 0x01;
  readonly classCode = 0x088000;
  readonly subsystemVendor = 0x1234;
  readonly subsystem = 0x0001;
  readonly interruptPin = 1;
  readonly pcie = true;
  readonly flr = true;
  readonly romSize = ROM_SIZE;
  readonly bars: readonly (PciBarSpec | undefined)[] = [
    { size: 0x4000, type: 'mem32' },
    undefined,
    { size: 1 << 20, type: 'mem64', prefetch: true },
  ];
  private bus: PciBus | undefined;
  private msix: MsixTable | undefined;
  private readonly rom = buildRom(0x1234, 0x11ce);
  private scratch: Uint8Array | undefined;
  ctrl = 0;
  error = 0;
  errDesc = 0;
  errAddr = 0n;
  intCtrl = 0;
  intStatus = 0;
  ringBase = 0n;
  ringSize = 0;
  head = 0;
  tail = 0;
  completed = 0;
  halted = false;
  private inflight: { cancel(): void } | undefined;

  buildConfig(cfg: Uint8Array, wmask: Uint8Array): void {
    const c = new CapBuilder(cfg, wmask);
    c.pm({ noSoftReset: true });
    const off = c.msix({
      tableSize: CE_MSIX_VECTORS,
      tableBar: 0,
      tableOffset: CE_MSIX_TABLE,
      pbaBar: 0,
      pbaOffset: CE_MSIX_PBA,
    });
    c.pcie({ type: PCI_EXP_TYPE_ENDPOINT, flr: true });
    this.msix = new MsixTable(CE_MSIX_VECTORS, off);
  }

  realize(bus: PciBus): void {
    this.bus = bus;
  }

  private get b(): PciBus {
    if (this.bus === undefined) throw new Error('copy engine: not realized');
    return this.bus;
  }

  private get table(): MsixTable {
    if (this.msix === undefined) throw new Error('copy engine: config space not built');
    return this.msix;
  }

  /* ---- MMIO ---- */

  mmioRead(bar: number, off: number, size: number): bigint {
    if (bar === 6) return off + size <= ROM_IMAGE ? readLe(new DataView(this.rom.buffer), off, size) : 0xffn;
    if (bar === 2) return readLe(this.scratchView(), off, size);
    if (bar !== 0) return 0n;
    if (off >= CE_MSIX_TABLE && off < CE_MSIX_TABLE + this.table.tableBytes)
      return this.table.readTable(off - CE_MSIX_TABLE, size);
    if (off >= CE_MSIX_PBA && off < CE_MSIX_PBA + this.table.pbaBytes)
      return this.table.readPba(off - CE_MSIX_PBA, size);
    if (size === 8) {
      if (off === CE_REG_ERR_ADDR) return this.errAddr;
      if (off === CE_REG_RING_BASE) return this.ringBase;
      return (this.reg32(off + 4) << 32n) | this.reg32(off);
    }
    const v = this.reg32(off & ~3);
    return size === 4 ? v : (v >> BigInt((off & 3) * 8)) & (size === 1 ? 0xffn : 0xffffn);
  }

  private reg32(off: number): bigint {
    switch (off) {
      case CE_REG_ID:
        return BigInt(CE_ID);
      case CE_REG_CAP:
        return BigInt(RING_MAX_LOG2 | (CE_MSIX_VECTORS << 8) | (30 << 16));
      case CE_REG_CTRL:
        return BigInt(this.ctrl);
      case CE_REG_STATUS:
        return BigInt(
          (this.ctrl & CE_CTRL_ENABLE ? CE_STATUS_ENABLED : 0) |
            (this.inflight !== undefined ? CE_STATUS_BUSY : 0) |
            (this.halted ? CE_STATUS_HALTED : 0),
        );
      case CE_REG_ERROR:
        return BigInt(this.error);
      case CE_REG_ERR_DESC:
        return BigInt(this.errDesc);
      case CE_REG_ERR_ADDR:
        return this.errAddr & 0xffffffffn;
      case CE_REG_ERR_ADDR + 4:
        return this.errAddr >> 32n;
      case CE_REG_INT_CTRL:
        return BigInt(this.intCtrl);
      case CE_REG_INT_STATUS:
        return BigInt(this.intStatus);
      case CE_REG_RING_BASE:
        return this.ringBase & 0xffffffffn;
      case CE_REG_RING_BASE + 4:
        return this.ringBase >> 32n;
      case CE_REG_RING_SIZE:
        return BigInt(this.ringSize);
      case CE_REG_HEAD:
        return BigInt(this.head);
      case CE_REG_TAIL:
        return BigInt(this.tail);
      case CE_REG_COMPLETED:
        return BigInt(this.completed);
      default:
        return 0n;
    }
  }

  mmioWrite(bar: number, off: number, size: number, value: bigint): void {
    if (bar === 2) {
      writeLe(this.scratchView(), off, size, value);
      return;
    }
    if (bar !== 0) return;
    if (off >= CE_MSIX_TABLE && off < CE_MSIX_TABLE + this.table.tableBytes) {
      this.table.writeTable(this.b, off - CE_MSIX_TABLE, size, value);
      return;
    }
    if (size === 8) {
      if (off === CE_REG_RING_BASE) this.ringBase = BigInt.asUintN(64, value) & ~0x3fn;
      else {
        this.write32(off, Number(value & 0xffffffffn));
        this.write32(off + 4, Number((value >> 32n) & 0xffffffffn));
      }
      return;
    }
    if (size !== 4) return;
    this.write32(off, Number(value & 0xffffffffn));
  }

  private write32(off: number, v: number): void {
    switch (off) {
      case CE_REG_CTRL:
        if (v & CE_CTRL_RESET) {
          this.softReset();
          return;
        }
        this.ctrl = v & CE_CTRL_ENABLE;
        this.kick();
        break;
      case CE_REG_ERROR:
        this.error &= ~v;
        break;
      case CE_REG_INT_CTRL:
        this.intCtrl = v & 0x00ffff03;
        this.updateIntx();
        break;
      case CE_REG_INT_STATUS:
        this.intStatus &= ~v;
        this.updateIntx();
        break;
      case CE_REG_RING_BASE:
        this.ringBase = (this.ringBase & ~0xffffffffn) | BigInt(v & ~0x3f);
        break;
      case CE_REG_RING_BASE + 4:
        this.ringBase = (this.ringBase & 0xffffffffn) | (BigInt(v >>> 0) << 32n);
        break;
      case CE_REG_RING_SIZE:
        this.ringSize = v >>> 0;
        break;
      case CE_REG_TAIL:
        this.tail = v >>> 0;
        this.kick();
        break;
    }
  }

  private scratchView(): DataView {
    if (this.scratch === undefined) this.scratch = new Uint8Array(1 << 20);
    return new DataView(this.scratch.buffer);
  }

  configWritten(): void {
    this.table.configChanged(this.b);
    this.updateIntx();
  }

  /* ---- interrupts ---- */

  private raise(cause: number): void {
    this.intStatus |= cause;
    const enabled = cause === CE_INT_COMPLETION ? this.intCtrl & 1 : this.intCtrl & 2;
    if (!enabled) return;
    if (this.table.enabled(this.b)) {
      const entry = cause === CE_INT_COMPLETION ? (this.intCtrl >> 8) & 0xff : (this.intCtrl >> 16) & 0xff;
      this.table.notify(this.b, entry);
    } else this.updateIntx();
  }

  private updateIntx(): void {
    if (this.bus === undefined) return;
    const pending = this.intStatus & this.intCtrl & 3;
    this.b.setIntx(pending !== 0 && !this.table.enabled(this.b));
  }

  /* ---- the engine ---- */

  private ringValid(): boolean {
    const n = this.ringSize;
    return n >= 2 && n <= 1 << RING_MAX_LOG2 && (n & (n - 1)) === 0 && this.tail < n;
  }

  private kick(): void {
    if (!(this.ctrl & CE_CTRL_ENABLE) || this.halted || this.inflight !== undefined) return;
    if (this.head === this.tail) return;
    if (!this.ringValid()) {
      this.halt(CE_ERR_BAD_RING, this.head, this.ringBase);
      return;
    }
    this.start();
  }

  private start(): void {
    const index = this.head;
    const addr = this.ringBase + BigInt(index * CE_DESC_SIZE);
    const raw = new Uint8Array(CE_DESC_SIZE);
    if (!this.b.dmaRead(addr, raw)) {
      this.halt(CE_ERR_DESC_READ, index, addr);
      return;
    }
    const dv = new DataView(raw.buffer);
    const d: Descriptor = {
      index,
      opcode: dv.getUint32(0, true),
      flags: dv.getUint32(4, true),
      src: dv.getBigUint64(8, true),
      dst: dv.getBigUint64(16, true),
      len: dv.getBigUint64(24, true),
      completion: dv.getBigUint64(32, true),
      pattern: dv.getBigUint64(40, true),
      tag: dv.getBigUint64(48, true),
    };
    const len = d.opcode === CE_OP_NOP ? 0 : Number(d.len > BigInt(CE_MAX_TRANSFER) ? 0n : d.len);
    this.inflight = this.b.schedule(CE_DESC_SETUP_NS + Math.ceil(len / CE_BYTES_PER_NS), () =>
      this.finish(d),
    );
  }

  private finish(d: Descriptor): void {
    this.inflight = undefined;
    let err = 0;
    let done = 0;
    let fault = 0n;
    if (d.opcode !== CE_OP_NOP && d.opcode !== CE_OP_MEMCPY && d.opcode !== CE_OP_FILL)
      err = CE_ERR_BAD_OPCODE;
    else if (d.opcode !== CE_OP_NOP && (d.len === 0n || d.len > BigInt(CE_MAX_TRANSFER)))
      err = CE_ERR_BAD_LENGTH;
    else if (d.opcode !== CE_OP_NOP) {
      const r =
        d.opcode === CE_OP_MEMCPY
          ? this.copy(d.src, d.dst, Number(d.len))
          : this.fill(d.dst, Number(d.len), d.pattern);
      err = r.err;
      done = r.done;
      fault = r.fault;
    }
    if (d.flags & CE_DESC_COMPLETION) {
      const rec = new Uint8Array(CE_COMPLETION_SIZE);
      const dv = new DataView(rec.buffer);
      rec[0] = err === 0 ? CE_COMP_SUCCESS : 0x80 | err;
      dv.setUint32(4, done, true);
      dv.setBigUint64(8, fault, true);
      dv.setBigUint64(16, d.tag, true);
      if (!this.b.dmaWrite(d.completion, rec) && err === 0) {
        err = CE_ERR_COMPLETION_WRITE;
        fault = d.completion;
      }
    }
    if (err !== 0) {
      this.halt(err, d.index, fault);
      return;
    }
    this.head = (this.head + 1) % this.ringSize;
    this.completed = (this.completed + 1) >>> 0;
    if (d.flags & CE_DESC_INTERRUPT) this.raise(CE_INT_COMPLETION);
    this.kick();
  }

  private copy(src: bigint, dst: bigint, len: number): { err: number; done: number; fault: bigint } {
    const refused = this.b.dmaCopy(src, dst, len);
    if (refused === undefined) return { err: 0, done: len, fault: 0n };
    return { err: refused.write ? CE_ERR_DST_WRITE : CE_ERR_SRC_READ, done: 0, fault: refused.iova };
  }

  private fill(dst: bigint, len: number, pattern: bigint): { err: number; done: number; fault: bigint } {
    const pat = new Uint8Array(8);
    new DataView(pat.buffer).setBigUint64(0, pattern, true);
    const page = new Uint8Array(PAGE + 8);
    for (let i = 0; i < page.length; i += 8) page.set(pat, i);
    let off = 0;
    while (off < len) {
      /* up to the next page boundary of the destination, the pattern kept in phase */
      const at = dst + BigInt(off);
      const n = Math.min(len - off, PAGE - Number(at % BigInt(PAGE)));
      if (!this.b.dmaWrite(at, page.subarray(off % 8, (off % 8) + n)))
        return { err: CE_ERR_DST_WRITE, done: off, fault: at };
      off += n;
    }
    return { err: 0, done: len, fault: 0n };
  }

  private halt(code: number, index: number, addr: bigint): void {
    this.halted = true;
    this.error = code;
    this.errDesc = index;
    this.errAddr = addr;
    this.raise(CE_INT_ERROR);
  }

  private softReset(): void {
    this.inflight?.cancel();
    this.inflight = undefined;
    this.ctrl = 0;
    this.error = 0;
    this.errDesc = 0;
    this.errAddr = 0n;
    this.head = 0;
    this.tail = 0;
    this.completed = 0;
    this.halted = false;
    this.intStatus = 0;
    this.updateIntx();
  }

  reset(): void {
    this.softReset();
    this.intCtrl = 0;
    this.ringBase = 0n;
    this.ringSize = 0;
    this.msix?.reset();
    this.scratch = undefined;
    this.bus?.setIntx(false);
  }
}
