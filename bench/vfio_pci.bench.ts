// vfio-pci and the device models: how fast a device moves data through the
// IOMMU, and how fast a user reaches device registers.
//
// 1. Copy-engine DMA bandwidth: one MEMCPY descriptor of 64 MiB from IOVA to
//    IOVA through type1, the source and destination mapped once as 64 MiB
//    each, then as 16384 mappings of 4 KiB each. Each figure is the ratio of
//    Buffer.copy of the same 64 MiB, measured in the same run, to the time the
//    device's copy takes (1.0 = as fast as a plain memcpy; targets 0.8 and
//    0.5). Only the copy is timed: the virtual clock reaching the descriptor's
//    completion.
// 2. MMIO: 32-bit register reads of edu's BAR0 per second, through the BAR
//    mmapped into the process and through pread on the device fd.
//
//   node --import tsx bench/vfio_pci.bench.ts

import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import {
  CE_CTRL_ENABLE,
  CE_OP_MEMCPY,
  CE_REG_COMPLETED,
  CE_REG_CTRL,
  CE_REG_RING_BASE,
  CE_REG_RING_SIZE,
  CE_REG_TAIL,
} from '../src/devices/index.ts';
import { Host } from '../src/host/index.ts';
import type { Process } from '../src/kernel/index.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_dma_map,
} from '../src/uapi/index.ts';

const LEN = 64 << 20;
const ROUNDS = 5;
const MMIO_READS = 200_000;
const SRC = 0x1000_0000n;
const DST = 0x2000_0000n;
const RING = 0x10_0000n;

interface Dev {
  readonly host: Host;
  readonly p: Process;
  readonly container: number;
  readonly device: number;
  readonly arg: bigint;
}

function open(model: string): Dev {
  const host = new Host({ arch: 'x86_64', kernel: '6.12' });
  host.addPciDevice({ bdf: '0000:00:03.0', model, iommuGroup: 3 });
  if (host.bind('0000:00:03.0', 'vfio-pci') !== 0) throw new Error('bind');
  const p = host.spawn({ rlimitMemlock: 1n << 40n });
  const arg = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const group = p.open('/dev/vfio/3', O_RDWR);
  p.mem.write(arg, new Uint8Array(new Int32Array([container]).buffer));
  if (p.ioctl(group, VFIO_GROUP_SET_CONTAINER, arg) !== 0) throw new Error('SET_CONTAINER');
  if (p.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) !== 0) throw new Error('SET_IOMMU');
  p.mem.write(arg, new TextEncoder().encode('0000:00:03.0\0'));
  const device = p.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, arg);
  if (device < 0) throw new Error('GET_DEVICE_FD');
  return { host, p, container, device, arg };
}

function mapDma(d: Dev, vaddr: bigint, iova: bigint, size: number): void {
  d.p.mem.write(
    d.arg,
    vfio_iommu_type1_dma_map.encode({ argsz: 32, flags: 3, vaddr, iova, size: BigInt(size) }),
  );
  const r = d.p.ioctl(d.container, VFIO_IOMMU_MAP_DMA, d.arg);
  if (r !== 0) throw new Error(`MAP_DMA: ${r}`);
}

function anon(p: Process, len: number): bigint {
  return p.mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
}

function u32(v: number): Uint8Array {
  return new Uint8Array(new Uint32Array([v >>> 0]).buffer);
}

/* collect garbage outside the timed region when run with --expose-gc (npm run bench does) */
function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1] ?? 0;
}

/** ms for Buffer.copy of LEN bytes between two touched buffers */
function bufferCopyMs(): number {
  const src = Buffer.alloc(LEN, 0x5a);
  const dst = Buffer.alloc(LEN, 0);
  const times: number[] = [];
  src.copy(dst);
  for (let i = 0; i < ROUNDS; i++) {
    gc();
    const t = performance.now();
    src.copy(dst);
    times.push(performance.now() - t);
  }
  return median(times);
}

