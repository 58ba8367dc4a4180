import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeCapChain,
  encodeCapChain,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
  vfio_info_cap_header,
  vfio_region_info,
  vfio_region_info_cap_type,
} from '../../src/uapi/index.ts';

const body = (...b: number[]): Uint8Array => Uint8Array.from(b);

describe('capability chains', () => {
  it('encodes next as offsets from the start of the info struct, last next 0', () => {
    const { bytes, offsets } = encodeCapChain(
      [
        { id: 1, version: 1, body: body(1, 2, 3, 4) },
        { id: 2, version: 3, body: body(9) },
      ],
      32,
    );
    assert.deepEqual(offsets, [32, 44]);
    assert.equal(bytes.length, 12 + 9);
    assert.deepEqual(vfio_info_cap_header.decode(bytes, 0), { id: 1, version: 1, next: 44 });
    assert.deepEqual(vfio_info_cap_header.decode(bytes, 12), { id: 2, version: 3, next: 0 });
    assert.deepEqual([...bytes.subarray(8, 12)], [1, 2, 3, 4]);
  });

  it('align8 places every cap 8-aligned in the info struct and pads each', () => {
    const { bytes, offsets } = encodeCapChain(
      [
        { id: 1, version: 1, body: body(1, 2, 3, 4) },
        { id: 2, version: 1, body: body(5) },
      ],
      20,
      true,
    );
    assert.deepEqual(offsets, [24, 40]);
    assert.equal(bytes.length, 56 - 20); // 24 + 12 -> 40; 40 + 9 -> 56
    assert.equal(vfio_info_cap_header.decode(bytes, 4).next, 40);
  });

  it('round-trips through an info buffer (region info + type cap + sparse cap)', () => {
    const typeCap = vfio_region_info_cap_type.encode({ type: 1, subtype: 2 }).subarray(8);
    const sparse = body(...new Array(8 + 16).fill(7));
    const { bytes, offsets } = encodeCapChain(
      [
        { id: VFIO_REGION_INFO_CAP_TYPE, version: 1, body: typeCap },
        { id: VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1, body: sparse },
      ],
      vfio_region_info.size,
      true,
    );
    const info = new Uint8Array(vfio_region_info.size + bytes.length);
    vfio_region_info.encode({ argsz: info.length, cap_offset: offsets[0]! }, info);
    info.set(bytes, vfio_region_info.size);

    const caps = decodeCapChain(info, vfio_region_info.decode(info).cap_offset);
    assert.deepEqual(
      caps.map((c) => [c.id, c.version, c.offset, c.bytes.length]),
      [
        [VFIO_REGION_INFO_CAP_TYPE, 1, 32, 16],
        [VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 48, 32],
      ],
    );
    const t = vfio_region_info_cap_type.decode(caps[0]!.bytes);
    assert.deepEqual([t.type, t.subtype, t.header_next], [1, 2, 48]);
  });

  it('an empty chain and cap_offset 0', () => {
    const { bytes, offsets } = encodeCapChain([], 24);
    assert.equal(bytes.length, 0);
    assert.deepEqual(offsets, []);
    assert.deepEqual(decodeCapChain(new Uint8Array(24), 0), []);
  });

  it('detects loops (self and longer) and headers outside the buffer', () => {
    const buf = new Uint8Array(48);
    vfio_info_cap_header.encode({ id: 1, version: 1, next: 16 }, buf, 16);
    assert.throws(() => decodeCapChain(buf, 16), /loop/);
    vfio_info_cap_header.encode({ id: 1, version: 1, next: 32 }, buf, 16);
    vfio_info_cap_header.encode({ id: 2, version: 1, next: 16 }, buf, 32);
    assert.throws(() => decodeCapChain(buf, 16), /loop/);
    vfio_info_cap_header.encode({ id: 2, version: 1, next: 44 }, buf, 32);
    assert.throws(() => decodeCapChain(buf, 16), RangeError);
    assert.throws(() => decodeCapChain(buf, 100), RangeError);
  });

  it('rejects ids and versions that do not fit u16', () => {
    assert.throws(() => encodeCapChain([{ id: 0x10000, version: 1, body: body() }], 0), RangeError);
  });
});
