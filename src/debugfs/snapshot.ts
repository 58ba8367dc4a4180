import type { IommuCore, IommuGroup } from '../iommu/index.ts';
import type { File, Kernel, Task } from '../kernel/index.ts';
import type { PciDev, PciSubsystem } from '../pci/index.ts';
import {
  type VfioContainer,
  type VfioDevice,
  type VfioGroup,
  vfioCoreProfile,
  vfioGroupViable,
  vfioOf,
} from '../vfio/index.ts';
import { describeOpaque, hex, type JsonValue } from './json.ts';

/*
 * A read-only snapshot of the live VFIO objects of one machine, as plain
 * JSON-able data: the seed's Figure 0 (struct vfio, its IOMMU driver list,
 * groups, devices, containers and their iommu_data) plus who holds what
 * (processes, their fds and mappings, and every reference count on the
 * way). Objects reference each other by id strings; ids are stable for
 * the life of an object, so two snapshots of one machine can be diffed.
 */
export interface SnapshotSource {
  readonly kernel: Kernel;
  readonly iommu: IommuCore;
  readonly pci: PciSubsystem;
}

export interface Snapshot {
  readonly host: HostSnap;
  /** null while vfio.ko is not loaded */
  readonly vfio: VfioSnap | null;
  readonly iommuGroups: IommuGroupSnap[];
  readonly groups: GroupSnap[];
  readonly devices: DeviceSnap[];
  readonly containers: ContainerSnap[];
  readonly processes: ProcessSnap[];
  readonly files: FileSnap[];
  readonly modules: ModuleSnap[];
  /** live kernel objects by kind (kzalloc'ed and not yet kfree'd) */
  readonly objects: Record<string, number>;
  readonly faults: FaultSnap[];
}

export interface HostSnap {
  readonly arch: string;
  readonly kernel: string;
  readonly pageSize: number;
  readonly clockNs: number;
}

export interface VfioSnap {
  /** vfio.iommu_drivers_list, in list order */
  readonly iommuDrivers: IommuDriverSnap[];
  /** vfio.group_list, in list order (group ids) */
  readonly groups: string[];
}

export interface IommuDriverSnap {
  readonly id: string;
  readonly name: string;
  readonly module: string | null;
  /** the owner module's reference count (one per container using it, plus transient gets) */
  readonly moduleRefcnt: number | null;
}

export interface IommuGroupSnap {
  readonly id: string;
  readonly number: number;
  readonly kref: number;
  readonly devices: string[];
  /** the domain the group's DMA translates through: its type, or null (blocked) */
  readonly domain: string | null;
  readonly ownerCnt: number;
  readonly reservedRegions: { start: string; end: string; type: string }[];
  /** the arch's iommudata (sPAPR: the iommu_table), through its debugSnapshot hook */
  readonly iommuData: JsonValue;
  /** the vfio_group bound to it, if any */
  readonly vfioGroup: string | null;
  /**
   * could VFIO use the group: the kernel's vfio_group_viable when a
   * vfio_group exists, else the same rule applied to the bound drivers
   */
  readonly viable: boolean;
  /** the devices that make it not viable, and the host driver each is bound to */
  readonly blockers: { device: string; driver: string }[];
}

export interface GroupSnap {
  readonly id: string;
  readonly iommuGroup: number | null;
  readonly minor: number;
  readonly devnode: string | null;
  readonly kref: number;
  readonly containerUsers: number;
  /** 4.1: atomic group->opened; null in 6.12 */
  readonly opened: number | null;
  /** 6.12: group->opened_file (a file id) */
  readonly openedFile: string | null;
  readonly viable: boolean;
  readonly container: string | null;
  /** group->device_list (vfio device ids: 'vfio_device:<bdf>') */
  readonly devices: string[];
  /** devices being unbound (4.1 unbound_list) */
  readonly unbound: string[];
}

