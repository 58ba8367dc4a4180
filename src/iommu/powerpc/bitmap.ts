/*
 * The few lib/bitmap.c helpers the TCE allocator and ownership code use,
 * over a byte array laid out as a little-endian unsigned long bitmap
 * (bit n is bit n%8 of byte n/8), so memset() on it means what it means
 * in C.
 */
export function testBit(map: Uint8Array, n: number): boolean {
  return ((map[n >>> 3] ?? 0) & (1 << (n & 7))) !== 0;
}

export function setBit(map: Uint8Array, n: number): void {
  map[n >>> 3] = (map[n >>> 3] ?? 0) | (1 << (n & 7));
}

export function clearBit(map: Uint8Array, n: number): void {
  map[n >>> 3] = (map[n >>> 3] ?? 0) & ~(1 << (n & 7));
}

/** bitmap_set(map, start, n) */
export function bitmapSet(map: Uint8Array, start: number, n: number): void {
  for (let i = start; i < start + n; i++) setBit(map, i);
}

/** bitmap_clear(map, start, n) */
export function bitmapClear(map: Uint8Array, start: number, n: number): void {
  for (let i = start; i < start + n; i++) clearBit(map, i);
}

/** find_next_bit: the first set bit in [start, size), or size */
export function findNextBit(map: Uint8Array, size: number, start: number): number {
  let i = start;
  while (i < size) {
    if ((i & 7) === 0 && (map[i >>> 3] ?? 0) === 0) {
      i += 8;
      continue;
    }
    if (testBit(map, i)) return i;
    i++;
  }
  return size;
}

/** find_next_zero_bit: the first clear bit in [start, size), or size */
export function findNextZeroBit(map: Uint8Array, size: number, start: number): number {
  let i = start;
  while (i < size) {
    if ((i & 7) === 0 && (map[i >>> 3] ?? 0) === 0xff) {
      i += 8;
      continue;
    }
    if (!testBit(map, i)) return i;
    i++;
  }
  return size;
}

/** bitmap_empty(map, nbits) */
export function bitmapEmpty(map: Uint8Array, nbits: number): boolean {
  return findNextBit(map, nbits, 0) >= nbits;
}

/** bitmap_weight(map, nbits) */
export function bitmapWeight(map: Uint8Array, nbits: number): number {
  let w = 0;
  for (let i = findNextBit(map, nbits, 0); i < nbits; i = findNextBit(map, nbits, i + 1)) w++;
  return w;
}

/**
 * bitmap_find_next_zero_area_off: the first index >= start where nr clear
 * bits begin, aligned so that (index + alignOffset) & alignMask == 0; a
 * value > size - nr when there is none.
 */
export function bitmapFindNextZeroAreaOff(
  map: Uint8Array,
  size: number,
  start: number,
  nr: number,
  alignMask: number,
  alignOffset: number,
): number {
  for (;;) {
    let index = findNextZeroBit(map, size, start);
    /* __ALIGN_MASK(index + align_offset, align_mask) - align_offset */
    index = alignUp(index + alignOffset, alignMask) - alignOffset;
    const end = index + nr;
    if (end > size) return end;
    const i = findNextBit(map, end, index);
    if (i < end) {
      start = i + 1;
      continue;
    }
    return index;
  }
}

function alignUp(v: number, mask: number): number {
  return mask === 0 ? v : Math.floor((v + mask) / (mask + 1)) * (mask + 1);
}
