/*
 * Plain data: what a snapshot is made of. Anything a backend hands us
 * through its debugSnapshot() hook goes through toJson, so a snapshot is
 * always safe for JSON.stringify (bigints become hex strings) and never
 * holds a live kernel object.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** cap on array lengths copied out of a hook (a type1 container can hold a million mappings) */
export const MAX_ARRAY = 64;

export function hex(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}

export function toJson(value: unknown, depth = 0): JsonValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return hex(value);
    case 'function':
    case 'symbol':
      return null;
  }
  if (depth > 6) return '…';
  if (Array.isArray(value)) {
    const out = value.slice(0, MAX_ARRAY).map((v) => toJson(v, depth + 1));
    if (value.length > MAX_ARRAY) out.push(`… ${value.length - MAX_ARRAY} more`);
    return out;
  }
  if (value instanceof Map) {
    const o: JsonObject = {};
    for (const [k, v] of value) o[String(k)] = toJson(v, depth + 1);
    return o;
  }
  if (ArrayBuffer.isView(value)) return `<${value.byteLength} bytes>`;
  const o: JsonObject = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v === 'function') continue;
    o[k] = toJson(v, depth + 1);
  }
  return o;
}

/**
 * What a backend's iommu_data (or a bus driver's device_data, or an
 * iommu_group's iommudata) may implement to appear in snapshots: a
 * method returning plain data. It is duck-typed because backends must not
 * import debugfs. Suggested shapes, which the graph renders specially:
 *
 *   type1:  { type: 'type1', v2, domains: [{ groups: [3], ... }], mappings: n,
 *             mappedBytes, sample: [{ iova, size, vaddr, prot }] }
 *   sPAPR:  { type: 'spapr-tce', enabled, tables: [{ group, windowStart,
 *             windowSize, pageShift, entries, inUse }] }
 */
export interface DebugSnapshotHook {
  debugSnapshot(): object;
}

export function hasDebugSnapshot(x: unknown): x is DebugSnapshotHook {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as Partial<DebugSnapshotHook>).debugSnapshot === 'function'
  );
}

/** read an opaque kernel object: its hook if it has one, else its struct name */
export function describeOpaque(x: unknown): JsonValue {
  if (x === undefined || x === null) return null;
  if (hasDebugSnapshot(x)) {
    try {
      return toJson(x.debugSnapshot());
    } catch (e) {
      return { error: `debugSnapshot() threw: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  /* no hook: the struct's name and its scalar fields, which is what a crash dump would show */
  const name = (x as { constructor?: { name?: string } }).constructor?.name;
  const o: JsonObject = { type: name !== undefined && name !== 'Object' ? name : 'opaque' };
  if (typeof x !== 'object') return o;
  let n = 0;
  for (const [k, v] of Object.entries(x as Record<string, unknown>)) {
    if (n >= 12) break;
    /* kernel struct fields keep their snake_case names; camelCase ones are the model's own bookkeeping */
    if (!/^[a-z0-9_]+$/.test(k)) continue;
    const t = typeof v;
    if (t === 'number' || t === 'boolean' || t === 'string' || t === 'bigint') {
      o[k] = toJson(v);
      n++;
    }
  }
  return o;
}
