import type {
  ContainerSnap,
  DeviceSnap,
  GroupSnap,
  IommuGroupSnap,
  JsonValue,
  ProcessSnap,
  Snapshot,
} from '../debugfs/index.ts';

/*
 * Snapshot -> graph model: the seed's Figure 0 as nodes (structs, with
 * their fields as rows) and edges (pointers and list links). An edge that
 * holds a reference says which counter it holds and that counter's value
 * now (kref, f_count, container_users, module refcnt), so a leak or an
 * extra get shows up as a number that does not match its edges.
 */
export type NodeKind =
  | 'vfio'
  | 'iommu_driver'
  | 'group'
  | 'vfio_device'
  | 'pci_dev'
  | 'iommu_group'
  | 'container'
  | 'iommu_data'
  | 'process'
  | 'file';

export interface GraphField {
  readonly name: string;
  readonly value: string;
  /** edges leave from this row */
  readonly port?: string;
}

export interface GraphNode {
  readonly id: string;
  readonly kind: NodeKind;
  readonly title: string;
  readonly fields: readonly GraphField[];
  /** rank band: userspace, files, vfio core, hardware */
  readonly layer: 'user' | 'file' | 'core' | 'backend' | 'hw';
}

export interface RefHeld {
  /** which counter of the target this edge holds one of */
  readonly counter: 'kref' | 'f_count' | 'container_users' | 'module refcnt' | 'iommu_group kref';
  /** that counter's value now */
  readonly value: number;
}

export interface GraphEdge {
  readonly from: string;
  readonly fromPort?: string;
  readonly to: string;
  readonly label: string;
  /** 'list': a list link; 'ptr': a pointer that holds nothing; 'ref': holds a reference */
  readonly style: 'list' | 'ptr' | 'ref';
  readonly holds: readonly RefHeld[];
}

export interface Graph {
  readonly title: string;
  readonly nodes: readonly GraphNode[];
  readonly edges: readonly GraphEdge[];
}

export interface GraphOptions {
  /** leave out PCI devices that VFIO does not know (default false: show every device) */
  readonly onlyVfio?: boolean;
  /** rows of type1 mappings / sPAPR tables to show per iommu_data (default 4) */
  readonly sampleRows?: number;
}

const nid = (id: string): string => id;

