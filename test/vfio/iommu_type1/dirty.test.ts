import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EACCES,
  EINVAL,
  ENOTTY,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
} from '../../../src/index.ts';
import { anon, debug, mapDma, mappings, PAGE, type Setup, setup } from './helpers.ts';

/*
 * Dirty page tracking (6.12): VFIO_IOMMU_DIRTY_PAGES and UNMAP_DMA with
 * GET_DIRTY_BITMAP. With IOMMU-backed groups only, every page of every
 * mapping is reported dirty, every time.
 */
function dirty(
  s: Setup,
  flags: number,
  argsz = 8,
  range?: { iova: bigint; size: bigint; pgsize: bigint; bsize: bigint; data: bigint },
): number {
  const b = new Uint8Array(48);
  const v = new DataView(b.buffer);
  v.setUint32(0, argsz, true);
  v.setUint32(4, flags, true);
  if (range !== undefined) {
    v.setBigUint64(8, range.iova, true);
    v.setBigUint64(16, range.size, true);
    v.setBigUint64(24, range.pgsize, true);
    v.setBigUint64(32, range.bsize, true);
    v.setBigUint64(40, range.data, true);
  }
  s.p.mem.write(s.arg, b);
  return s.p.ioctl(s.container, VFIO_IOMMU_DIRTY_PAGES, s.arg);
}

function bits(bytes: Uint8Array): string {
  return [...bytes].map((x) => x.toString(2).padStart(8, '0').split('').reverse().join('')).join('');
}

/* mappings: [0, 3 pages), [4 pages, 5), [70 pages, 72) */
function tracked(): { s: Setup; bm: bigint } {
  const s = setup({ kernel: '6.12' });
  const mem = anon(s.p, 8n * PAGE);
  assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 3n * PAGE }), 0);
  assert.equal(mapDma(s, { vaddr: mem + 3n * PAGE, iova: 4n * PAGE, size: PAGE }), 0);
  assert.equal(mapDma(s, { vaddr: mem + 4n * PAGE, iova: 70n * PAGE, size: 2n * PAGE }), 0);
  const bm = anon(s.p, PAGE);
  return { s, bm };
}

describe('VFIO_IOMMU_DIRTY_PAGES (6.12)', () => {
  it('is -ENOTTY in 4.1 and -EACCES on a v1 container', () => {
    const old = setup({ kernel: '4.1' });
    assert.equal(dirty(old, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), -ENOTTY);
    const v1 = setup({ kernel: '6.12', type: VFIO_TYPE1_IOMMU });
    assert.equal(dirty(v1, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), -EACCES);
  });

  it('wants argsz >= 8 and exactly one known flag', () => {
    const { s } = tracked();
    assert.equal(dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 7), -EINVAL);
    assert.equal(dirty(s, 0), -EINVAL);
    assert.equal(dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), -EINVAL);
    assert.equal(dirty(s, 0x8), -EINVAL);
    assert.equal(debug(s).dirtyTracking, false);
  });

  it('START, GET_BITMAP reporting every mapped page dirty, STOP', () => {
    const { s, bm } = tracked();
    const get = (
      iova: bigint,
      size: bigint,
      extra: Partial<{ pgsize: bigint; bsize: bigint; data: bigint }> = {},
      argsz = 48,
    ) =>
      dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, argsz, {
        iova,
        size,
        pgsize: extra.pgsize ?? PAGE,
        bsize: extra.bsize ?? 16n,
        data: extra.data ?? bm,
      });
    assert.equal(get(0n, 128n * PAGE), -EINVAL, 'not tracking');
    assert.equal(dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
    assert.equal(dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
    assert.equal(debug(s).dirtyTracking, true);
    assert.equal(get(0n, 128n * PAGE, {}, 47), -EINVAL, 'argsz < 48');
    assert.equal(get(0n, 128n * PAGE, { pgsize: 2n * PAGE }), -EINVAL, 'pgsize');
    assert.equal(get(0x800n, 128n * PAGE), -EINVAL, 'iova alignment');
    assert.equal(get(0n, 0n), -EINVAL, 'size 0');
    assert.equal(get(0n, 128n * PAGE, { bsize: 8n }), -EINVAL, 'bitmap too small');
    assert.equal(get(0n, 128n * PAGE, { data: 0x7fff_ffff_f000n }), -EINVAL, 'bitmap outside user memory');
    assert.equal(get(PAGE, 127n * PAGE), -EINVAL, 'starts inside a mapping');
    assert.equal(get(0n, 71n * PAGE), -EINVAL, 'ends inside a mapping');
    s.p.mem.write(bm, new Uint8Array(16));
    assert.equal(get(0n, 128n * PAGE), 0);
    const word0 = `11101${'0'.repeat(59)}`;
    assert.equal(bits(s.p.mem.read(bm, 16)), `${word0}${'000000'}11${'0'.repeat(56)}`);
    /*
     * Asked again: still all dirty. A mapping that starts inside a u64 ORs
     * in the whole word the user had there; one that starts on a word
     * boundary overwrites whole words.
     */
    s.p.mem.write(bm, new Uint8Array(16).fill(0xff));
    assert.equal(get(0n, 128n * PAGE), 0);
    assert.equal(bits(s.p.mem.read(bm, 16)), `${word0}${'1'.repeat(64)}`);
    /* from page 4: bit 0 is page 4 */
    s.p.mem.write(bm, new Uint8Array(16).fill(0x80));
    assert.equal(get(4n * PAGE, 68n * PAGE), 0);
    assert.equal(bits(s.p.mem.read(bm, 16)), `1${'0'.repeat(63)}00110001${'00000001'.repeat(7)}`);
    assert.equal(dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
    assert.equal(dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
    assert.equal(get(0n, 128n * PAGE), -EINVAL);
  });

  it('UNMAP_DMA with GET_DIRTY_BITMAP copies the bitmap out, then unmaps', () => {
    const { s, bm } = tracked();
    const unmap = (iova: bigint, size: bigint, flags: number, argsz = 48, pgsize = PAGE): number => {
      const b = new Uint8Array(48);
      const v = new DataView(b.buffer);
      v.setUint32(0, argsz, true);
      v.setUint32(4, flags, true);
      v.setBigUint64(8, iova, true);
      v.setBigUint64(16, size, true);
      v.setBigUint64(24, pgsize, true);
      v.setBigUint64(32, 8n, true);
      v.setBigUint64(40, bm, true);
      s.p.mem.write(s.arg, b);
      return s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, s.arg);
    };
    const G = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    assert.equal(unmap(0n, 8n * PAGE, G), -EINVAL, 'not tracking');
    assert.equal(dirty(s, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
    assert.equal(unmap(0n, 8n * PAGE, G, 47), -EINVAL, 'argsz');
    assert.equal(unmap(0n, 0n, G | VFIO_DMA_UNMAP_FLAG_ALL), -EINVAL, 'with ALL');
    assert.equal(unmap(0n, 8n * PAGE, G, 48, 2n * PAGE), -EINVAL, 'pgsize');
    s.p.mem.write(bm, new Uint8Array(8).fill(0xff));
    assert.equal(unmap(0n, 8n * PAGE, G), 0);
    assert.equal(bits(s.p.mem.read(bm, 8)), `11101${'0'.repeat(59)}`);
    assert.equal(new DataView(s.p.mem.read(s.arg + 16n, 8).buffer).getBigUint64(0, true), 4n * PAGE);
    assert.deepEqual(mappings(s), [[70n * PAGE, 2n * PAGE]]);
    assert.equal(s.p.lockedVm, 2);
  });
});
