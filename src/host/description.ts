import { readFileSync } from 'node:fs';
import type { ReservedRegion } from '../iommu/index.ts';
import type { ArchName, KernelVersion, SpawnOptions } from '../kernel/index.ts';
import { Host, type HostOptions } from './host.ts';
import { hostSchema, type SchemaNode } from './host_schema.ts';
import { deviceModels } from './models.ts';

/*
 * Host description files: a machine as JSON (schemas/host.schema.json),
 * validated with errors that point at the field and say what is wrong:
 *
 *   devices[2].bdf: "0000:0g:00.0" is not a PCI address (dddd:bb:dd.f)
 *
 * then booted into a Host. The validator walks the schema object itself,
 * so the schema file and the checks cannot disagree.
 */
export interface DeviceDescription {
  readonly bdf: string;
  readonly model: string;
  readonly iommuGroup?: number;
  readonly driver?: string;
  readonly parent?: string;
  readonly vendor?: number;
  readonly device?: number;
  readonly class?: number;
  readonly pcie?: boolean;
  readonly dmaMask?: number;
}

export interface HostDescription {
  readonly description?: string;
  readonly arch: ArchName;
  readonly kernel: KernelVersion;
  readonly pageSize?: 4096 | 65536;
  readonly iommu: {
    readonly addressWidth?: number;
    readonly intrRemap?: boolean;
    readonly cacheCoherent?: boolean;
    readonly reservedRegions?: readonly ReservedRegion[];
    readonly dma32WindowStart?: bigint;
    readonly dma32WindowSize?: bigint;
  };
  readonly devices: readonly DeviceDescription[];
  readonly process: SpawnOptions;
}

export class HostDescriptionError extends Error {
  constructor(
    readonly issues: readonly string[],
    readonly file?: string,
  ) {
    super(`${file === undefined ? 'host description' : file}: ${issues.join('\n  ')}`);
    this.name = 'HostDescriptionError';
  }
}

/* ---- schema walk ---- */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function resolve(node: SchemaNode): SchemaNode {
  if (node.$ref === undefined) return node;
  const name = node.$ref.replace('#/$defs/', '');
  const def = hostSchema.$defs[name];
  if (def === undefined) throw new Error(`schema: unknown $ref ${node.$ref}`);
  return { ...def, ...(node.description === undefined ? {} : { description: node.description }) };
}

function typeOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function shown(v: Json): string {
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const up = d[i - 1] as number[];
      row[j] = Math.min(
        (up[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (up[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  return (d[a.length] as number[])[b.length] as number;
}

function validate(node0: SchemaNode, v: Json, path: string, errors: string[]): void {
  const node = resolve(node0);
  const at = path === '' ? '(top level)' : path;
  const expect = node['x-expect'];
  if (node.enum !== undefined) {
    if (!node.enum.includes(v as string | number | boolean))
      errors.push(`${at}: ${shown(v)} is not one of ${node.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    return;
  }
  if (node.type !== undefined) {
    const types = typeof node.type === 'string' ? [node.type] : node.type;
    const t = typeOf(v);
    const ok = types.includes(t) || (t === 'integer' && types.includes('number'));
    if (!ok) {
      errors.push(`${at}: ${shown(v)} is not ${expect ?? types.map(article).join(' or ')}`);
      return;
    }
  }
  if (typeof v === 'string' && node.pattern !== undefined && !new RegExp(node.pattern).test(v)) {
    errors.push(`${at}: ${shown(v)} is not ${expect ?? `in the form ${node.pattern}`}`);
    return;
  }
  const num =
    typeof v === 'number'
      ? v
      : typeof v === 'string' && /^(0[xX][0-9a-fA-F]+|\d+)$/.test(v)
        ? Number(v)
        : undefined;
  if (num !== undefined) {
    if (node.minimum !== undefined && num < node.minimum)
      errors.push(
        `${at}: ${shown(v)} is less than ${node.minimum}${expect === undefined ? '' : ` (want ${expect})`}`,
      );
    else if (node.maximum !== undefined && num > node.maximum)
      errors.push(
        `${at}: ${shown(v)} is more than ${node.maximum}${expect === undefined ? '' : ` (want ${expect})`}`,
      );
  }
  if (Array.isArray(v) && node.items !== undefined) {
    for (const [i, x] of v.entries()) validate(node.items as SchemaNode, x, `${path}[${i}]`, errors);
  }
  if (typeOf(v) === 'object' && node.properties !== undefined) {
    const o = v as { [k: string]: Json };
    const props = node.properties;
    for (const r of node.required ?? [])
      if (!(r in o)) errors.push(`${at}: missing "${r}"${describeField(props[r])}`);
    for (const [k, x] of Object.entries(o)) {
      const p = props[k];
      const here = path === '' ? k : `${path}.${k}`;
      if (p === undefined) {
        if (node.additionalProperties === false) {
          const known = Object.keys(props);
          const near = known.find((n) => editDistance(n.toLowerCase(), k.toLowerCase()) <= 2);
          errors.push(
            `${here}: unknown field${near === undefined ? '' : ` (did you mean "${near}"?)`}; known: ${known.join(', ')}`,
          );
        }
        continue;
      }
      validate(p, x, here, errors);
    }
  }
}

function describeField(node: SchemaNode | undefined): string {
  if (node === undefined) return '';
  const r = resolve(node);
  return r['x-expect'] === undefined ? '' : ` (${r['x-expect']})`;
}

/* ---- conversion ---- */

function int(v: Json | undefined): number | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'number' ? v : Number(v);
}

function big(v: Json | undefined): bigint | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'number' ? BigInt(v) : BigInt(String(v));
}

export function parseSize(v: string | number): bigint {
  if (typeof v === 'number') return BigInt(v);
  if (v === 'unlimited') return 0xffff_ffff_ffff_ffffn;
  if (/^0[xX]/.test(v)) return BigInt(v);
  const m = /^(\d+)([KMGT]?)$/.exec(v);
  if (m === null) throw new Error(`bad size ${v}`);
  const shift = { '': 0n, K: 10n, M: 20n, G: 30n, T: 40n }[m[2] as '' | 'K' | 'M' | 'G' | 'T'];
  return BigInt(m[1] as string) << shift;
}

/** check a parsed JSON value and build the description, or throw HostDescriptionError */
export function validateHostDescription(value: unknown, file?: string): HostDescription {
  const errors: string[] = [];
  const v = value as Json;
  validate(hostSchema, v, '', errors);
  if (errors.length > 0) throw new HostDescriptionError(errors, file);
  const o = v as { [k: string]: Json };
  const arch = (o.arch ?? 'x86_64') as ArchName;
  const iommu = (o.iommu ?? {}) as { [k: string]: Json };
  const devs = (o.devices ?? []) as { [k: string]: Json }[];

  /* what the schema cannot say: references between fields */
  if (arch === 'x86_64' && o.pageSize !== undefined && o.pageSize !== 4096)
    errors.push(`pageSize: ${o.pageSize} is not possible on x86_64 (PAGE_SIZE is 4096)`);
  if (arch !== 'ppc64') {
    for (const k of ['dma32WindowStart', 'dma32WindowSize'])
      if (iommu[k] !== undefined) errors.push(`iommu.${k}: only a ppc64 host has a 32-bit DMA window`);
  }
  const regions = (iommu.reservedRegions ?? []) as { [k: string]: Json }[];
  regions.forEach((r, i) => {
    if ((big(r.start) ?? 0n) > (big(r.end) ?? 0n))
      errors.push(
        `iommu.reservedRegions[${i}]: start ${shown(r.start ?? null)} is after end ${shown(r.end ?? null)}`,
      );
  });
  const seen = new Map<string, number>();
  devs.forEach((d, i) => {
    const bdf = String(d.bdf).toLowerCase();
    const before = seen.get(bdf);
    if (before !== undefined)
      errors.push(`devices[${i}].bdf: "${d.bdf}" is already used by devices[${before}]`);
    seen.set(bdf, i);
    const model = (d.model ?? 'generic') as string;
    if (!deviceModels.has(model))
      errors.push(
        `devices[${i}].model: "${model}" is not a known device model (known: ${[...deviceModels.keys()].join(', ')})`,
      );
    if (d.parent !== undefined) {
      const p = seen.get(String(d.parent).toLowerCase());
      if (p === undefined || p === i)
        errors.push(`devices[${i}].parent: no device "${d.parent}" is listed before this one`);
    }
  });
  if (errors.length > 0) throw new HostDescriptionError(errors, file);

  const proc = (o.process ?? {}) as { [k: string]: Json };
  const process: SpawnOptions = {
    ...(proc.comm !== undefined ? { comm: String(proc.comm) } : {}),
    ...(proc.rlimitMemlock !== undefined
      ? { rlimitMemlock: parseSize(proc.rlimitMemlock as string | number) }
      : {}),
    ...(proc.rlimitNofile !== undefined ? { rlimitNofile: BigInt(proc.rlimitNofile as number) } : {}),
    ...(proc.uid !== undefined ? { uid: proc.uid as number } : {}),
    ...(proc.gid !== undefined ? { gid: proc.gid as number } : {}),
  };
  return {
    ...(o.description !== undefined ? { description: String(o.description) } : {}),
    arch,
    kernel: (o.kernel ?? '4.1') as KernelVersion,
    ...(o.pageSize !== undefined ? { pageSize: o.pageSize as 4096 | 65536 } : {}),
    iommu: {
      ...(iommu.addressWidth !== undefined ? { addressWidth: iommu.addressWidth as number } : {}),
      ...(iommu.intrRemap !== undefined ? { intrRemap: iommu.intrRemap as boolean } : {}),
      ...(iommu.cacheCoherent !== undefined ? { cacheCoherent: iommu.cacheCoherent as boolean } : {}),
      ...(iommu.reservedRegions !== undefined
        ? {
            reservedRegions: regions.map((r) => ({
              start: big(r.start) ?? 0n,
              end: big(r.end) ?? 0n,
              type: (r.type ?? 'reserved') as ReservedRegion['type'],
            })),
          }
        : {}),
      ...(iommu.dma32WindowStart !== undefined
        ? { dma32WindowStart: big(iommu.dma32WindowStart) as bigint }
        : {}),
      ...(iommu.dma32WindowSize !== undefined
        ? { dma32WindowSize: big(iommu.dma32WindowSize) as bigint }
        : {}),
    },
    devices: devs.map((d) => {
      const out: { -readonly [K in keyof DeviceDescription]: DeviceDescription[K] } = {
        bdf: String(d.bdf).toLowerCase(),
        model: (d.model ?? 'generic') as string,
      };
      if (d.iommuGroup !== undefined) out.iommuGroup = d.iommuGroup as number;
      if (d.driver !== undefined) out.driver = String(d.driver);
      if (d.parent !== undefined) out.parent = String(d.parent).toLowerCase();
      const vendor = int(d.vendor);
      if (vendor !== undefined) out.vendor = vendor;
      const device = int(d.device);
      if (device !== undefined) out.device = device;
      const cls = int(d.class);
      if (cls !== undefined) out.class = cls;
      if (d.pcie !== undefined) out.pcie = d.pcie as boolean;
      if (d.dmaMask !== undefined) out.dmaMask = d.dmaMask as number;
      return out;
    }),
    process,
  };
}

/**
 * Where JSON.parse gave up: Node 20's messages do not always say, so walk
 * the text with a small recursive-descent scanner that stops at the first
 * character no JSON value can have there.
 */
export function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') {
      str();
      return;
    }
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
    if (m === null) fail();
    i += (m as RegExpExecArray)[0].length;
  };
  const str = (): void => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if ((text.charCodeAt(i) ?? 0) < 0x20) fail();
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail();
    i++;
  };
  try {
    value();
    ws();
    return i < text.length ? i : undefined;
  } catch (at) {
    return typeof at === 'number' ? at : undefined;
  }
}

/** JSON text -> description; syntax errors say the line and column */
export function parseHostDescription(text: string, file?: string): HostDescription {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const pos = jsonErrorOffset(text);
    let where = '';
    if (pos !== undefined) {
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const col = pos - before.lastIndexOf('\n');
      where = `line ${line}, column ${col}: `;
    }
    throw new HostDescriptionError(
      [`${where}not valid JSON (${msg.replace(/,? ?(in JSON at position|\.\.\.|").*$/s, '')})`],
      file,
    );
  }
  return validateHostDescription(value, file);
}

export function loadHostDescription(file: string): HostDescription {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new HostDescriptionError(
      [code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? String(e)})`],
      file,
    );
  }
  return parseHostDescription(text, file);
}

/** the Host options a description asks for */
export function hostOptionsOf(d: HostDescription): HostOptions {
  const { dma32WindowStart, dma32WindowSize, ...iommu } = d.iommu;
  /* the ppc64 window options are HostOptions' own once the sPAPR host has them */
  const extra: Record<string, bigint> = {};
  if (dma32WindowStart !== undefined) extra.dma32WindowStart = dma32WindowStart;
  if (dma32WindowSize !== undefined) extra.dma32WindowSize = dma32WindowSize;
  return {
    arch: d.arch,
    kernel: d.kernel,
    ...(d.pageSize !== undefined ? { pageSize: d.pageSize } : {}),
    iommu,
    ...extra,
  } as HostOptions;
}

/** boot the machine: a Host with every described device added (and bound at boot) */
export function bootHost(d: HostDescription, file?: string): Host {
  const host = new Host(hostOptionsOf(d));
  d.devices.forEach((dev, i) => {
    try {
      host.addPciDevice({ ...dev });
    } catch (e) {
      throw new HostDescriptionError([`devices[${i}]: ${e instanceof Error ? e.message : String(e)}`], file);
    }
  });
  return host;
}