export function buildGraph(s: Snapshot, opts: GraphOptions = {}): Graph {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const ref = (counter: RefHeld['counter'], value: number): RefHeld => ({ counter, value });
  const sample = opts.sampleRows ?? 4;

  const groupsById = new Map(s.groups.map((g) => [g.id, g]));
  const containersById = new Map(s.containers.map((c) => [c.id, c]));
  const vdevById = new Map(
    s.devices.filter((d) => d.vfio !== null).map((d) => [d.vfio?.id ?? '', d] as [string, DeviceSnap]),
  );
  const drivers = new Map((s.vfio?.iommuDrivers ?? []).map((d) => [d.name, d]));

  /* ---- struct vfio and its IOMMU driver list ---- */
  if (s.vfio !== null) {
    nodes.push({
      id: 'vfio',
      kind: 'vfio',
      title: 'struct vfio',
      layer: 'core',
      fields: [
        { name: 'iommu_drivers_list', value: `${s.vfio.iommuDrivers.length}`, port: 'drivers' },
        { name: 'group_list', value: `${s.vfio.groups.length}`, port: 'groups' },
        { name: 'kernel', value: `${s.host.kernel} (${s.host.arch})` },
      ],
    });
    let prev: { id: string; port?: string } = { id: 'vfio', port: 'drivers' };
    for (const d of s.vfio.iommuDrivers) {
      nodes.push({
        id: nid(d.id),
        kind: 'iommu_driver',
        title: 'vfio_iommu_driver',
        layer: 'core',
        fields: [
          { name: 'ops', value: d.name },
          { name: 'module refcnt', value: d.moduleRefcnt === null ? 'built-in' : String(d.moduleRefcnt) },
        ],
      });
      edges.push({
        from: prev.id,
        ...portOf(prev.port),
        to: d.id,
        label: 'vfio_next',
        style: 'list',
        holds: [],
      });
      prev = { id: d.id };
    }
    for (const g of s.vfio.groups)
      edges.push({ from: 'vfio', fromPort: 'groups', to: g, label: 'group_list', style: 'list', holds: [] });
  }

  /* ---- groups ---- */
  for (const g of s.groups) {
    nodes.push(groupNode(g));
    if (g.iommuGroup !== null) {
      const ig = s.iommuGroups.find((x) => x.number === g.iommuGroup);
      edges.push({
        from: g.id,
        fromPort: 'iommu_group',
        to: `iommu_group:${g.iommuGroup}`,
        label: 'iommu_group',
        style: 'ref',
        holds: ig === undefined ? [] : [ref('kref', ig.kref)],
      });
    }
    if (g.container !== null) {
      const c = containersById.get(g.container);
      edges.push({
        from: g.id,
        fromPort: 'container',
        to: g.container,
        label: 'container',
        style: 'ref',
        holds: c === undefined ? [] : [ref('kref', c.kref)],
      });
    }
    for (const d of g.devices)
      edges.push({
        from: g.id,
        fromPort: 'device_list',
        to: d,
        label: 'device_list',
        style: 'list',
        holds: [],
      });
  }

  /* ---- vfio devices and the PCI functions behind them ---- */
  for (const d of s.devices) {
    if (opts.onlyVfio === true && d.vfio === null && d.iommuGroup === null) continue;
    nodes.push(pciNode(d));
    const v = d.vfio;
    if (v === null) continue;
    nodes.push({
      id: v.id,
      kind: 'vfio_device',
      title: 'vfio_device',
      layer: 'core',
      fields: [
        { name: 'dev', value: d.bdf, port: 'dev' },
        { name: 'kref', value: String(v.kref) },
        ...(s.host.kernel === '4.1'
          ? []
          : [
              { name: 'open_count', value: String(v.openCount) },
              { name: 'registration', value: String(v.registration) },
            ]),
        { name: 'ops', value: `${v.ops} ops` },
        { name: 'device_data', value: dataSummary(v.data) },
        { name: 'group', value: v.group.replace('group:', ''), port: 'group' },
      ],
    });
    const g = groupsById.get(v.group);
    edges.push({
      from: v.id,
      fromPort: 'group',
      to: v.group,
      label: 'group',
      style: 'ref',
      holds: g === undefined ? [] : [ref('kref', g.kref)],
    });
    edges.push({ from: v.id, fromPort: 'dev', to: d.id, label: 'dev', style: 'ptr', holds: [] });
  }

  /* ---- IOMMU groups ---- */
  for (const g of s.iommuGroups) {
    nodes.push(iommuGroupNode(g, sample));
    for (const d of g.devices)
      if (nodes.some((n) => n.id === d))
        edges.push({ from: g.id, fromPort: 'devices', to: d, label: 'devices', style: 'list', holds: [] });
  }

  /* ---- containers and their iommu data ---- */
  for (const c of s.containers) {
    nodes.push(containerNode(c));
    for (const g of c.groups)
      edges.push({
        from: c.id,
        fromPort: 'group_list',
        to: g,
        label: 'group_list',
        style: 'list',
        holds: [],
      });
    if (c.iommuDriver !== null) {
      const d = drivers.get(c.iommuDriver);
      edges.push({
        from: c.id,
        fromPort: 'iommu_driver',
        to: `iommu_driver:${c.iommuDriver}`,
        label: 'iommu_driver',
        style: 'ref',
        holds: d?.moduleRefcnt === null || d === undefined ? [] : [ref('module refcnt', d.moduleRefcnt)],
      });
    }
    if (c.iommuData !== null) {
      const id = `${c.id}/iommu_data`;
      nodes.push(iommuDataNode(id, c.iommuData, sample));
      edges.push({
        from: c.id,
        fromPort: 'iommu_data',
        to: id,
        label: 'iommu_data',
        style: 'ptr',
        holds: [],
      });
    }
  }

  /* ---- files and who holds them ---- */
  for (const f of s.files) {
    nodes.push({
      id: f.id,
      kind: 'file',
      title: 'struct file',
      layer: 'file',
      fields: [
        { name: 'path', value: f.path },
        { name: 'f_op', value: f.fops },
        { name: 'f_count', value: String(f.fCount) },
        ...(f.object === null ? [] : [{ name: 'private_data', value: f.kind, port: 'private_data' }]),
      ],
    });
    if (f.object === null) continue;
    const holds: RefHeld[] = [];
    if (f.kind === 'container') {
      const c = containersById.get(f.object);
      if (c !== undefined) holds.push(ref('kref', c.kref));
    } else if (f.kind === 'group') {
      const g = groupsById.get(f.object);
      if (g !== undefined) holds.push(ref('kref', g.kref));
    } else if (f.kind === 'device') {
      const d = vdevById.get(f.object);
      if (d?.vfio !== null && d?.vfio !== undefined) {
        holds.push(ref('kref', d.vfio.kref));
        const g = groupsById.get(d.vfio.group);
        if (g !== undefined) holds.push(ref('container_users', g.containerUsers));
      }
    }
    edges.push({
      from: f.id,
      fromPort: 'private_data',
      to: f.object,
      label: 'private_data',
      style: 'ref',
      holds,
    });
  }

  /* ---- processes ---- */
  const fileCount = new Map(s.files.map((f) => [f.id, f.fCount]));
  const filePath = new Map(s.files.map((f) => [f.id, f.path]));
  for (const p of s.processes) {
    nodes.push(processNode(p, filePath));
    for (const fd of p.fds)
      edges.push({
        from: p.id,
        fromPort: `fd${fd.fd}`,
        to: fd.file,
        label: `fd ${fd.fd}`,
        style: 'ref',
        holds: [ref('f_count', fileCount.get(fd.file) ?? 0)],
      });
    for (const m of p.mmaps)
      edges.push({
        from: p.id,
        fromPort: `mmap${m.start}`,
        to: m.file,
        label: 'vm_file',
        style: 'ref',
        holds: [ref('f_count', fileCount.get(m.file) ?? 0)],
      });
  }

  const known = new Set(nodes.map((n) => n.id));
  return {
    title: `vfio-ts ${s.host.arch} kernel ${s.host.kernel}`,
    nodes,
    edges: edges.filter((e) => known.has(e.from) && known.has(e.to)),
  };
}

