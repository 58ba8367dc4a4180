import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeDeviceCaps,
  decodeIovaRanges,
  decodeRegionCaps,
  decodeSparseMmap,
  decodeType1Caps,
} from '../../src/lib/index.ts';

/*
 * Capability chains written byte by byte, as a kernel lays them out after
 * the info struct: header {u16 id, u16 version, u32 next}, offsets from
 * the start of the info struct.
 */
class Bytes {
  readonly buf: Uint8Array;
  private readonly dv: DataView;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
  }
  u16(at: number, v: number): this {
    this.dv.setUint16(at, v, true);
    return this;
  }
  u32(at: number, v: number): this {
    this.dv.setUint32(at, v, true);
    return this;
  }
  u64(at: number, v: bigint): this {
    this.dv.setBigUint64(at, v, true);
    return this;
  }
  hdr(at: number, id: number, version: number, next: number): this {
    return this.u16(at, id)
      .u16(at + 2, version)
      .u32(at + 4, next);
  }
}

test('type1 GET_INFO chain: IOVA ranges, migration, DMA avail', () => {
  /* vfio_iommu_type1_info is 24 bytes; the chain starts at 24 */
  const b = new Bytes(24 + 48 + 32 + 16);
  b.u32(0, b.buf.length).u32(4, 3).u64(8, 0x40201000n).u32(16, 24);
  b.hdr(24, 1, 1, 72)
    .u32(32, 2)
    .u64(40, 0n)
    .u64(48, 0xfedf_ffffn)
    .u64(56, 0xfef0_0000n)
    .u64(64, 0x7f_ffff_ffffn);
  b.hdr(72, 2, 1, 104).u32(80, 0).u64(88, 0x1000n).u64(96, 0x800_0000n);
  b.hdr(104, 3, 1, 0).u32(112, 65533);
  const caps = decodeType1Caps(b.buf, 24);
  assert.deepEqual(caps.iovaRanges, [
    { start: 0n, end: 0xfedf_ffffn },
    { start: 0xfef0_0000n, end: 0x7f_ffff_ffffn },
  ]);
  assert.deepEqual(caps.migration, { flags: 0, pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 0x800_0000n });
  assert.equal(caps.dmaAvail, 65533);
  assert.deepEqual(
    caps.raw.map((c) => [c.id, c.version, c.offset, c.bytes.length]),
    [
      [1, 1, 24, 48],
      [2, 1, 72, 32],
      [3, 1, 104, 16],
    ],
  );
});

test('type1 chain in reverse order, unknown caps kept raw, no caps at offset 0', () => {
  const b = new Bytes(24 + 16 + 16 + 32);
  b.hdr(24, 3, 1, 40).u32(32, 7);
  b.hdr(40, 0x99, 2, 56).u32(48, 0xdead);
  b.hdr(56, 1, 1, 0).u32(64, 1).u64(72, 0x1000n).u64(80, 0xffff_ffffn);
  const caps = decodeType1Caps(b.buf, 24);
  assert.equal(caps.dmaAvail, 7);
  assert.deepEqual(caps.iovaRanges, [{ start: 0x1000n, end: 0xffff_ffffn }]);
  assert.equal(caps.migration, undefined);
  assert.equal(caps.raw[1]?.id, 0x99);
  assert.equal(caps.raw[1]?.version, 2);
  assert.deepEqual(decodeType1Caps(b.buf, 0), { raw: [] });
});

test('an IOVA_RANGE cap with zero ranges decodes to none', () => {
  const b = new Bytes(24 + 16);
  b.hdr(24, 1, 1, 0).u32(32, 0);
  assert.deepEqual(decodeType1Caps(b.buf, 24).iovaRanges, []);
});

test('truncated or looping chains are refused', () => {
  const short = new Bytes(24 + 16 + 16);
  short.hdr(24, 1, 1, 0).u32(32, 2).u64(40, 0n).u64(48, 0xffffn); /* says 2 ranges, holds 1 */
  assert.throws(() => decodeType1Caps(short.buf, 24), /IOVA_RANGE capability at 24 has 32 bytes, needs 48/);
  const loop = new Bytes(24 + 16);
  loop.hdr(24, 3, 1, 24);
  assert.throws(() => decodeType1Caps(loop.buf, 24), /loops back to offset 24/);
  const outside = new Bytes(24);
  assert.throws(() => decodeType1Caps(outside.buf, 24), /outside the 24-byte buffer/);
  const tinyAvail = new Bytes(24 + 8);
  tinyAvail.hdr(24, 3, 1, 0);
  assert.throws(() => decodeType1Caps(tinyAvail.buf, 24), /DMA_AVAIL capability at 24 has 8 bytes, needs 12/);
});

test('region chain: sparse mmap around an MSI-X table, MSIX_MAPPABLE, a type cap', () => {
  /* vfio_region_info is 32 bytes */
  const b = new Bytes(32 + 48 + 8 + 16);
  b.hdr(32, 1, 1, 80).u32(40, 2).u64(48, 0n).u64(56, 0x2000n).u64(64, 0x3000n).u64(72, 0xd000n);
  b.hdr(80, 3, 1, 88);
  b.hdr(88, 2, 1, 0).u32(96, 0x8000_8086).u32(100, 1);
  const caps = decodeRegionCaps(b.buf, 32);
  assert.deepEqual(caps.sparseMmap, [
    { offset: 0n, size: 0x2000n },
    { offset: 0x3000n, size: 0xd000n },
  ]);
  assert.equal(caps.msixMappable, true);
  assert.deepEqual(caps.type, { type: 0x8000_8086, subtype: 1 });
  assert.deepEqual(decodeRegionCaps(b.buf, 0), { msixMappable: false, raw: [] });
  /* a buffer cut where the chain says the next cap is */
  assert.throws(
    () => decodeRegionCaps(b.buf.slice(0, 80), 32),
    /cap header at 80 is outside the 80-byte buffer/,
  );
});

test('sparse mmap and IOVA range decoders on a single capability', () => {
  const b = new Bytes(16 + 16);
  b.hdr(0, 1, 1, 0).u32(8, 1).u64(16, 0x1000n).u64(24, 0x1000n);
  const cap = { id: 1, version: 1, offset: 0, bytes: b.buf };
  assert.deepEqual(decodeSparseMmap(cap), [{ offset: 0x1000n, size: 0x1000n }]);
  assert.deepEqual(decodeIovaRanges(cap), [{ start: 0x1000n, end: 0x1000n }]);
  assert.throws(() => decodeSparseMmap({ ...cap, bytes: b.buf.subarray(0, 12) }), /needs 16/);
});

test('device chain: PCI atomic completer flags', () => {
  /* vfio_device_info is 24 bytes */
  const b = new Bytes(24 + 16 + 8);
  b.hdr(24, 5, 1, 40).u32(32, 0b101);
  b.hdr(40, 1, 1, 0); /* a zPCI cap: kept raw */
  const caps = decodeDeviceCaps(b.buf, 24);
  assert.equal(caps.pciAtomicComp, 0b101);
  assert.deepEqual(
    caps.raw.map((c) => c.id),
    [5, 1],
  );
});
