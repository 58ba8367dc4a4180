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
    /* byte arithmetic for the narrow fields: a DataView per call costs more than the decode */
    decode(bytes, at = 0) {
      checkRoom('decode', bytes.length, at);
      let dv: DataView | undefined;
      const out: Record<string, number | bigint> = {};
      for (const [field, [type, off]] of entries) {
        const p = at + off;
        if (type === 'u8') out[field] = bytes[p] as number;
        else if (type === 'u16') out[field] = (bytes[p] as number) | ((bytes[p + 1] as number) << 8);
        else if (type === 'u32' || type === 's32') {
          const v =
            (bytes[p] as number) |
            ((bytes[p + 1] as number) << 8) |
            ((bytes[p + 2] as number) << 16) |
            ((bytes[p + 3] as number) << 24);
          out[field] = type === 'u32' ? v >>> 0 : v;
        } else {
          dv ??= view(bytes);
          out[field] = dv.getBigUint64(p, true);
        }
      }
      return out as StructValue<F>;
    },
    encode(value, into, at = 0) {
      const buf = into ?? new Uint8Array(at + size);
      checkRoom('encode', buf.length, at);
      /* check everything first: a bad value leaves the buffer untouched */
      for (const field in value) {
        const v = (value as Record<string, unknown>)[field];
        if (v === undefined) continue;
        const [type] = lookup(field);
        checkValue(name, field, type, v);
      }
      let dv: DataView | undefined;
      for (const [field, [type, off]] of entries) {
        const v = (value as Record<string, unknown>)[field];
        if (v === undefined) continue;
        const p = at + off;
        if (type === 'u64') {
          dv ??= view(buf);
          dv.setBigUint64(p, v as bigint, true);
          continue;
        }
        const n = v as number;
        buf[p] = n;
        if (type === 'u8') continue;
        buf[p + 1] = n >>> 8;
        if (type === 'u16') continue;
        buf[p + 2] = n >>> 16;
        buf[p + 3] = n >>> 24;
      }
      return buf;
    },
  };
}