/** ms the copy engine takes for one LEN-byte MEMCPY through type1 */
function deviceCopyMs(pageMappings: boolean): number {
  const d = open('copy-engine');
  const { p, host } = d;
  /* command: memory + bus master */
  p.mem.write(d.arg, new Uint8Array([0x06, 0x00]));
  p.pwrite(d.device, d.arg, 2, (7n << 40n) + 4n);
  const bar0 = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d.device, 0n);
  const ring = anon(p, 4096);
  const src = anon(p, LEN);
  const dst = anon(p, LEN);
  /* touch both buffers, as a driver's buffers would be */
  const fill = new Uint8Array(1 << 20).fill(0x5a);
  for (let off = 0; off < LEN; off += fill.length) {
    p.mem.write(src + BigInt(off), fill);
    p.mem.write(dst + BigInt(off), new Uint8Array(16));
  }
  mapDma(d, ring, RING, 4096);
  if (pageMappings) {
    for (let off = 0; off < LEN; off += 4096) {
      mapDma(d, src + BigInt(off), SRC + BigInt(off), 4096);
      mapDma(d, dst + BigInt(off), DST + BigInt(off), 4096);
    }
  } else {
    mapDma(d, src, SRC, LEN);
    mapDma(d, dst, DST, LEN);
  }
  const reg = (off: number, v: number): void => p.mem.write(bar0 + BigInt(off), u32(v));
  reg(CE_REG_RING_BASE, Number(RING));
  reg(CE_REG_RING_BASE + 4, 0);
  reg(CE_REG_RING_SIZE, 16);
  reg(CE_REG_CTRL, CE_CTRL_ENABLE);
  const desc = new Uint8Array(64);
  const dv = new DataView(desc.buffer);
  dv.setUint32(0, CE_OP_MEMCPY, true);
  dv.setBigUint64(8, SRC, true);
  dv.setBigUint64(16, DST, true);
  dv.setBigUint64(24, BigInt(LEN), true);
  const times: number[] = [];
  /* one untimed round first: the first copy also faults in the destination's pages */
  for (let i = 0; i <= ROUNDS; i++) {
    const slot = i % 16;
    p.mem.write(ring + BigInt(slot * 64), desc);
    reg(CE_REG_TAIL, (slot + 1) % 16);
    const done = (): boolean =>
      new DataView(p.mem.read(bar0 + BigInt(CE_REG_COMPLETED), 4).buffer).getUint32(0, true) === i + 1;
    gc();
    const t = performance.now();
    host.kernel.clock.runUntil(done, 1e12);
    if (i > 0) times.push(performance.now() - t);
  }
  const check = p.mem.read(dst + BigInt(LEN - 16), 16);
  if (check.some((b) => b !== 0x5a)) throw new Error('the copy did not land');
  return median(times);
}

function mmioReadsPerSec(viaMmap: boolean): number {
  const d = open('edu');
  const { p } = d;
  const bar0 = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d.device, 0n);
  const buf = anon(p, 4096);
  const t = performance.now();
  for (let i = 0; i < MMIO_READS; i++) {
    if (viaMmap) p.mem.read(bar0, 4);
    else p.pread(d.device, buf, 4, 0n);
  }
  const s = (performance.now() - t) / 1000;
  return MMIO_READS / s;
}

export async function benchVfioPci(report: (line: string) => void): Promise<void> {
  const base = bufferCopyMs();
  report(`Buffer.copy of 64 MiB: ${base.toFixed(2)} ms (median of ${ROUNDS})`);
  for (const [name, pages] of [
    ['one 64 MiB mapping', false],
    ['16384 x 4 KiB mappings', true],
  ] as const) {
    const ms = deviceCopyMs(pages);
    report(
      `copy engine, 64 MiB through type1, ${name}: ${ms.toFixed(2)} ms, ${(LEN / 2 ** 20 / (ms / 1000)).toFixed(0)} MiB/s, ratio to Buffer.copy ${(base / ms).toFixed(2)} (target ${pages ? '0.5' : '0.8'})`,
    );
  }
  for (const mmap of [true, false]) {
    const rate = mmioReadsPerSec(mmap);
    report(
      `edu BAR0 32-bit reads through ${mmap ? 'the mmapped BAR' : 'pread'}: ${(rate / 1e6).toFixed(2)} M/s`,
    );
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchVfioPci((l) => console.log(l));
