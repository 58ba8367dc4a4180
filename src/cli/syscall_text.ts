import { ioctlName, vfioExtensionName } from '../debugfs/index.ts';
import {
  errnoName,
  type FieldTable,
  isErr,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type StructLayout,
  type Syscalls,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU,
  type VfioFdKind,
  vfio_device_info,
  vfio_eeh_pe_op,
  vfio_group_status,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_spapr_tce_create,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_spapr_tce_remove,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
} from '../uapi/index.ts';

/*
 * Syscalls as strace would print them, with VFIO's numbers named and the
 * ioctl argument structs decoded from the caller's memory: the inputs
 * before the call, and afterwards the fields the kernel wrote.
 */
export type FdKind = VfioFdKind | 'eventfd' | 'file';

export function retText(ret: number | bigint): string {
  if (isErr(ret)) {
    const n = typeof ret === 'bigint' ? Number(BigInt.asIntN(64, ret)) : ret;
    return `-${errnoName(-n)}`;
  }
  return typeof ret === 'bigint' ? `0x${ret.toString(16)}` : String(ret);
}

function flagText(v: number, table: readonly (readonly [number, string])[], zero: string): string {
  const parts = table.filter(([bit]) => bit !== 0 && (v & bit) === bit).map(([, n]) => n);
  const rest = table.reduce((r, [bit]) => r & ~bit, v);
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.length > 0 ? parts.join('|') : zero;
}

export function openFlags(flags: number): string {
  const acc = flags & 3;
  const base = acc === O_RDWR ? 'O_RDWR' : acc === O_WRONLY ? 'O_WRONLY' : 'O_RDONLY';
  const more = flagText(
    flags & ~3,
    [
      [O_CLOEXEC, 'O_CLOEXEC'],
      [O_NONBLOCK, 'O_NONBLOCK'],
    ],
    '',
  );
  return more === '' || (acc === O_RDONLY && more === '') ? base : `${base}|${more}`;
}

export function protText(prot: number): string {
  return flagText(
    prot,
    [
      [PROT_READ, 'PROT_READ'],
      [PROT_WRITE, 'PROT_WRITE'],
      [PROT_EXEC, 'PROT_EXEC'],
    ],
    'PROT_NONE',
  );
}

export function mapFlags(flags: number): string {
  return flagText(
    flags,
    [
      [MAP_SHARED, 'MAP_SHARED'],
      [MAP_PRIVATE, 'MAP_PRIVATE'],
      [MAP_FIXED, 'MAP_FIXED'],
      [MAP_ANONYMOUS, 'MAP_ANONYMOUS'],
    ],
    '0',
  );
}

/* ---- ioctl argument structs ---- */

interface ArgStruct {
  readonly layout: StructLayout<FieldTable>;
  /** fields the caller fills in (shown before the call) */
  readonly inputs: readonly string[];
}

const STRUCTS = new Map<number, ArgStruct>([
  [VFIO_GROUP_GET_STATUS, { layout: vfio_group_status, inputs: [] }],
  [VFIO_DEVICE_GET_INFO, { layout: vfio_device_info, inputs: [] }],
  [VFIO_DEVICE_GET_REGION_INFO, { layout: vfio_region_info, inputs: ['index'] }],
  [VFIO_DEVICE_GET_IRQ_INFO, { layout: vfio_irq_info, inputs: ['index'] }],
  [VFIO_DEVICE_SET_IRQS, { layout: vfio_irq_set, inputs: ['flags', 'index', 'start', 'count'] }],
]);

const CONTAINER_STRUCTS = new Map<string, ArgStruct>([
  ['VFIO_IOMMU_GET_INFO', { layout: vfio_iommu_type1_info, inputs: [] }],
  ['VFIO_IOMMU_MAP_DMA', { layout: vfio_iommu_type1_dma_map, inputs: ['flags', 'vaddr', 'iova', 'size'] }],
  ['VFIO_IOMMU_UNMAP_DMA', { layout: vfio_iommu_type1_dma_unmap, inputs: ['flags', 'iova', 'size'] }],
  ['VFIO_IOMMU_SPAPR_TCE_GET_INFO', { layout: vfio_iommu_spapr_tce_info, inputs: [] }],
  [
    'VFIO_IOMMU_SPAPR_REGISTER_MEMORY',
    { layout: vfio_iommu_spapr_register_memory, inputs: ['flags', 'vaddr', 'size'] },
  ],
  [
    'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY',
    { layout: vfio_iommu_spapr_register_memory, inputs: ['flags', 'vaddr', 'size'] },
  ],
  [
    'VFIO_IOMMU_SPAPR_TCE_CREATE',
    { layout: vfio_iommu_spapr_tce_create, inputs: ['flags', 'page_shift', 'window_size', 'levels'] },
  ],
  ['VFIO_IOMMU_SPAPR_TCE_REMOVE', { layout: vfio_iommu_spapr_tce_remove, inputs: ['flags', 'start_addr'] }],
  ['VFIO_EEH_PE_OP', { layout: vfio_eeh_pe_op, inputs: ['flags', 'op'] }],
]);

