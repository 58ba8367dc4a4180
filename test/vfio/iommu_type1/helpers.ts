import {
  Host,
  type HostOptions,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type SpawnOptions,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '../../../src/index.ts';
import type { KernelVersion } from '../../../src/kernel/index.ts';
import { type Type1Debug, type Type1Mapping, type1Debug } from '../../../src/vfio/iommu_type1/index.ts';
import { putS32, userAlloc } from '../../helpers/user.ts';

/*
 * Helpers for the type1 tests: x86 hosts whose groups hold a `generic`
 * device bound to vfio-pci, a process with a container and its groups
 * attached, and MAP/UNMAP/GET_INFO done through the raw ioctls with the
 * structs in the process's memory.
 */
export const PROFILES: readonly KernelVersion[] = ['4.1', '6.12'];
export const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
export const PAGE = 4096n;
export const MiB = 1n << 20n;

export interface Setup {
  readonly host: Host;
  readonly p: Process;
  readonly container: number;
  readonly groups: number[];
  /** scratch memory for ioctl arguments */
  readonly arg: bigint;
}

export interface SetupOptions {
  readonly kernel: KernelVersion;
  /** IOMMU groups to create (one generic device each), attached in this order */
  readonly groups?: readonly number[];
  /** VFIO_SET_IOMMU argument; undefined leaves the container without a driver */
  readonly type?: bigint | number | undefined;
  readonly spawn?: SpawnOptions;
  readonly host?: HostOptions;
  /** called after devices exist, before the process attaches (module params, DMAR units) */
  readonly before?: (host: Host) => void;
}

export function bdfOf(group: number): string {
  return `0000:00:${group.toString(16).padStart(2, '0')}.0`;
}

export function makeHost(kernel: KernelVersion, groups: readonly number[], opts: HostOptions = {}): Host {
  const host = new Host({ arch: 'x86_64', ...opts, kernel });
  for (const g of groups) {
    host.addPciDevice({ bdf: bdfOf(g), model: 'generic', iommuGroup: g });
    const r = host.bind(bdfOf(g), 'vfio-pci');
    if (r !== 0) throw new Error(`bind ${bdfOf(g)}: ${r}`);
  }
  return host;
}

/** a container with the groups set, and (unless type is undefined) the IOMMU driver */
export function setup(o: SetupOptions): Setup {
  const groups = o.groups ?? [3];
  const host = makeHost(o.kernel, groups, o.host);
  o.before?.(host);
  const p = host.spawn({ rlimitMemlock: 64n << 20n, ...o.spawn });
  const arg = userAlloc(p, 4096);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const fds: number[] = [];
  for (const g of groups) {
    const fd = p.open(`/dev/vfio/${g}`, O_RDWR);
    if (fd < 0) throw new Error(`open group ${g}: ${fd}`);
    const r = p.ioctl(fd, VFIO_GROUP_SET_CONTAINER, putS32(p, arg, container));
    if (r !== 0) throw new Error(`SET_CONTAINER ${g}: ${r}`);
    fds.push(fd);
  }
  const type = 'type' in o ? o.type : VFIO_TYPE1v2_IOMMU;
  if (type !== undefined) {
    const r = p.ioctl(container, VFIO_SET_IOMMU, type);
    if (r !== 0) throw new Error(`SET_IOMMU ${type}: ${r}`);
  }
  return { host, p, container, groups: fds, arg };
}

/** anonymous read-write memory, touched so it has pages */
export function anon(p: Process, size: bigint | number, prot = PROT_READ | PROT_WRITE): bigint {
  const a = p.mmap(0n, BigInt(size), prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  if (a < 0n) throw new Error(`mmap: ${a}`);
  return a;
}

export interface MapArgs {
  readonly vaddr: bigint;
  readonly iova: bigint;
  readonly size: bigint;
  readonly flags?: number;
  readonly argsz?: number;
}

export function mapDma(s: Setup, m: MapArgs, fd = s.container, p = s.p): number {
  p.mem.write(
    s.arg,
    vfio_iommu_type1_dma_map.encode({
      argsz: m.argsz ?? 32,
      flags: m.flags ?? RW,
      vaddr: m.vaddr,
      iova: m.iova,
      size: m.size,
    }),
  );
  return p.ioctl(fd, VFIO_IOMMU_MAP_DMA, s.arg);
}

export interface UnmapResult {
  readonly ret: number;
  /** the size field after the call (written back only on success) */
  readonly size: bigint;
}

export function unmapDma(
  s: Setup,
  iova: bigint,
  size: bigint,
  flags = 0,
  fd = s.container,
  p = s.p,
  argsz = 24,
): UnmapResult {
  p.mem.write(s.arg, vfio_iommu_type1_dma_unmap.encode({ argsz, flags, iova, size }));
  const ret = p.ioctl(fd, VFIO_IOMMU_UNMAP_DMA, s.arg);
  return { ret, size: vfio_iommu_type1_dma_unmap.decode(p.mem.read(s.arg, 24)).size };
}

export function getInfo(s: Setup, argsz: number, bytes = 256): { ret: number; buf: Uint8Array } {
  s.p.mem.write(s.arg, new Uint8Array(bytes));
  s.p.mem.write(s.arg, vfio_iommu_type1_info.encode({ argsz }));
  const ret = s.p.ioctl(s.container, VFIO_IOMMU_GET_INFO, s.arg);
  return { ret, buf: s.p.mem.read(s.arg, bytes) };
}

export function debug(s: Setup, fd = s.container): Type1Debug {
  const d = type1Debug(s.p, fd);
  if (d === undefined) throw new Error('no type1 state behind the container');
  return d;
}

/** the mapping set as [iova, size] pairs */
export function mappings(s: Setup): [bigint, bigint][] {
  return debug(s).mappings.map((m: Type1Mapping) => [m.iova, m.size]);
}

/** VmLck of /proc/self/status, in kB */
export function vmLckKb(p: Process): number {
  const t = p.readText('/proc/self/status');
  if (typeof t === 'number') throw new Error(`status: ${t}`);
  const m = /VmLck:\s+(-?\d+) kB/.exec(t);
  if (m === null) throw new Error('no VmLck line');
  return Number(m[1]);
}

/** dmesg lines logged since `from` (an index into host.dmesg()) */
export function dmesgSince(host: Host, from: number): string[] {
  return host.dmesg({ reasons: false }).slice(from);
}

export function dmesgMark(host: Host): number {
  return host.dmesg({ reasons: false }).length;
}