export interface VfioDeviceSnap {
  readonly id: string;
  readonly kref: number;
  readonly ops: string;
  readonly group: string;
  /** 6.12: open_count and registration refcount */
  readonly openCount: number;
  readonly registration: number;
  /** the bus driver's device_data (vfio-pci's vfio_pci_device) */
  readonly data: JsonValue;
}

export interface DeviceSnap {
  readonly id: string;
  readonly bdf: string;
  readonly vendor: string;
  readonly device: string;
  readonly class: string;
  readonly model: string;
  readonly driver: string | null;
  readonly driverOverride: string | null;
  readonly iommuGroup: number | null;
  readonly parent: string | null;
  /** set while the device is registered with VFIO (bound to vfio-pci) */
  readonly vfio: VfioDeviceSnap | null;
}

export interface ContainerSnap {
  readonly id: string;
  readonly kref: number;
  /** container->group_list, in list order */
  readonly groups: string[];
  readonly iommuDriver: string | null;
  /** container->iommu_data through the backend's debugSnapshot hook */
  readonly iommuData: JsonValue;
  readonly noiommu: boolean;
}

export interface FdSnap {
  readonly fd: number;
  readonly file: string;
  readonly cloexec: boolean;
}

export interface MmapSnap {
  readonly start: string;
  readonly end: string;
  readonly file: string;
}

export interface ProcessSnap {
  readonly id: string;
  readonly pid: number;
  readonly comm: string;
  /** mm->locked_vm in pages (null after exit_mm) */
  readonly lockedVm: number | null;
  readonly pinnedVm: number | null;
  readonly memlockLimit: string;
  readonly fds: FdSnap[];
  /** file-backed mappings (each holds a reference on its file) */
  readonly mmaps: MmapSnap[];
}

export type FileKind = 'container' | 'group' | 'device' | 'eventfd' | 'other';

export interface FileSnap {
  readonly id: string;
  readonly path: string;
  readonly fops: string;
  readonly fCount: number;
  readonly kind: FileKind;
  /** the object private_data points at (container, group or vfio_device id) */
  readonly object: string | null;
}

export interface ModuleSnap {
  readonly name: string;
  readonly state: string;
  readonly refcnt: number;
}

export interface FaultSnap {
  readonly device: string;
  readonly iova: string;
  readonly write: boolean;
  readonly reason: string;
}

/* ---- ids: stable per object for the life of a kernel ---- */

interface IdSpace {
  readonly ids: WeakMap<object, string>;
  readonly next: Map<string, number>;
}
const idSpaces = new WeakMap<Kernel, IdSpace>();

function idOf(k: Kernel, kind: string, obj: object): string {
  let sp = idSpaces.get(k);
  if (sp === undefined) {
    sp = { ids: new WeakMap(), next: new Map() };
    idSpaces.set(k, sp);
  }
  let id = sp.ids.get(obj);
  if (id === undefined) {
    const n = (sp.next.get(kind) ?? 0) + 1;
    sp.next.set(kind, n);
    id = `${kind}:${n}`;
    sp.ids.set(obj, id);
  }
  return id;
}

export const groupId = (iommuGroup: number | undefined, minor: number): string =>
  iommuGroup === undefined ? `group:minor${minor}` : `group:${iommuGroup}`;
export const deviceId = (bdf: string): string => `pci:${bdf}`;
export const vfioDeviceId = (bdf: string): string => `vfio_device:${bdf}`;
export const iommuGroupId = (n: number): string => `iommu_group:${n}`;
export const processId = (pid: number): string => `pid:${pid}`;
export const driverId = (name: string): string => `iommu_driver:${name}`;

/* ---- the walk ---- */

/** run kernel code for the snapshot without it appearing in a running trace */
function quietly<T>(k: Kernel, fn: () => T): T {
  const t = k.tracer;
  const was = t.enabled;
  const reasons = k.logReasons;
  if (was) t.stop();
  k.logReasons = false;
  try {
    return k.inKernel(fn);
  } finally {
    k.logReasons = reasons;
    if (was) t.start();
  }
}

