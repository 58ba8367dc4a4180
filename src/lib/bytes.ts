/*
 * Little-endian scalars in byte arrays (x86_64 and ppc64le), and the
 * width-typed accessors every register-ish view of the library shares.
 */
export type Width = 1 | 2 | 4 | 8;

const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

export function getLe(b: Uint8Array, width: Width, at = 0): bigint {
  const v = dv(b);
  switch (width) {
    case 1:
      return BigInt(v.getUint8(at));
    case 2:
      return BigInt(v.getUint16(at, true));
    case 4:
      return BigInt(v.getUint32(at, true));
    case 8:
      return v.getBigUint64(at, true);
  }
}

export function putLe(width: Width, value: bigint | number): Uint8Array {
  const b = new Uint8Array(width);
  const v = dv(b);
  const n = BigInt.asUintN(width * 8, BigInt(value));
  if (width === 8) v.setBigUint64(0, n, true);
  else if (width === 4) v.setUint32(0, Number(n), true);
  else if (width === 2) v.setUint16(0, Number(n), true);
  else v.setUint8(0, Number(n));
  return b;
}

export function getU32(b: Uint8Array, at = 0): number {
  return dv(b).getUint32(at, true);
}

export function s32Array(values: readonly number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const v = dv(b);
  values.forEach((x, i) => {
    v.setInt32(i * 4, x, true);
  });
  return b;
}

/* 1-, 2- and 4-byte values stay numbers: register access is a hot path, bigint is not */
const le = (b: Uint8Array, n: number): number => {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + (b[i] ?? 0);
  return v;
};
const bytesOf = (v: number, n: number): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (v >>> (8 * i)) & 0xff;
  return b;
};

/**
 * Typed scalar access at byte offsets, given raw read/write of bytes:
 * what a config space, a BAR through pread/pwrite, an mmapped BAR and a
 * DMA buffer all offer. Each access is one read or write of its width.
 */
export abstract class ScalarAccess {
  protected abstract readBytes(offset: number | bigint, len: number): Uint8Array;
  protected abstract writeBytes(offset: number | bigint, bytes: Uint8Array): void;

  read8(offset: number | bigint): number {
    return le(this.readBytes(offset, 1), 1);
  }
  read16(offset: number | bigint): number {
    return le(this.readBytes(offset, 2), 2);
  }
  read32(offset: number | bigint): number {
    return le(this.readBytes(offset, 4), 4);
  }
  read64(offset: number | bigint): bigint {
    return getLe(this.readBytes(offset, 8), 8);
  }
  write8(offset: number | bigint, value: number): void {
    this.writeBytes(offset, bytesOf(value, 1));
  }
  write16(offset: number | bigint, value: number): void {
    this.writeBytes(offset, bytesOf(value, 2));
  }
  write32(offset: number | bigint, value: number): void {
    this.writeBytes(offset, bytesOf(value, 4));
  }
  write64(offset: number | bigint, value: bigint): void {
    this.writeBytes(offset, putLe(8, value));
  }
}
