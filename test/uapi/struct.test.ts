import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  defineStruct,
  vfio_eeh_pe_op,
  vfio_iommu_type1_dma_map,
  vfio_pci_dependent_device,
} from '../../src/uapi/index.ts';

const mixed = defineStruct('mixed', 24, {
  a: ['u8', 0],
  b: ['u16', 2],
  c: ['s32', 4],
  d: ['u64', 8],
  e: ['u32', 16],
});

describe('defineStruct validation', () => {
  it('accepts a well-formed table and exposes name, size, fields', () => {
    assert.equal(mixed.name, 'mixed');
    assert.equal(mixed.size, 24);
    assert.deepEqual(mixed.fields.d, ['u64', 8]);
    assert.equal(mixed.offsetof('e'), 16);
    assert.equal(mixed.offsetofend('e'), 20);
    assert.equal(mixed.offsetofend('a'), 1);
  });

  it('rejects overlapping fields', () => {
    assert.throws(() => defineStruct('bad', 8, { a: ['u32', 0], b: ['u16', 2] }), /overlaps/);
    assert.throws(() => defineStruct('bad', 16, { a: ['u64', 0], b: ['u32', 4] }), /overlaps/);
  });

  it('rejects misaligned fields', () => {
    assert.throws(() => defineStruct('bad', 16, { a: ['u64', 4] }), /misaligned/);
    assert.throws(() => defineStruct('bad', 8, { a: ['u32', 2] }), /misaligned/);
    assert.throws(() => defineStruct('bad', 4, { a: ['u16', 1] }), /misaligned/);
  });

  it('rejects fields outside sizeof, bad sizes and missing tail padding', () => {
    assert.throws(() => defineStruct('bad', 8, { a: ['u64', 8] }), /sizeof/);
    assert.throws(() => defineStruct('bad', 0, {}), RangeError);
    assert.throws(() => defineStruct('bad', 12, { a: ['u64', 0] }), /alignment/);
    assert.throws(() => defineStruct('bad', 8, { a: ['u32', -4] }), RangeError);
  });

  it('unknown field names throw', () => {
    assert.throws(() => mixed.offsetof('zz' as 'a'), TypeError);
    assert.throws(() => mixed.encode({ zz: 1 } as unknown as { a: number }), TypeError);
  });
});

describe('encode / decode', () => {
  it('is little-endian with u64 above 2^53 and negative s32', () => {
    const bytes = mixed.encode({ a: 0xab, b: 0x1234, c: -2, d: 0xfedc_ba98_7654_3210n, e: 0xffff_ffff });
    assert.equal(bytes.length, 24);
    assert.deepEqual(
      [...bytes],
      [
        0xab, 0, 0x34, 0x12, 0xfe, 0xff, 0xff, 0xff, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0xff,
        0xff, 0xff, 0xff, 0, 0, 0, 0,
      ],
    );
    const v = mixed.decode(bytes);
    assert.deepEqual(v, { a: 0xab, b: 0x1234, c: -2, d: 0xfedc_ba98_7654_3210n, e: 0xffff_ffff });
    assert.equal(typeof v.d, 'bigint');
  });

  it('u32 decodes unsigned, s32 signed (same bytes)', () => {
    const pe = vfio_eeh_pe_op.decode(new Uint8Array(40).fill(0xff));
    assert.equal(pe.op, 0xffff_ffff);
    assert.equal(pe.err_addr, 0xffff_ffff_ffff_ffffn);
  });

  it('unspecified fields are 0 in a fresh buffer and kept in a given one', () => {
    assert.deepEqual(mixed.decode(mixed.encode({ b: 7 })), { a: 0, b: 7, c: 0, d: 0n, e: 0 });
    const buf = new Uint8Array(32).fill(0xee);
    const out = mixed.encode({ e: 5 }, buf, 8);
    assert.equal(out, buf);
    assert.equal(mixed.decode(buf, 8).e, 5);
    assert.equal(mixed.decode(buf, 8).a, 0xee);
    assert.equal(buf[0], 0xee); // before `at`: untouched
    assert.equal(buf[3 + 8], 0xee); // padding: untouched
  });

  it('decode honours `at` and subarray offsets; missing bytes throw RangeError', () => {
    const big = new Uint8Array(100);
    const sub = big.subarray(10);
    vfio_iommu_type1_dma_map.encode({ argsz: 32, iova: 1n << 60n }, sub, 4);
    assert.equal(vfio_iommu_type1_dma_map.decode(big, 14).iova, 1n << 60n);
    assert.throws(() => vfio_iommu_type1_dma_map.decode(new Uint8Array(31)), RangeError);
    assert.throws(() => vfio_iommu_type1_dma_map.decode(new Uint8Array(40), 9), RangeError);
    assert.throws(() => vfio_iommu_type1_dma_map.encode({ argsz: 1 }, new Uint8Array(31)), RangeError);
  });

  it('out-of-range values throw RangeError and leave the buffer untouched', () => {
    const buf = new Uint8Array(24);
    assert.throws(() => mixed.encode({ a: 256 }), RangeError);
    assert.throws(() => mixed.encode({ b: -1 }), RangeError);
    assert.throws(() => mixed.encode({ c: 0x8000_0000 }), RangeError);
    assert.throws(() => mixed.encode({ e: -1 }), RangeError);
    assert.throws(() => mixed.encode({ e: 1.5 }), RangeError);
    assert.throws(() => mixed.encode({ d: 1n << 64n }), RangeError);
    assert.throws(() => mixed.encode({ d: -1n }), RangeError);
    assert.throws(() => mixed.encode({ a: 1, e: 2 ** 32 }, buf), RangeError);
    assert.deepEqual([...buf], new Array(24).fill(0));
    assert.throws(() => mixed.encode({ d: 1 as unknown as bigint }), TypeError);
    assert.throws(() => mixed.encode({ e: 1n as unknown as number }), TypeError);
  });

  it('u8 fields (vfio_pci_dependent_device)', () => {
    const b = vfio_pci_dependent_device.encode({ group_id: 26, segment: 0, bus: 6, devfn: (0x0d << 3) | 0 });
    assert.deepEqual([...b], [26, 0, 0, 0, 0, 0, 6, 0x68]);
  });

  it('round-trips arbitrary values (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        (a, b, c, d, e) => {
          const v = { a, b, c, d, e };
          assert.deepEqual(mixed.decode(mixed.encode(v)), v);
        },
      ),
    );
  });
});
