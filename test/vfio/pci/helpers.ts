import assert from 'node:assert/strict';
import { Host, type HostOptions } from '../../../src/host/index.ts';
import type { DmaRun, IommuDomain, IommuFault, IommuGroup } from '../../../src/iommu/index.ts';
import type { Process } from '../../../src/kernel/index.ts';
import {
  EFD_NONBLOCK,
  O_RDWR,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INDEX_TO_OFFSET,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_irq_set,
  vfio_region_info,
} from '../../../src/uapi/index.ts';
import { type VfioIommuDriverOps, vfioRegisterIommuDriver } from '../../../src/vfio/index.ts';
import { putCString, putS32, userAlloc } from '../../helpers/user.ts';

/*
 * vfio-pci test bench: a host with one device bound to vfio-pci, a small
 * IOMMU driver of our own (a flat IOVA -> user page table, pinned the way
 * type1 pins), and the raw-syscall steps to get a device fd.
 */
export const TEST_IOMMU = 0x7e5e;

interface Mapping {
  mm: NonNullable<Process['task']['mm']>;
  iova: bigint;
  len: number;
  phys: number[];
  read: boolean;
  write: boolean;
}

/** a page-granular IOMMU domain of pinned user pages */
export class TestDomain implements IommuDomain {
  readonly type = 'unmanaged';
  readonly maps: Mapping[] = [];
  constructor(
    readonly host: Host,
    readonly pageSize: number,
  ) {}

  map(
    p: Process,
    vaddr: bigint,
    iova: bigint,
    len: number,
    perm: { read?: boolean; write?: boolean } = {},
  ): void {
    const mm = p.task.mm;
    if (mm === null) throw new Error('no mm');
    const phys: number[] = [];
    for (let off = 0; off < len; off += this.pageSize) {
      const pa = mm.pinPage(Number(vaddr) + off, perm.write ?? true);
      if (pa < 0) throw new Error(`pin failed at 0x${(Number(vaddr) + off).toString(16)}: ${pa}`);
      phys.push(pa);
    }
    this.maps.push({ mm, iova, len, phys, read: perm.read ?? true, write: perm.write ?? true });
  }

  unmapAll(): void {
    for (const m of this.maps.splice(0)) for (const pa of m.phys) m.mm.unpinPage(pa, m.write);
  }

  translate(iova: bigint, len: number, write: boolean, runs: DmaRun[]): IommuFault | undefined {
    let at = iova;
    let left = len;
    while (left > 0) {
      const m = this.maps.find((x) => at >= x.iova && at < x.iova + BigInt(x.len));
      if (m === undefined) return { iova: at, write, reason: 'not mapped' };
      if (write ? !m.write : !m.read)
        return { iova: at, write, reason: write ? 'no write permission' : 'no read permission' };
      const off = Number(at - m.iova);
      const page = Math.floor(off / this.pageSize);
      const inPage = off % this.pageSize;
      const n = Math.min(left, this.pageSize - inPage);
      const phys = (m.phys[page] as number) + inPage;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.phys + last.len === phys) last.len += n;
      else runs.push({ phys, len: n });
      at += BigInt(n);
      left -= n;
    }
    return undefined;
  }
}

export interface TestIommu {
  readonly ops: VfioIommuDriverOps;
  domain: TestDomain | undefined;
}

export function registerTestIommu(host: Host): TestIommu {
  const t: TestIommu = { ops: undefined as unknown as VfioIommuDriverOps, domain: undefined };
  const ops: VfioIommuDriverOps = {
    name: 'vfio_pci_test_iommu',
    open: () => {
      t.domain = new TestDomain(host, host.pageSize);
      return t.domain;
    },
    release: () => {
      t.domain?.unmapAll();
      t.domain = undefined;
    },
    ioctl: (_d, cmd, arg) => (cmd === VFIO_CHECK_EXTENSION ? (arg === BigInt(TEST_IOMMU) ? 1 : 0) : -25),
    attach_group: (d, g: IommuGroup) => host.iommu.attachGroup(d as TestDomain, g),
    detach_group: (d, g: IommuGroup) => host.iommu.detachGroup(d as TestDomain, g),
  };
  (t as { ops: VfioIommuDriverOps }).ops = ops;
  host.inKernel(() => assert.equal(vfioRegisterIommuDriver(ops), 0));
  return t;
}

