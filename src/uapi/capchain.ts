// VFIO capability chains (vfio.h, "For extension of INFO ioctls"): each cap
// starts with vfio_info_cap_header {u16 id, u16 version, u32 next}; `next`
// and the info struct's cap_offset are byte offsets from the START OF THE INFO
// STRUCT, and 0 ends the chain.
import { vfio_info_cap_header } from './vfio_structs.ts';

export interface CapInput {
  id: number;
  version: number;
  /** the capability's bytes after its 8-byte header */
  body: Uint8Array;
}

export interface CapEntry {
  id: number;
  version: number;
  /** offset of the cap's header from the start of the info struct */
  offset: number;
  /** the whole cap, header included: up to the next cap when it follows, else to the end of the buffer */
  bytes: Uint8Array;
}

const HDR = vfio_info_cap_header.size;
const roundUp8 = (n: number): number => Math.ceil(n / 8) * 8;

/**
 * Lay out `caps` as a chain to be copied at `baseOffset` in the info buffer
 * (usually sizeof(info)). Returns the bytes and each cap's offset from the
 * start of the info struct. With `align8` (modern kernels), each cap starts
 * 8-byte aligned relative to the info struct and is padded to a multiple of 8.
 */
export function encodeCapChain(
  caps: readonly CapInput[],
  baseOffset: number,
  align8 = false,
): { bytes: Uint8Array; offsets: number[] } {
  if (!Number.isInteger(baseOffset) || baseOffset < 0)
    throw new RangeError(`bad cap chain base ${baseOffset}`);
  const offsets: number[] = [];
  let end = baseOffset;
  for (const cap of caps) {
    const start = align8 ? roundUp8(end) : end;
    offsets.push(start);
    end = start + HDR + cap.body.length;
    if (align8) end = roundUp8(end);
  }
  if (end > 0xffff_ffff) throw new RangeError('cap chain beyond u32 offsets');
  const bytes = new Uint8Array(end - baseOffset);
  caps.forEach((cap, i) => {
    const at = offsets[i]! - baseOffset;
    const next = offsets[i + 1] ?? 0;
    vfio_info_cap_header.encode({ id: cap.id, version: cap.version, next }, bytes, at);
    bytes.set(cap.body, at + HDR);
  });
  return { bytes, offsets };
}

/**
 * Walk a chain in `buf` (the info struct from its first byte) starting at
 * `firstOffset` (cap_offset; 0 = no caps). Throws RangeError when a header
 * lies outside `buf` or the chain loops.
 */
export function decodeCapChain(buf: Uint8Array, firstOffset: number): CapEntry[] {
  const out: CapEntry[] = [];
  const seen = new Set<number>();
  let off = firstOffset;
  while (off !== 0) {
    if (seen.has(off)) throw new RangeError(`cap chain loops back to offset ${off}`);
    seen.add(off);
    if (off < 0 || off + HDR > buf.length)
      throw new RangeError(`cap header at ${off} is outside the ${buf.length}-byte buffer`);
    const h = vfio_info_cap_header.decode(buf, off);
    const end = h.next > off && h.next <= buf.length ? h.next : buf.length;
    out.push({ id: h.id, version: h.version, offset: off, bytes: buf.subarray(off, end) });
    off = h.next;
  }
  return out;
}
