// Declarative C struct layouts: a table of name -> [type, byte offset], checked
// at definition time, with little-endian codecs (x86_64 and ppc64le).

export type FieldType = 'u8' | 'u16' | 'u32' | 's32' | 'u64';
export type FieldValue<T extends FieldType> = T extends 'u64' ? bigint : number;
/** name -> [type, byte offset] */
export type FieldTable = Record<string, readonly [FieldType, number]>;
export type StructValue<F extends FieldTable> = { [K in keyof F]: FieldValue<F[K][0]> };

export interface StructLayout<F extends FieldTable> {
  /** C struct name */
  readonly name: string;
  /** sizeof */
  readonly size: number;
  readonly fields: F;
  offsetof(field: keyof F & string): number;
  /** offsetof + sizeof(field): the kernel's minsz idiom */
  offsetofend(field: keyof F & string): number;
  /** Little-endian decode of the struct at `at`; RangeError when bytes are missing. */
  decode(bytes: Uint8Array, at?: number): StructValue<F>;
  /**
   * Encode into `into` at `at` (unspecified fields and padding keep their bytes)
   * or into a fresh zeroed buffer; returns the buffer written. Out-of-range
   * values throw RangeError, unknown fields or wrong JS types TypeError.
   */
  encode(value: Partial<StructValue<F>>, into?: Uint8Array, at?: number): Uint8Array;
}

export const FIELD_SIZE: Readonly<Record<FieldType, number>> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };

const NUMBER_RANGE: Readonly<Record<Exclude<FieldType, 'u64'>, readonly [number, number]>> = {
  u8: [0, 0xff],
  u16: [0, 0xffff],
  u32: [0, 0xffff_ffff],
  s32: [-0x8000_0000, 0x7fff_ffff],
};
const U64_MAX = 0xffff_ffff_ffff_ffffn;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkValue(struct: string, name: string, type: FieldType, v: unknown): void {
  if (type === 'u64') {
    if (typeof v !== 'bigint') throw new TypeError(`${struct}.${name}: u64 needs a bigint, got ${typeof v}`);
    if (v < 0n || v > U64_MAX) throw new RangeError(`${struct}.${name}: ${v} out of u64 range`);
    return;
  }
  if (typeof v !== 'number')
    throw new TypeError(`${struct}.${name}: ${type} needs a number, got ${typeof v}`);
  const [lo, hi] = NUMBER_RANGE[type];
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw new RangeError(`${struct}.${name}: ${v} out of ${type} range`);
}

function validate(name: string, size: number, fields: FieldTable): void {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`${name}: bad size ${size}`);
  const spans: [number, number, string][] = [];
  let align = 1;
  for (const [field, [type, offset]] of Object.entries(fields)) {
    const width = FIELD_SIZE[type];
    if (width === undefined) throw new TypeError(`${name}.${field}: unknown type ${String(type)}`);
    if (!Number.isInteger(offset) || offset < 0)
      throw new RangeError(`${name}.${field}: bad offset ${offset}`);
    if (offset + width > size)
      throw new RangeError(`${name}.${field}: ends at ${offset + width} > sizeof ${size}`);
    if (offset % width !== 0) throw new RangeError(`${name}.${field}: ${type} at ${offset} is misaligned`);
    align = Math.max(align, width);
    spans.push([offset, offset + width, field]);
  }
  if (size % align !== 0)
    throw new RangeError(`${name}: sizeof ${size} is not a multiple of alignment ${align}`);
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur[0] < prev[1]) throw new RangeError(`${name}: field ${cur[2]} overlaps ${prev[2]}`);
  }
}

export function defineStruct<const F extends FieldTable>(
  name: string,
  size: number,
  fields: F,
): StructLayout<F> {
  validate(name, size, fields);
  const entries = Object.entries(fields);
  const frozen = Object.freeze(fields);
  const lookup = (field: string): readonly [FieldType, number] => {
    const f = Object.hasOwn(fields, field) ? fields[field] : undefined;
    if (f === undefined) throw new TypeError(`${name} has no field ${field}`);
    return f;
  };
  const checkRoom = (what: string, len: number, at: number): void => {
    if (!Number.isInteger(at) || at < 0 || at + size > len)
      throw new RangeError(`${name}: ${what} needs ${size} bytes at ${at}, buffer has ${len}`);
  };
  return {
    name,
    size,
    fields: frozen,
    offsetof: (field) => lookup(field)[1],
    offsetofend: (field) => {
      const [type, offset] = lookup(field);
      return offset + FIELD_SIZE[type];
    },
    decode(bytes, at = 0) {
      checkRoom('decode', bytes.length, at);
      const dv = view(bytes);
      const out: Record<string, number | bigint> = {};
      for (const [field, [type, off]] of entries) {
        const p = at + off;
        if (type === 'u8') out[field] = dv.getUint8(p);
        else if (type === 'u16') out[field] = dv.getUint16(p, true);
        else if (type === 'u32') out[field] = dv.getUint32(p, true);
        else if (type === 's32') out[field] = dv.getInt32(p, true);
        else out[field] = dv.getBigUint64(p, true);
      }
      return out as StructValue<F>;
    },
    encode(value, into, at = 0) {
      const buf = into ?? new Uint8Array(at + size);
      checkRoom('encode', buf.length, at);
      const writes: [FieldType, number, unknown][] = [];
      for (const [field, v] of Object.entries(value) as [string, unknown][]) {
        if (v === undefined) continue;
        const [type, off] = lookup(field);
        checkValue(name, field, type, v);
        writes.push([type, at + off, v]);
      }
      const dv = view(buf);
      for (const [type, p, v] of writes) {
        if (type === 'u8') dv.setUint8(p, v as number);
        else if (type === 'u16') dv.setUint16(p, v as number, true);
        else if (type === 'u32') dv.setUint32(p, v as number, true);
        else if (type === 's32') dv.setInt32(p, v as number, true);
        else dv.setBigUint64(p, v as bigint, true);
      }
      return buf;
    },
  };
}