function portOf(port: string | undefined): { fromPort?: string } {
  return port === undefined ? {} : { fromPort: port };
}

function groupNode(g: GroupSnap): GraphNode {
  return {
    id: g.id,
    kind: 'group',
    title: `vfio_group ${g.iommuGroup ?? '?'}`,
    layer: 'core',
    fields: [
      { name: 'dev', value: g.devnode ?? '(removed)' },
      { name: 'minor', value: String(g.minor) },
      { name: 'kref', value: String(g.kref) },
      { name: 'container_users', value: String(g.containerUsers) },
      ...(g.opened === null
        ? [{ name: 'opened_file', value: g.openedFile ?? 'NULL' }]
        : [{ name: 'opened', value: String(g.opened) }]),
      { name: 'viable', value: g.viable ? 'yes' : 'NO' },
      { name: 'device_list', value: String(g.devices.length), port: 'device_list' },
      {
        name: 'iommu_group',
        value: g.iommuGroup === null ? 'NULL' : String(g.iommuGroup),
        port: 'iommu_group',
      },
      { name: 'container', value: g.container ?? 'NULL', port: 'container' },
    ],
  };
}

function pciNode(d: DeviceSnap): GraphNode {
  return {
    id: d.id,
    kind: 'pci_dev',
    title: `pci_dev ${d.bdf}`,
    layer: 'hw',
    fields: [
      { name: 'id', value: `${d.vendor.slice(2)}:${d.device.slice(2)} (${d.model})` },
      { name: 'driver', value: d.driver ?? '(none)' },
      { name: 'iommu_group', value: d.iommuGroup === null ? '(none)' : String(d.iommuGroup) },
    ],
  };
}

function iommuGroupNode(g: IommuGroupSnap, sample: number): GraphNode {
  const data = g.iommuData === null ? [] : dataRows(g.iommuData, sample).map((r) => ({ ...r, name: r.name }));
  return {
    id: g.id,
    kind: 'iommu_group',
    title: `iommu_group ${g.number}`,
    layer: 'hw',
    fields: [
      { name: 'kref', value: String(g.kref) },
      { name: 'domain', value: g.domain ?? 'blocked' },
      ...(g.ownerCnt > 0 ? [{ name: 'owner_cnt', value: String(g.ownerCnt) }] : []),
      { name: 'devices', value: String(g.devices.length), port: 'devices' },
      ...data,
    ],
  };
}

