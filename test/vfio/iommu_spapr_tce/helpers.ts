import { Host, type Process } from '../../../src/index.ts';
import { type IommuGroup, type IommuTable, type PnvIodaPe, testBit } from '../../../src/iommu/index.ts';
import type { KernelVersion, MmStruct } from '../../../src/kernel/index.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_EEH_PE_OP,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
  VFIO_IOMMU_SPAPR_TCE_CREATE,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO,
  VFIO_IOMMU_SPAPR_TCE_REMOVE,
  VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  vfio_eeh_pe_op,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_spapr_tce_create,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_spapr_tce_remove,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '../../../src/uapi/index.ts';

/*
 * A ppc64 host with `generic` devices bound to vfio-pci, a process with
 * a scratch page for ioctl arguments, and the sPAPR ioctls as a C
 * program makes them (struct in user memory, pointer as the argument).
 */
export interface DevSpec {
  readonly bdf: string;
  readonly group: number;
  /** a host DMA-API driver instead of vfio-pci */
  readonly driver?: string;
  readonly tcePageShift?: number;
}

export interface SpaprHostOptions {
  readonly kernel?: KernelVersion;
  readonly pageSize?: 4096 | 65536;
  readonly dma32WindowStart?: bigint;
  readonly dma32WindowSize?: bigint;
  readonly devices?: readonly DevSpec[];
}

export function spaprHost(o: SpaprHostOptions = {}): Host {
  const host = new Host({
    arch: 'ppc64',
    kernel: o.kernel ?? '4.1',
    ...(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}),
    ...(o.dma32WindowStart !== undefined ? { dma32WindowStart: o.dma32WindowStart } : {}),
    ...(o.dma32WindowSize !== undefined ? { dma32WindowSize: o.dma32WindowSize } : {}),
  });
  for (const d of o.devices ?? [{ bdf: '0001:00:01.0', group: 1 }]) {
    host.addPciDevice({
      bdf: d.bdf,
      model: 'generic',
      iommuGroup: d.group,
      ...(d.driver !== undefined ? { driver: d.driver } : {}),
      ...(d.tcePageShift !== undefined ? { tcePageShift: d.tcePageShift } : {}),
    });
    if (d.driver === undefined && host.bind(d.bdf, 'vfio-pci') !== 0) throw new Error(`bind ${d.bdf} failed`);
  }
  return host;
}

export interface Session {
  readonly p: Process;
  /** scratch page for ioctl arguments */
  readonly arg: bigint;
  container: number;
  readonly groups: Map<number, number>;
}

