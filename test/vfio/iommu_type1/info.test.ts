import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeCapChain,
  EFAULT,
  EINVAL,
  ENODEV,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
} from '../../../src/index.ts';
import { anon, getInfo, mapDma, PAGE, PROFILES, setup } from './helpers.ts';

/* GET_INFO and CHECK_EXTENSION in both profiles */
const ALL_PGSIZES = 0xffff_ffff_ffff_f000n;
const END39 = (1n << 39n) - 1n;

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at, true);
}
function u64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset).getBigUint64(at, true);
}

describe('GET_INFO (4.1): 16 bytes, flags 0, no capabilities', () => {
  it('answers with flags 0 and every page size from 4 KiB, writing 16 bytes only', () => {
    const s = setup({ kernel: '4.1' });
    s.p.mem.write(s.arg, new Uint8Array(64).fill(0xaa));
    s.p.mem.write(s.arg, vfio_iommu_type1_info.encode({ argsz: 64, flags: 0x55 }).subarray(0, 8));
    assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_GET_INFO, s.arg), 0);
    const b = s.p.mem.read(s.arg, 64);
    assert.equal(u32(b, 0), 64);
    assert.equal(u32(b, 4), 0);
    assert.equal(u64(b, 8), ALL_PGSIZES);
    assert.deepEqual([...b.subarray(16)], new Array(48).fill(0xaa));
  });

  it('argsz < 16 is -EINVAL, a bad pointer -EFAULT', () => {
    const s = setup({ kernel: '4.1' });
    assert.equal(getInfo(s, 15).ret, -EINVAL);
    assert.equal(getInfo(s, 16).ret, 0);
    assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_GET_INFO, 0x1000n), -EFAULT);
  });
});

describe('GET_INFO (6.12): the capability chain', () => {
  const CAPS = 32 + 16 + (16 + 2 * 16);

  it('a short argsz gets PGSIZES|CAPS and the argsz needed, copying back min(argsz, 24) bytes', () => {
    for (const argsz of [16, 20, 24, 24 + CAPS - 1]) {
      const s = setup({ kernel: '6.12' });
      s.p.mem.write(s.arg, new Uint8Array(256).fill(0xaa));
      s.p.mem.write(s.arg, vfio_iommu_type1_info.encode({ argsz }).subarray(0, 4));
      assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_GET_INFO, s.arg), 0);
      const b = s.p.mem.read(s.arg, 256);
      assert.equal(u32(b, 0), 24 + CAPS, `argsz ${argsz}`);
      assert.equal(u32(b, 4), VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
      assert.equal(u64(b, 8), 0x40201000n);
      const copied = Math.min(argsz, 24);
      for (let i = 16; i < copied; i++) assert.equal(b[i], 0, `byte ${i} (argsz ${argsz})`);
      for (let i = copied; i < 256; i++) assert.equal(b[i], 0xaa, `byte ${i} (argsz ${argsz})`);
    }
  });

  it('a full argsz gets the chain: MIGRATION, DMA_AVAIL, IOVA_RANGE, 8-byte aligned', () => {
    const s = setup({ kernel: '6.12' });
    const mem = anon(s.p, 3n * PAGE);
    for (let i = 0n; i < 3n; i++)
      assert.equal(mapDma(s, { vaddr: mem + i * PAGE, iova: i * 2n * PAGE, size: PAGE }), 0);
    const { ret, buf } = getInfo(s, 256);
    assert.equal(ret, 0);
    const info = vfio_iommu_type1_info.decode(buf);
    assert.deepEqual(info, {
      argsz: 256,
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      iova_pgsizes: 0x40201000n,
      cap_offset: 24,
      pad: 0,
    });
    const chain = decodeCapChain(buf, info.cap_offset);
    assert.deepEqual(
      chain.map((c) => [c.id, c.version, c.offset]),
      [
        [VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, 24],
        [VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, 56],
        [VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 72],
      ],
    );
    const mig = vfio_iommu_type1_info_cap_migration.decode(buf, 24);
    assert.equal(mig.flags, 0);
    assert.equal(mig.pgsize_bitmap, 4096n);
    assert.equal(mig.max_dirty_bitmap_size, 1n << 28n);
    assert.equal(vfio_iommu_type1_info_dma_avail.decode(buf, 56).avail, 65535 - 3);
    assert.equal(u32(buf, 72 + 8), 2);
    assert.deepEqual(
      [u64(buf, 88), u64(buf, 96), u64(buf, 104), u64(buf, 112)],
      [0n, 0xfedf_ffffn, 0xfef0_0000n, END39],
    );
    /* nothing past the chain */
    assert.equal(buf[120], 0);
  });

  it('the IOVA ranges follow the address width and the reserved regions', () => {
    const s = setup({
      kernel: '6.12',
      host: {
        iommu: {
          addressWidth: 48,
          reservedRegions: [
            { start: 0n, end: 0xfffffn, type: 'reserved' },
            { start: 0xfee00000n, end: 0xfeefffffn, type: 'msi' },
          ],
        },
      },
    });
    const { buf } = getInfo(s, 256);
    assert.equal(u32(buf, 72 + 8), 2);
    assert.deepEqual(
      [u64(buf, 88), u64(buf, 96), u64(buf, 104), u64(buf, 112)],
      [0x100000n, 0xfedf_ffffn, 0xfef0_0000n, (1n << 48n) - 1n],
    );
  });

  it('argsz < 16 is -EINVAL', () => {
    const s = setup({ kernel: '6.12' });
    assert.equal(getInfo(s, 15).ret, -EINVAL);
  });
});

for (const kernel of PROFILES) {
  describe(`CHECK_EXTENSION and SET_IOMMU types (${kernel})`, () => {
    const later = kernel === '6.12' ? 1 : 0;

    it('answers for the types and extensions before and after SET_IOMMU', () => {
      const s = setup({ kernel, type: undefined });
      const ask = (ext: number): number => s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, ext);
      assert.deepEqual(
        [VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_NESTING_IOMMU, VFIO_DMA_CC_IOMMU].map(ask),
        [1, 1, 1, 0],
      );
      assert.deepEqual([VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, VFIO_SPAPR_TCE_IOMMU, 0x77].map(ask), [
        later,
        0,
        0,
        0,
      ]);
      assert.equal(s.p.ioctl(s.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
      assert.deepEqual([VFIO_DMA_CC_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR].map(ask), [1, later, later]);
    });

    it('DMA_CC is 0 when the IOMMU cannot enforce coherency', () => {
      const s = setup({ kernel, host: { iommu: { cacheCoherent: false } } });
      assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU), 0);
    });

    it('the nesting type opens but VT-d cannot nest: SET_IOMMU -EINVAL', () => {
      const s = setup({ kernel, type: undefined });
      assert.equal(s.p.ioctl(s.container, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU), -EINVAL);
      assert.deepEqual(s.host.liveObjects().iommu_domain, undefined);
      assert.equal(s.p.ioctl(s.container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU), -ENODEV);
      assert.equal(s.p.ioctl(s.container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), 0);
    });
  });
}