function containerNode(c: ContainerSnap): GraphNode {
  return {
    id: c.id,
    kind: 'container',
    title: `vfio_container ${c.id.replace('container:', '#')}`,
    layer: 'core',
    fields: [
      { name: 'kref', value: String(c.kref) },
      { name: 'group_list', value: String(c.groups.length), port: 'group_list' },
      { name: 'iommu_driver', value: c.iommuDriver ?? 'NULL', port: 'iommu_driver' },
      {
        name: 'iommu_data',
        value: c.iommuData === null ? 'NULL' : dataType(c.iommuData),
        port: 'iommu_data',
      },
    ],
  };
}

function processNode(p: ProcessSnap, paths: ReadonlyMap<string, string>): GraphNode {
  return {
    id: p.id,
    kind: 'process',
    title: `task ${p.pid} (${p.comm})`,
    layer: 'user',
    fields: [
      { name: 'locked_vm', value: p.lockedVm === null ? '(no mm)' : `${p.lockedVm} pages` },
      { name: 'RLIMIT_MEMLOCK', value: p.memlockLimit },
      ...p.fds.map((f) => ({ name: `fd ${f.fd}`, value: paths.get(f.file) ?? f.file, port: `fd${f.fd}` })),
      ...p.mmaps.map((m) => ({
        name: `mmap ${m.start}`,
        value: paths.get(m.file) ?? m.file,
        port: `mmap${m.start}`,
      })),
    ],
  };
}

/* ---- iommu_data: whatever the backend's hook said ---- */

function isObj(v: JsonValue): v is { [k: string]: JsonValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function dataType(v: JsonValue): string {
  return isObj(v) && typeof v.type === 'string' ? v.type : 'opaque';
}

function scalar(v: JsonValue): string {
  if (v === null) return 'NULL';
  if (Array.isArray(v)) return v.every((x) => !isObj(x) && !Array.isArray(x)) ? v.join(', ') : `${v.length}`;
  if (isObj(v)) return `{…}`;
  return String(v);
}

function dataSummary(v: JsonValue): string {
  if (!isObj(v)) return scalar(v);
  const parts = Object.entries(v)
    .filter(([k, x]) => k !== 'type' && !isObj(x) && !Array.isArray(x))
    .map(([k, x]) => `${k}=${scalar(x)}`);
  return `${dataType(v)}${parts.length > 0 ? ` ${parts.join(' ')}` : ''}`;
}

/** rows for a hook's data: scalars as fields, arrays of records as one row each (up to `sample`) */
function dataRows(v: JsonValue, sample: number): GraphField[] {
  if (!isObj(v)) return [{ name: 'data', value: scalar(v) }];
  const rows: GraphField[] = [];
  for (const [k, x] of Object.entries(v)) {
    if (k === 'type') continue;
    if (Array.isArray(x) && x.some(isObj)) {
      rows.push({
        name: k,
        value: `${x.filter((e) => !(typeof e === 'string' && e.startsWith('…'))).length}`,
      });
      for (const e of x.slice(0, sample)) {
        if (isObj(e))
          rows.push({
            name: '',
            value: Object.entries(e)
              .map(([ek, ev]) => `${ek}=${scalar(ev)}`)
              .join(' '),
          });
      }
      if (x.length > sample) rows.push({ name: '', value: `… ${x.length - sample} more` });
    } else if (isObj(x)) {
      rows.push({
        name: k,
        value: Object.entries(x)
          .map(([ek, ev]) => `${ek}=${scalar(ev)}`)
          .join(' '),
      });
    } else rows.push({ name: k, value: scalar(x) });
  }
  return rows;
}

function iommuDataNode(id: string, v: JsonValue, sample: number): GraphNode {
  return {
    id,
    kind: 'iommu_data',
    title: dataType(v),
    layer: 'backend',
    fields: dataRows(v, sample),
  };
}