export function session(host: Host, opts: { memlock?: bigint; capabilities?: number[] } = {}): Session {
  const p = host.spawn({
    rlimitMemlock: opts.memlock ?? 1n << 40n,
    ...(opts.capabilities !== undefined ? { capabilities: opts.capabilities } : {}),
  });
  const arg = p.mmap(0n, p.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  return { p, arg, container, groups: new Map() };
}

export function putFd(s: Session, fd: number): bigint {
  s.p.mem.write(s.arg, new Uint8Array(new Int32Array([fd]).buffer));
  return s.arg;
}

/** open /dev/vfio/$id and VFIO_GROUP_SET_CONTAINER; returns the SET_CONTAINER result */
export function addGroup(s: Session, id: number): number {
  const g = s.p.open(`/dev/vfio/${id}`, O_RDWR);
  if (g < 0) return g;
  s.groups.set(id, g);
  return s.p.ioctl(g, VFIO_GROUP_SET_CONTAINER, putFd(s, s.container));
}

export function unsetGroup(s: Session, id: number): number {
  return s.p.ioctl(s.groups.get(id) ?? -1, VFIO_GROUP_UNSET_CONTAINER);
}

export function setIommu(s: Session, type: number = VFIO_SPAPR_TCE_IOMMU): number {
  return s.p.ioctl(s.container, VFIO_SET_IOMMU, type);
}

/** host + session + group 1 in the container + SET_IOMMU(type) */
export function ready(
  o: SpaprHostOptions & { memlock?: bigint; type?: number; groups?: readonly number[] } = {},
): { host: Host; s: Session } {
  const host = spaprHost(o);
  const s = session(host, o.memlock !== undefined ? { memlock: o.memlock } : {});
  const devs = o.devices ?? [{ bdf: '0001:00:01.0', group: 1 }];
  for (const id of o.groups ?? [...new Set(devs.filter((d) => d.driver === undefined).map((d) => d.group))]) {
    if (addGroup(s, id) !== 0) throw new Error(`SET_CONTAINER ${id} failed`);
  }
  if (setIommu(s, o.type ?? VFIO_SPAPR_TCE_IOMMU) !== 0) throw new Error('SET_IOMMU failed');
  return { host, s };
}

/** anonymous memory for DMA buffers */
export function userMem(s: Session, size: number, prot = PROT_READ | PROT_WRITE): bigint {
  return s.p.mmap(0n, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
}

export interface MapArgs {
  readonly vaddr: bigint;
  readonly iova: bigint;
  readonly size: bigint;
  readonly flags?: number;
  readonly argsz?: number;
}

export function mapDma(s: Session, a: MapArgs, at = s.arg): number {
  s.p.mem.write(
    at,
    vfio_iommu_type1_dma_map.encode({
      argsz: a.argsz ?? 32,
      flags: a.flags ?? 3,
      vaddr: a.vaddr,
      iova: a.iova,
      size: a.size,
    }),
  );
  return s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, at);
}

export function unmapDma(
  s: Session,
  a: { iova: bigint; size: bigint; flags?: number; argsz?: number },
): number {
  s.p.mem.write(
    s.arg,
    vfio_iommu_type1_dma_unmap.encode({
      argsz: a.argsz ?? 24,
      flags: a.flags ?? 0,
      iova: a.iova,
      size: a.size,
    }),
  );
  return s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, s.arg);
}

export function getInfo(
  s: Session,
  argsz = 16,
): { ret: number; info: ReturnType<typeof vfio_iommu_spapr_tce_info.decode>; raw: Uint8Array } {
  /* a sentinel past what the kernel may write */
  s.p.mem.write(s.arg, new Uint8Array(48).fill(0xa5));
  s.p.mem.write(s.arg, vfio_iommu_spapr_tce_info.encode({ argsz }).subarray(0, 4));
  const ret = s.p.ioctl(s.container, VFIO_IOMMU_SPAPR_TCE_GET_INFO, s.arg);
  const raw = s.p.mem.read(s.arg, 48);
  return { ret, info: vfio_iommu_spapr_tce_info.decode(raw), raw };
}

export function eehOp(
  s: Session,
  op: number,
  o: { argsz?: number; flags?: number; err?: { type: number; func: number } } = {},
): number {
  s.p.mem.write(
    s.arg,
    vfio_eeh_pe_op.encode({
      argsz: o.argsz ?? 12,
      flags: o.flags ?? 0,
      op,
      err_type: o.err?.type ?? 0,
      err_func: o.err?.func ?? 0,
      err_addr: 0n,
      err_mask: 0n,
    }),
  );
  return s.p.ioctl(s.container, VFIO_EEH_PE_OP, s.arg);
}

export function registerMemory(
  s: Session,
  vaddr: bigint,
  size: bigint,
  o: { flags?: number; argsz?: number } = {},
): number {
  s.p.mem.write(
    s.arg,
    vfio_iommu_spapr_register_memory.encode({ argsz: o.argsz ?? 24, flags: o.flags ?? 0, vaddr, size }),
  );
  return s.p.ioctl(s.container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, s.arg);
}

export function unregisterMemory(
  s: Session,
  vaddr: bigint,
  size: bigint,
  o: { flags?: number; argsz?: number } = {},
): number {
  s.p.mem.write(
    s.arg,
    vfio_iommu_spapr_register_memory.encode({ argsz: o.argsz ?? 24, flags: o.flags ?? 0, vaddr, size }),
  );
  return s.p.ioctl(s.container, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, s.arg);
}