export interface Bench {
  readonly host: Host;
  readonly iommu: TestIommu;
  readonly p: Process;
  readonly container: number;
  readonly group: number;
  readonly device: number;
  /** a scratch page for ioctl arguments */
  readonly arg: bigint;
  readonly bdf: string;
  /** host.liveObjects() before the process existed */
  readonly baseline: Record<string, number>;
}

export interface BenchOptions extends HostOptions {
  readonly model?: string;
  readonly bdf?: string;
  readonly group?: number;
  readonly device?: Record<string, unknown>;
  /** add these devices first (bridges ...) */
  readonly before?: readonly Record<string, unknown>[];
  readonly rlimitMemlock?: bigint;
  /** the platform's own backend (type1 on x86_64, sPAPR TCE on ppc64) instead of the test IOMMU */
  readonly realIommu?: boolean;
}

/** a host, the device bound to vfio-pci, and a process holding container, group and device fds */
export function bench(o: BenchOptions = {}): Bench {
  const host = new Host(o);
  for (const d of o.before ?? []) host.addPciDevice(d as never);
  const bdf = o.bdf ?? '0000:00:03.0';
  const gid = o.group ?? 3;
  host.addPciDevice({ bdf, model: o.model ?? 'edu', iommuGroup: gid, ...(o.device ?? {}) });
  assert.equal(host.bind(bdf, 'vfio-pci'), 0);
  const iommu = registerTestIommu(host);
  const baseline = { ...host.liveObjects() };
  const p = host.spawn({ rlimitMemlock: o.rlimitMemlock ?? 1n << 40n });
  const arg = userAlloc(p, p.pageSize);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const group = p.open(`/dev/vfio/${gid}`, O_RDWR);
  assert.ok(container >= 0 && group >= 0);
  assert.equal(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, putS32(p, arg, container)), 0);
  if (o.realIommu === true) {
    const spapr = host.arch === 'ppc64';
    assert.equal(p.ioctl(container, VFIO_SET_IOMMU, spapr ? VFIO_SPAPR_TCE_IOMMU : VFIO_TYPE1v2_IOMMU), 0);
    if (spapr) assert.equal(p.ioctl(container, VFIO_IOMMU_ENABLE), 0);
  } else assert.equal(p.ioctl(container, VFIO_SET_IOMMU, TEST_IOMMU), 0);
  const device = p.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, putCString(p, arg, bdf));
  assert.ok(device >= 0, `GET_DEVICE_FD: ${device}`);
  return { host, iommu, p, container, group, device, arg, bdf, baseline };
}

/* ---- DMA mappings through the platform's backend ---- */

/** the IOVA window DMA may use: type1 anywhere low, sPAPR its 32-bit window */
export function dmaWindow(b: Bench): { start: bigint; size: bigint } {
  if (b.host.arch !== 'ppc64') return { start: 0n, size: 1n << 39n };
  b.p.mem.write(b.arg, vfio_iommu_spapr_tce_info.encode({ argsz: 32 }));
  assert.equal(b.p.ioctl(b.container, VFIO_IOMMU_SPAPR_TCE_GET_INFO, b.arg), 0);
  const info = vfio_iommu_spapr_tce_info.decode(b.p.mem.read(b.arg, 32));
  return { start: BigInt(info.dma32_window_start), size: BigInt(info.dma32_window_size) };
}

export function mapDma(b: Bench, vaddr: bigint, iova: bigint, size: number, flags = 3): number {
  b.p.mem.write(
    b.arg,
    vfio_iommu_type1_dma_map.encode({ argsz: 32, flags, vaddr, iova, size: BigInt(size) }),
  );
  return b.p.ioctl(b.container, VFIO_IOMMU_MAP_DMA, b.arg);
}

export function unmapDma(b: Bench, iova: bigint, size: number): number {
  b.p.mem.write(b.arg, vfio_iommu_type1_dma_unmap.encode({ argsz: 24, flags: 0, iova, size: BigInt(size) }));
  return b.p.ioctl(b.container, VFIO_IOMMU_UNMAP_DMA, b.arg);
}

/* ---- region access through the raw calls ---- */

export function regionOffset(index: number): bigint {
  return VFIO_PCI_INDEX_TO_OFFSET(index);
}