export function takeSnapshot(src: SnapshotSource): Snapshot {
  const k = src.kernel;
  const v = vfioOf(k);
  const gid = (g: VfioGroup): string => groupId(g.iommu_group?.id, g.minor);

  /* files: from fd tables and mappings, in pid then fd order */
  const files = new Map<File, FileSnap>();
  const containers = new Map<VfioContainer, null>();
  const noteFile = (f: File): string => {
    const id = idOf(k, 'file', f);
    if (files.has(f)) return id;
    let kind: FileKind = 'other';
    let object: string | null = null;
    if (v !== undefined && f.f_op === v.fops && f.private_data !== undefined) {
      kind = 'container';
      const c = f.private_data as VfioContainer;
      containers.set(c, null);
      object = idOf(k, 'container', c);
    } else if (v !== undefined && f.f_op === v.groupFops && f.private_data !== undefined) {
      kind = 'group';
      object = gid(f.private_data as VfioGroup);
    } else if (v !== undefined && f.f_op === v.deviceFops) {
      kind = 'device';
      object = vfioDeviceId((f.private_data as VfioDevice).dev.name);
    } else if (f.path === 'anon_inode:[eventfd]') kind = 'eventfd';
    files.set(f, { id, path: f.path, fops: f.f_op.name, fCount: f.f_count, kind, object });
    return id;
  };

  const tasks = [...k.tasks.values()].sort((a, b) => a.pid - b.pid);
  const processes = tasks.map((t) => processSnap(t, noteFile));

  /* struct vfio: drivers, groups, and the containers groups point at */
  const groups: GroupSnap[] = [];
  let vfioSnap: VfioSnap | null = null;
  const vdevs = new Map<PciDev | object, VfioDeviceSnap>();
  if (v !== undefined) {
    vfioSnap = {
      iommuDrivers: v.iommu_drivers_list.map((d) => ({
        id: driverId(d.ops.name),
        name: d.ops.name,
        module: d.ops.owner?.name ?? null,
        moduleRefcnt: d.ops.owner?.refcnt ?? null,
      })),
      groups: v.group_list.map(gid),
    };
    for (const g of [...v.group_list].sort((a, b) => (a.iommu_group?.id ?? -1) - (b.iommu_group?.id ?? -1))) {
      if (g.container !== undefined) containers.set(g.container, null);
      const viable = quietly(k, () => vfioGroupViable(g));
      for (const d of g.device_list) vdevs.set(d.dev, vfioDeviceSnap(d, gid(g)));
      if (g.opened_file !== undefined) noteFile(g.opened_file);
      groups.push({
        id: gid(g),
        iommuGroup: g.iommu_group?.id ?? null,
        minor: g.minor,
        devnode: g.dev?.nodePath ?? null,
        kref: g.kref.refcount,
        containerUsers: g.container_users.read(),
        opened: v.profile.groupOpenedFile ? null : g.opened.read(),
        openedFile: g.opened_file === undefined ? null : idOf(k, 'file', g.opened_file),
        viable,
        container: g.container === undefined ? null : idOf(k, 'container', g.container),
        devices: g.device_list.map((d) => vfioDeviceId(d.dev.name)),
        unbound: g.unbound_list.map((u) => deviceId(u.dev.name)),
      });
    }
  }

  const containerSnaps: ContainerSnap[] = [...containers.keys()]
    .map((c) => ({
      id: idOf(k, 'container', c),
      kref: c.kref.refcount,
      groups: c.group_list.map(gid),
      iommuDriver: c.iommu_driver?.ops.name ?? null,
      iommuData: describeOpaque(c.iommu_data),
      noiommu: c.noiommu,
    }))
    .sort((a, b) => idNum(a.id) - idNum(b.id));

  const byGroup = new Map<IommuGroup, string>();
  for (const g of v?.group_list ?? []) if (g.iommu_group !== undefined) byGroup.set(g.iommu_group, gid(g));
  const viableOf = new Map(groups.map((g) => [g.id, g.viable]));
  const okDrivers = vfioCoreProfile(k.version).viableDriverWhitelist;
  const dma612 = vfioCoreProfile(k.version).dmaOwnership;
  /* a device blocks its group when a host driver that does DMA through the DMA API owns it */
  const blockersOf = (g: IommuGroup): { device: string; driver: string }[] =>
    g.devices
      .filter((d) => {
        const drv = d.driver;
        if (drv === undefined) return false;
        if (dma612) return drv.driver_managed_dma !== true;
        if (okDrivers.includes(drv.name)) return false;
        return !vdevs.has(d);
      })
      .map((d) => ({ device: deviceId(d.name), driver: d.driver?.name ?? '' }));
  const iommuGroups: IommuGroupSnap[] = [...src.iommu.groups.values()]
    .sort((a, b) => a.id - b.id)
    .map((g) => ({
      id: iommuGroupId(g.id),
      number: g.id,
      kref: g.kref.refcount,
      devices: g.devices.map((d) => deviceId(d.name)),
      domain: g.domain === undefined ? null : g.domain.type,
      ownerCnt: g.owner_cnt,
      reservedRegions: g.reservedRegions.map((r) => ({ start: hex(r.start), end: hex(r.end), type: r.type })),
      iommuData: describeOpaque(g.iommu_data),
      vfioGroup: byGroup.get(g) ?? null,
      viable: viableOf.get(byGroup.get(g) ?? '') ?? blockersOf(g).length === 0,
      blockers: blockersOf(g),
    }));

  const devices: DeviceSnap[] = src.pci
    .devices()
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((d) => ({
      id: deviceId(d.name),
      bdf: d.name,
      vendor: hex4(d.vendor),
      device: hex4(d.device),
      class: `0x${d.class.toString(16).padStart(6, '0')}`,
      model: d.model.model,
      driver: d.driver?.name ?? null,
      driverOverride: d.driver_override ?? null,
      iommuGroup: d.iommu_group?.id ?? null,
      parent: d.bridge?.name ?? null,
      vfio: vdevs.get(d) ?? null,
    }));

  return {
    host: { arch: k.arch.name, kernel: k.version, pageSize: k.pageSize, clockNs: k.clock.now },
    vfio: vfioSnap,
    iommuGroups,
    groups,
    devices,
    containers: containerSnaps,
    processes,
    files: [...files.values()].sort((a, b) => idNum(a.id) - idNum(b.id)),
    modules: k.modules
      .list()
      .map((m) => ({ name: m.name, state: m.state, refcnt: m.refcnt }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
    objects: k.objects.snapshot(),
    faults: src.iommu.faults.map((f) => ({
      device: f.device,
      iova: hex(f.iova),
      write: f.write,
      reason: f.reason,
    })),
  };
}

function processSnap(t: Task, noteFile: (f: File) => string): ProcessSnap {
  const mm = t.mm;
  return {
    id: processId(t.pid),
    pid: t.pid,
    comm: t.comm,
    lockedVm: mm === null ? null : mm.locked_vm,
    pinnedVm: mm === null ? null : mm.pinned_vm,
    memlockLimit: limitText(t.memlockLimit()),
    fds: t.files.entries().map(([fd, f]) => ({ fd, file: noteFile(f), cloexec: t.files.isCloexec(fd) })),
    mmaps: (mm?.vmas ?? [])
      .filter((vma) => vma.vm_file !== undefined)
      .map((vma) => ({ start: hex(vma.start), end: hex(vma.end), file: noteFile(vma.vm_file as File) })),
  };
}

function vfioDeviceSnap(d: VfioDevice, group: string): VfioDeviceSnap {
  return {
    id: vfioDeviceId(d.dev.name),
    kref: d.kref.refcount,
    ops: d.ops.name,
    group,
    openCount: d.open_count,
    registration: d.registration,
    data: describeOpaque(d.device_data),
  };
}

function hex4(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}

function limitText(b: bigint): string {
  if (b >= 0x7fff_ffff_ffff_ffffn) return 'unlimited';
  return String(b);
}

function idNum(id: string): number {
  return Number(id.slice(id.lastIndexOf(':') + 1));
}