export function tceCreate(
  s: Session,
  c: { page_shift: number; window_size: bigint; levels: number; flags?: number; argsz?: number },
): { ret: number; start: bigint } {
  s.p.mem.write(
    s.arg,
    vfio_iommu_spapr_tce_create.encode({
      argsz: c.argsz ?? 40,
      flags: c.flags ?? 0,
      page_shift: c.page_shift,
      window_size: c.window_size,
      levels: c.levels,
      start_addr: 0xdeadn,
    }),
  );
  const ret = s.p.ioctl(s.container, VFIO_IOMMU_SPAPR_TCE_CREATE, s.arg);
  return { ret, start: vfio_iommu_spapr_tce_create.decode(s.p.mem.read(s.arg, 40)).start_addr };
}

export function tceRemove(s: Session, start: bigint, o: { flags?: number; argsz?: number } = {}): number {
  s.p.mem.write(
    s.arg,
    vfio_iommu_spapr_tce_remove.encode({ argsz: o.argsz ?? 16, flags: o.flags ?? 0, start_addr: start }),
  );
  return s.p.ioctl(s.container, VFIO_IOMMU_SPAPR_TCE_REMOVE, s.arg);
}

/* ---- observing the platform ---- */

export function group(host: Host, id: number): IommuGroup {
  const g = host.iommu.groups.get(id);
  if (g === undefined) throw new Error(`no group ${id}`);
  return g;
}

export function pe(host: Host, id: number): PnvIodaPe {
  const p = host.ppc64?.pe(group(host, id));
  if (p === undefined) throw new Error(`group ${id} has no PE`);
  return p;
}

/** the table translating window `num` of the group's PE (4.1: the one table) */
export function table(host: Host, id: number, num = 0): IommuTable {
  const t = pe(host, id).table_group.tables[num];
  if (t === undefined) throw new Error(`group ${id} has no window #${num}`);
  return t;
}

/** the set bits of it_map (table-relative entry numbers) */
export function mapBits(t: IommuTable): number[] {
  const out: number[] = [];
  const map = t.it_map;
  if (map === undefined) return out;
  for (let i = 0; i < t.it_size; i++) {
    if ((i & 7) === 0 && map[i >>> 3] === 0) {
      i += 7;
      continue;
    }
    if (testBit(map, i)) out.push(i);
  }
  return out;
}

export function mm(s: Session): MmStruct {
  const m = s.p.task.mm;
  if (m === null) throw new Error('no mm');
  return m;
}

/** the physical address a user address is backed by */
export function physOf(s: Session, vaddr: bigint): number {
  const a = Number(vaddr);
  const v = mm(s).findVma(a);
  if (v?.obj === undefined) throw new Error(`0x${a.toString(16)} is not mapped`);
  return v.obj.phys + v.objOffset + (a - v.start);
}

/** get_user_pages references on the page holding phys */
export function pins(host: Host, phys: number): number {
  const o = host.kernel.phys.lookup(phys);
  if (o === undefined) return 0;
  return o.pinCount(Math.floor((phys - o.phys) / o.pageSize));
}

export function dirty(host: Host, phys: number): boolean {
  const o = host.kernel.phys.lookup(phys);
  if (o === undefined) return false;
  return o.isDirty(Math.floor((phys - o.phys) / o.pageSize));
}

/** a device DMA (as a device model would do it) */
export function dmaRead(host: Host, bdf: string, iova: bigint, len: number): Uint8Array | undefined {
  const dev = host.device(bdf);
  if (dev === undefined) throw new Error(`no ${bdf}`);
  const b = new Uint8Array(len);
  return host.iommu.dmaAccess(dev, iova, b, false) ? b : undefined;
}

export function dmaWrite(host: Host, bdf: string, iova: bigint, data: Uint8Array): boolean {
  const dev = host.device(bdf);
  if (dev === undefined) throw new Error(`no ${bdf}`);
  return host.iommu.dmaAccess(dev, iova, data, true);
}

/** dmesg lines since a mark */
export function logMark(host: Host): () => string[] {
  const seq = host.kernel.log.lastSeq;
  return () => host.kernel.log.since(seq).map((r) => r.text);
}