export function preadBytes(b: Bench, index: number, off: number, len: number): Uint8Array | number {
  const buf = userAlloc(b.p, len);
  const r = b.p.pread(b.device, buf, len, regionOffset(index) + BigInt(off));
  if (r < 0) return r;
  return b.p.mem.read(buf, r);
}

export function pwriteBytes(b: Bench, index: number, off: number, bytes: Uint8Array): number {
  const buf = userAlloc(b.p, bytes.length);
  b.p.mem.write(buf, bytes);
  return b.p.pwrite(b.device, buf, bytes.length, regionOffset(index) + BigInt(off));
}

function leBytes(v: number | bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = BigInt.asUintN(64, BigInt(v));
  for (let i = 0; i < size; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function fromLe(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] ?? 0);
  return v;
}

/** read `size` bytes of a region as a little-endian number */
export function rd(b: Bench, index: number, off: number, size: number): number {
  const r = preadBytes(b, index, off, size);
  if (typeof r === 'number') throw new Error(`pread region ${index} @0x${off.toString(16)}: ${r}`);
  return Number(fromLe(r));
}

export function rd64(b: Bench, index: number, off: number): bigint {
  const r = preadBytes(b, index, off, 8);
  if (typeof r === 'number') throw new Error(`pread region ${index} @0x${off.toString(16)}: ${r}`);
  return fromLe(r);
}

export function wr(b: Bench, index: number, off: number, size: number, v: number | bigint): number {
  return pwriteBytes(b, index, off, leBytes(v, size));
}

export function cfgRd(b: Bench, off: number, size: number): number {
  return rd(b, VFIO_PCI_CONFIG_REGION_INDEX, off, size);
}

export function cfgWr(b: Bench, off: number, size: number, v: number): number {
  return wr(b, VFIO_PCI_CONFIG_REGION_INDEX, off, size, v);
}

/* ---- ioctls ---- */

export function regionInfo(b: Bench, index: number, argsz = 32) {
  b.p.mem.write(b.arg, new Uint8Array(64));
  b.p.mem.write(b.arg, vfio_region_info.encode({ argsz, index }));
  const r = b.p.ioctl(b.device, VFIO_DEVICE_GET_REGION_INFO, b.arg);
  return { r, info: vfio_region_info.decode(b.p.mem.read(b.arg, 32)), raw: b.p.mem.read(b.arg, 64) };
}

/** SET_IRQS with flags and raw data bytes; argsz defaults to exactly the header + data */
export function setIrqs(
  b: Bench,
  o: { flags: number; index: number; start?: number; count?: number; data?: Uint8Array; argsz?: number },
): number {
  const data = o.data ?? new Uint8Array(0);
  const hdr = vfio_irq_set.encode({
    argsz: o.argsz ?? 20 + data.length,
    flags: o.flags,
    index: o.index,
    start: o.start ?? 0,
    count: o.count ?? 0,
  });
  const buf = new Uint8Array(20 + data.length);
  buf.set(hdr);
  buf.set(data, 20);
  b.p.mem.write(b.arg, buf);
  return b.p.ioctl(b.device, VFIO_DEVICE_SET_IRQS, b.arg);
}

export function s32s(...fds: number[]): Uint8Array {
  const out = new Uint8Array(fds.length * 4);
  const dv = new DataView(out.buffer);
  fds.forEach((fd, i) => {
    dv.setInt32(i * 4, fd, true);
  });
  return out;
}

/** eventfds for vectors start..start+n-1, set as triggers; returns the fds */
export function triggerEventfds(
  b: Bench,
  index: number,
  n: number,
  start = 0,
): { ret: number; fds: number[] } {
  const fds = Array.from({ length: n }, () => b.p.eventfd(0, EFD_NONBLOCK));
  const ret = setIrqs(b, {
    flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
    index,
    start,
    count: n,
    data: s32s(...fds),
  });
  return { ret, fds };
}

/** the eventfd counter, read without blocking (0 when nothing was signalled) */
export function efdCount(b: Bench, fd: number): bigint {
  const buf = userAlloc(b.p, 8);
  const r = b.p.read(fd, buf, 8);
  if (r === -11) return 0n;
  assert.equal(r, 8);
  return fromLe(b.p.mem.read(buf, 8));
}

export { fromLe, leBytes };
