import assert from 'node:assert/strict';
import {
  CE_COMPLETION_SIZE,
  CE_CTRL_ENABLE,
  CE_DESC_SIZE,
  CE_REG_CTRL,
  CE_REG_INT_CTRL,
  CE_REG_RING_BASE,
  CE_REG_RING_SIZE,
  CE_REG_TAIL,
} from '../../src/devices/index.ts';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from '../../src/pci/index.ts';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../src/uapi/index.ts';
import { userAlloc } from '../helpers/user.ts';
import { type Bench, cfgRd, cfgWr, preadBytes, pwriteBytes, regionOffset } from '../vfio/pci/helpers.ts';

/*
 * A userspace driver for the copy engine, as a test drives it: BAR0
 * mmapped, a descriptor ring and completion records in DMA memory mapped
 * at fixed IOVAs by the test IOMMU (or any IOMMU through `map`).
 */
export const RING_IOVA = 0x100000n;
export const COMP_IOVA = 0x200000n;

export interface CeDriver {
  readonly b: Bench;
  /** BAR0 mapped into the process, or undefined when it cannot be (4.1, 64 KiB pages): pread/pwrite then */
  readonly bar0: bigint | undefined;
  readonly ring: bigint;
  readonly comp: bigint;
  readonly entries: number;
  tail: number;
}

function readBar0(d: CeDriver, off: number, len: number): Uint8Array {
  if (d.bar0 !== undefined) return d.b.p.mem.read(d.bar0 + BigInt(off), len);
  const r = preadBytes(d.b, 0, off, len);
  if (typeof r === 'number') throw new Error(`pread BAR0: ${r}`);
  return r;
}

function writeBar0(d: CeDriver, off: number, bytes: Uint8Array): void {
  if (d.bar0 !== undefined) d.b.p.mem.write(d.bar0 + BigInt(off), bytes);
  else assert.equal(pwriteBytes(d.b, 0, off, bytes), bytes.length);
}

export function reg32(d: CeDriver, off: number): number {
  return new DataView(readBar0(d, off, 4).buffer).getUint32(0, true);
}

export function setReg32(d: CeDriver, off: number, v: number): void {
  const w = new Uint8Array(4);
  new DataView(w.buffer).setUint32(0, v >>> 0, true);
  writeBar0(d, off, w);
}

export function setReg64(d: CeDriver, off: number, v: bigint): void {
  setReg32(d, off, Number(v & 0xffffffffn));
  setReg32(d, off + 4, Number(v >> 32n));
}

/** map the ring and completion pages with `map(vaddr, iova, len)`, enable the engine */
export function ceInit(
  b: Bench,
  map: (vaddr: bigint, iova: bigint, len: number) => void,
  o: { entries?: number; intCtrl?: number } = {},
): CeDriver {
  const entries = o.entries ?? 16;
  const cmd = cfgRd(b, PCI_COMMAND, 2);
  assert.equal(cfgWr(b, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 2);
  const at = b.p.mmap(0n, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, regionOffset(0));
  const bar0 = at > 0n ? at : undefined;
  const ringBytes = Math.max(entries * CE_DESC_SIZE, b.p.pageSize);
  const ring = userAlloc(b.p, ringBytes);
  const comp = userAlloc(b.p, b.p.pageSize);
  map(ring, RING_IOVA, ringBytes);
  map(comp, COMP_IOVA, b.p.pageSize);
  const d: CeDriver = { b, bar0, ring, comp, entries, tail: 0 };
  setReg64(d, CE_REG_RING_BASE, RING_IOVA);
  setReg32(d, CE_REG_RING_SIZE, entries);
  setReg32(d, CE_REG_INT_CTRL, o.intCtrl ?? 0);
  setReg32(d, CE_REG_CTRL, CE_CTRL_ENABLE);
  return d;
}

export interface Desc {
  opcode: number;
  flags?: number;
  src?: bigint;
  dst?: bigint;
  len?: bigint;
  completion?: bigint;
  pattern?: bigint;
  tag?: bigint;
}

export function encodeDesc(x: Desc): Uint8Array {
  const raw = new Uint8Array(CE_DESC_SIZE);
  const dv = new DataView(raw.buffer);
  dv.setUint32(0, x.opcode, true);
  dv.setUint32(4, x.flags ?? 0, true);
  dv.setBigUint64(8, x.src ?? 0n, true);
  dv.setBigUint64(16, x.dst ?? 0n, true);
  dv.setBigUint64(24, x.len ?? 0n, true);
  dv.setBigUint64(32, x.completion ?? 0n, true);
  dv.setBigUint64(40, x.pattern ?? 0n, true);
  dv.setBigUint64(48, x.tag ?? 0n, true);
  return raw;
}

/** write a descriptor at the tail and ring the doorbell; returns its ring index */
export function submit(d: CeDriver, x: Desc): number {
  const index = d.tail;
  d.b.p.mem.write(d.ring + BigInt(index * CE_DESC_SIZE), encodeDesc(x));
  d.tail = (d.tail + 1) % d.entries;
  setReg32(d, CE_REG_TAIL, d.tail);
  return index;
}

/** completion record n (32 bytes each in the completion page) */
export function completionIova(n: number): bigint {
  return COMP_IOVA + BigInt(n * CE_COMPLETION_SIZE);
}

export function completion(
  d: CeDriver,
  n: number,
): { status: number; bytes: number; fault: bigint; tag: bigint } {
  const raw = d.b.p.mem.read(d.comp + BigInt(n * CE_COMPLETION_SIZE), CE_COMPLETION_SIZE);
  const dv = new DataView(raw.buffer);
  return {
    status: raw[0] ?? 0,
    bytes: dv.getUint32(4, true),
    fault: dv.getBigUint64(8, true),
    tag: dv.getBigUint64(16, true),
  };
}
