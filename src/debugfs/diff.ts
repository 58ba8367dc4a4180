import type { JsonValue } from './json.ts';
import type { Snapshot } from './snapshot.ts';

/*
 * What changed between two snapshots of one machine, in kernel terms:
 * objects that appeared or went away, and fields that moved
 * ("group:3: container_users 0 → 1"). This is the "what it did" column of
 * the CLI's step log, computed rather than written by hand, so it cannot
 * drift from what the kernel really did.
 */
export interface ObjectChange {
  readonly id: string;
  readonly kind: 'created' | 'freed' | 'changed';
  /** field → [before, after] (created: after only; freed: before only) */
  readonly fields: Record<string, [string, string]>;
}

type Flat = Map<string, Map<string, string>>;

function show(v: JsonValue | undefined): string {
  if (v === undefined || v === null) return '∅';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.keys(v).length}}`;
  return String(v);
}

/** a value on one line: objects as {k=v ...}, arrays as [a, b] */
function compact(v: JsonValue): string {
  if (v === null || typeof v !== 'object') return show(v);
  if (Array.isArray(v)) return `[${v.map(compact).join(', ')}]`;
  return `{${Object.entries(v)
    .map(([k, x]) => `${k}=${compact(x)}`)
    .join(' ')}}`;
}

/**
 * Leaves of a hook's plain data. An array of scalars is one value; an
 * array of records is its size plus its first elements, each one value
 * while it reads on one line, else field by field (a million mappings stay
 * a handful of lines, and a table's counters diff one by one).
 */
function flattenData(prefix: string, v: JsonValue, into: Map<string, string>, depth = 0): void {
  if (v === null || typeof v !== 'object') {
    into.set(prefix, show(v));
    return;
  }
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== 'object')) {
      into.set(prefix, compact(v));
      return;
    }
    into.set(prefix, `${v.length} item${v.length === 1 ? '' : 's'}`);
    for (const [i, x] of v.slice(0, 8).entries()) {
      const line = compact(x);
      if (line.length <= 80 || depth > 3) into.set(`${prefix}[${i}]`, line);
      else flattenData(`${prefix}[${i}]`, x, into, depth + 1);
    }
    return;
  }
  if (depth > 3) {
    into.set(prefix, compact(v));
    return;
  }
  for (const [k, x] of Object.entries(v)) flattenData(`${prefix}.${k}`, x, into, depth + 1);
}

function flatten(s: Snapshot): Flat {
  const out: Flat = new Map();
  const obj = (id: string): Map<string, string> => {
    let m = out.get(id);
    if (m === undefined) {
      m = new Map();
      out.set(id, m);
    }
    return m;
  };
  for (const d of s.vfio?.iommuDrivers ?? []) obj(d.id).set('module_refcnt', show(d.moduleRefcnt));
  for (const g of s.groups) {
    const m = obj(g.id);
    m.set('kref', String(g.kref));
    m.set('container_users', String(g.containerUsers));
    if (g.opened !== null) m.set('opened', String(g.opened));
    if (g.openedFile !== null || s.host.kernel !== '4.1') m.set('opened_file', show(g.openedFile));
    m.set('viable', String(g.viable));
    m.set('container', show(g.container));
    m.set('device_list', show(g.devices));
  }
  for (const c of s.containers) {
    const m = obj(c.id);
    m.set('kref', String(c.kref));
    m.set('group_list', show(c.groups));
    m.set('iommu_driver', show(c.iommuDriver));
    if (c.iommuData !== null) flattenData('iommu_data', c.iommuData, m);
  }
  for (const d of s.devices) {
    const m = obj(d.id);
    m.set('driver', show(d.driver));
    if (d.vfio !== null) {
      const v = obj(d.vfio.id);
      v.set('kref', String(d.vfio.kref));
      if (s.host.kernel !== '4.1') {
        v.set('open_count', String(d.vfio.openCount));
        v.set('registration', String(d.vfio.registration));
      }
      if (d.vfio.data !== null) flattenData('device_data', d.vfio.data, v);
    }
  }
  for (const g of s.iommuGroups) {
    const m = obj(g.id);
    m.set('kref', String(g.kref));
    m.set('domain', show(g.domain));
    m.set('owner_cnt', String(g.ownerCnt));
    if (g.iommuData !== null) flattenData('iommu_data', g.iommuData, m);
  }
  const paths = new Map(s.files.map((f) => [f.id, f.path]));
  const fileRef = (id: string): string => `${id}(${paths.get(id) ?? '?'})`;
  for (const p of s.processes) {
    const m = obj(p.id);
    m.set('locked_vm', show(p.lockedVm));
    if (s.host.kernel !== '4.1') m.set('pinned_vm', show(p.pinnedVm));
    for (const fd of p.fds) m.set(`fd ${fd.fd}`, fileRef(fd.file));
    for (const mm of p.mmaps) m.set(`mmap ${mm.start}`, fileRef(mm.file));
  }
  for (const f of s.files) {
    const m = obj(f.id);
    m.set('path', f.path);
    m.set('f_count', String(f.fCount));
  }
  for (const mod of s.modules) obj(`module:${mod.name}`).set('refcnt', String(mod.refcnt));
  return out;
}

export function diffSnapshots(a: Snapshot, b: Snapshot): ObjectChange[] {
  const fa = flatten(a);
  const fb = flatten(b);
  const changes: ObjectChange[] = [];
  for (const [id, mb] of fb) {
    const ma = fa.get(id);
    const fields: Record<string, [string, string]> = {};
    if (ma === undefined) {
      for (const [k, v] of mb) fields[k] = ['', v];
      changes.push({ id, kind: 'created', fields });
      continue;
    }
    for (const [k, v] of mb) {
      const old = ma.get(k) ?? '∅';
      if (old !== v) fields[k] = [old, v];
    }
    for (const [k, v] of ma) if (!mb.has(k)) fields[k] = [v, '∅'];
    if (Object.keys(fields).length > 0) changes.push({ id, kind: 'changed', fields });
  }
  for (const [id, ma] of fa) {
    if (fb.has(id)) continue;
    const fields: Record<string, [string, string]> = {};
    for (const [k, v] of ma) fields[k] = [v, ''];
    changes.push({ id, kind: 'freed', fields });
  }
  return changes;
}

/** one line per object: "+ container:1 (kref=1)", "~ group:3: container_users 0 → 1", "- file:2" */
export function describeChanges(changes: readonly ObjectChange[]): string[] {
  return changes.map((c) => {
    const f = Object.entries(c.fields);
    if (c.kind === 'created') {
      const brief = f
        .filter(([k]) => !k.includes('.') && !k.includes('['))
        .slice(0, 4)
        .map(([k, [, v]]) => `${k}=${v}`);
      return `+ ${c.id}${brief.length > 0 ? ` (${brief.join(', ')})` : ''}`;
    }
    if (c.kind === 'freed') return `- ${c.id}`;
    return `~ ${c.id}: ${collapse(f)
      .map(([k, [x, y]]) => `${k} ${x} → ${y}`)
      .join(', ')}`;
  });
}

/**
 * A nested record that appeared or went away as a whole (a container's
 * iommu_data at SET_IOMMU) is one change, named by its type, not one per
 * leaf.
 */
function collapse(fields: [string, [string, string]][]): [string, [string, string]][] {
  const root = (k: string): string => k.split(/[.[]/)[0] ?? k;
  const groups = new Map<string, [string, [string, string]][]>();
  for (const f of fields) {
    const r = root(f[0]);
    groups.set(r, [...(groups.get(r) ?? []), f]);
  }
  const out: [string, [string, string]][] = [];
  for (const [r, fs] of groups) {
    const nested = fs.length > 1 && fs.every(([k]) => k !== r);
    const appeared = fs.every(([, [x]]) => x === '∅');
    const vanished = fs.every(([, [, y]]) => y === '∅');
    if (!nested || (!appeared && !vanished)) {
      out.push(...fs);
      continue;
    }
    const type = fs.find(([k]) => k === `${r}.type`)?.[1];
    const name = (appeared ? type?.[1] : type?.[0]) ?? `{${fs.length} fields}`;
    out.push([r, appeared ? ['∅', name] : [name, '∅']]);
  }
  return out;
}