function fieldText(v: unknown): string {
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (typeof v === 'number') return v > 9 ? `0x${v.toString(16)}` : String(v);
  return String(v);
}

function readStruct(p: Syscalls, addr: bigint, s: ArgStruct): Record<string, unknown> | undefined {
  try {
    return s.layout.decode(p.mem.read(addr, s.layout.size)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function readCString(p: Syscalls, addr: bigint, max = 64): string | undefined {
  try {
    const out: number[] = [];
    for (let i = 0; i < max; i++) {
      const b = p.mem.read(addr + BigInt(i), 1)[0] ?? 0;
      if (b === 0) break;
      out.push(b);
    }
    return new TextDecoder().decode(new Uint8Array(out));
  } catch {
    return undefined;
  }
}

function readS32(p: Syscalls, addr: bigint): number | undefined {
  try {
    return new DataView(p.mem.read(addr, 4).buffer).getInt32(0, true);
  } catch {
    return undefined;
  }
}

export interface IoctlText {
  /** 'ioctl(3, VFIO_IOMMU_MAP_DMA, {flags=0x3, vaddr=..., iova=0x0, size=0x100000})' */
  readonly call: string;
  readonly name: string;
  /** after the call: the fields the kernel wrote ('{flags=0x7, size=0x100000}'), or '' */
  after(): string;
}

export function describeIoctl(
  p: Syscalls,
  fd: number,
  kind: FdKind,
  request: number,
  arg: number | bigint,
  arch: string,
): IoctlText {
  const nr = request >>> 0;
  const name = kind === 'eventfd' || kind === 'file' ? `0x${nr.toString(16)}` : ioctlName(nr, kind, { arch });
  const a = BigInt(arg);
  let argText = '';
  let struct: ArgStruct | undefined;
  if (nr === VFIO_CHECK_EXTENSION || nr === VFIO_SET_IOMMU) argText = vfioExtensionName(a);
  else if (nr === VFIO_GROUP_SET_CONTAINER && kind === 'group') {
    const v = readS32(p, a);
    argText = v === undefined ? `0x${a.toString(16)}` : `[${v}]`;
  } else if (nr === VFIO_GROUP_GET_DEVICE_FD && kind === 'group') {
    const s = readCString(p, a);
    argText = s === undefined ? `0x${a.toString(16)}` : JSON.stringify(s);
  } else {
    struct =
      kind === 'container'
        ? CONTAINER_STRUCTS.get(name)
        : kind === 'device' || kind === 'group'
          ? STRUCTS.get(nr)
          : undefined;
    if (struct !== undefined) {
      const before = readStruct(p, a, struct);
      argText =
        before === undefined
          ? `0x${a.toString(16)}`
          : `{${[...(struct.inputs.length > 0 ? ['argsz'] : []), ...struct.inputs].map((f) => `${f}=${fieldText(before[f])}`).join(', ')}}`;
      if (struct.inputs.length === 0) argText = '{…}';
    } else if (a !== 0n) argText = `0x${a.toString(16)}`;
  }
  const snapshot = struct === undefined ? undefined : readStruct(p, a, struct);
  return {
    name,
    call: `ioctl(${fd}, ${name}${argText === '' ? '' : `, ${argText}`})`,
    after(): string {
      if (struct === undefined || snapshot === undefined) return '';
      const now = readStruct(p, a, struct);
      if (now === undefined) return '';
      const changed = Object.keys(now).filter((k) => now[k] !== snapshot[k] && k !== 'pad');
      if (changed.length === 0) return '';
      return `{${changed.map((k) => `${k}=${fieldText(now[k])}`).join(', ')}}`;
    },
  };
}
