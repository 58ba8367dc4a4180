import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Host } from '../../../src/index.ts';
import {
  DMA_BIDIRECTIONAL,
  DMA_ERROR_CODE,
  DMA_TO_DEVICE,
  IommuTable,
  iommuAlloc,
  iommuClearTcesAndPutPages,
  iommuFree,
  iommuInitTable,
  iommuRangeAlloc,
  iommuReleaseOwnership,
  iommuTableInUse,
  iommuTakeOwnership,
  testBit,
} from '../../../src/iommu/index.ts';
import { EBUSY, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/uapi/index.ts';

/*
 * arch/powerpc/kernel/iommu.c under VFIO: the DMA API's bitmap and pools,
 * and the seed's iommu_take_ownership / iommu_release_ownership.
 */
function host(): Host {
  return new Host({ arch: 'ppc64' });
}

function newTable(h: Host, offset: number, size: number): IommuTable {
  return h.inKernel(() => iommuInitTable(new IommuTable({ index: 1, offset, size, pageShift: 12 })));
}

function bits(t: IommuTable): number[] {
  const out: number[] = [];
  for (let i = 0; i < t.it_size; i++) if (t.it_map !== undefined && testBit(t.it_map, i)) out.push(i);
  return out;
}

test('iommu_init_table: entry 0 reserved when the window starts at 0; one pool below 1 GiB, four from 1 GiB', () => {
  const h = host();
  const t0 = newTable(h, 0, 4096);
  assert.deepEqual(bits(t0), [0]);
  assert.equal(t0.nr_pools, 1);
  assert.equal(t0.poolsize, 3072);
  assert.deepEqual(t0.large_pool, { start: 3072, end: 4096, hint: 3072 });
  const t1 = newTable(h, 0x80000, 262144);
  assert.deepEqual(bits(t1), [], 'a window elsewhere reserves nothing');
  assert.equal(t1.nr_pools, 4);
  assert.deepEqual(
    t1.pools.map((p) => [p.start, p.end]),
    [
      [0, 49152],
      [49152, 98304],
      [98304, 147456],
      [147456, 196608],
    ],
  );
  assert.ok(t0.it_map !== undefined && t0.it_map.length === 512, 'BITS_TO_LONGS(it_size) longs');
});

test('iommu_range_alloc: small allocations bump the hint to the next block of 16; large ones use the top pool', () => {
  const h = host();
  const t = newTable(h, 0, 4096);
  assert.equal(iommuRangeAlloc(t, 1, 0xfffff, 0), 1, 'entry 0 is reserved');
  assert.equal(t.pools[0]?.hint, 16);
  assert.equal(iommuRangeAlloc(t, 2, 0xfffff, 0), 16);
  assert.equal(iommuRangeAlloc(t, 4, 0xfffff, 2), 32, 'aligned to 4');
  assert.equal(iommuRangeAlloc(t, 16, 0xfffff, 0), 3072, 'npages > 15: the large pool');
  assert.equal(t.large_pool.hint, 3088, 'no block rounding for large allocations');
  assert.equal(iommuRangeAlloc(t, 0, 0xfffff, 0), DMA_ERROR_CODE);
});

test('iommu_range_alloc: a full pool falls back to the others, then gives up', () => {
  const h = host();
  const t = newTable(h, 0, 64);
  /* one pool of 48 entries, a large pool of 16 */
  let n = 0;
  while (iommuRangeAlloc(t, 1, 0xfffff, 0) !== DMA_ERROR_CODE) n++;
  assert.equal(n, 63, 'every entry but the reserved one, large pool included');
  assert.equal(iommuTableInUse(t), true);
});

test('iommu_alloc / iommu_free: TCEs built for the kernel address, bits set; freed both ways', () => {
  const h = host();
  const t = newTable(h, 0, 4096);
  const dma = h.inKernel(() => iommuAlloc(t, 0x2_0000_0123, 2, DMA_TO_DEVICE, 0xfffff, 0));
  assert.equal(dma, 0x1000);
  assert.equal(t.tceAt(1), 0x2_0000_0001n);
  assert.equal(t.tceAt(2), 0x2_0000_1001n);
  assert.deepEqual(bits(t), [0, 1, 2]);
  h.inKernel(() => iommuFree(t, dma, 2));
  assert.deepEqual(bits(t), [0]);
  assert.equal(t.validEntries(), 0);
});

test('iommu_take_ownership: bit 0 released, the bitmap filled for (it_size + 7) >> 3 bytes, stale TCEs put', () => {
  const h = host();
  const p = h.spawn();
  const buf = p.mmap(0n, 0x20000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const mm = p.task.mm;
  assert.ok(mm !== null);
  const a = mm.pinPage(Number(buf), true);
  const b = mm.pinPage(Number(buf) + 0x10000, false);
  const t = newTable(h, 0, 20);
  /* TCEs the host left without bitmap bits (firmware, a crashed kernel) */
  t.build(3, 1, a, DMA_BIDIRECTIONAL);
  t.build(4, 1, b, DMA_TO_DEVICE);
  const o = h.kernel.phys.lookup(a);
  assert.ok(o !== undefined);
  assert.equal(
    h.inKernel(() => iommuTakeOwnership(t)),
    0,
  );
  assert.deepEqual([...(t.it_map ?? new Uint8Array(4)).subarray(0, 4)], [0xff, 0xff, 0xff, 0]);
  assert.equal(t.validEntries(), 0);
  assert.equal(o.pinCount(0), 0);
  assert.equal(o.isDirty(0), true, 'the writable entry dirtied its page');
  assert.equal(o.pinCount(1), 0);
  assert.equal(o.isDirty(1), false);
  h.inKernel(() => iommuReleaseOwnership(t));
  assert.deepEqual(bits(t), [0], 'bit 0 restored');
});

test('iommu_take_ownership: -EBUSY while the host holds entries; bit 0 is not restored on that path', () => {
  const h = host();
  const t = newTable(h, 0, 64);
  assert.equal(iommuRangeAlloc(t, 1, 0xfffff, 0), 1);
  assert.equal(
    h.inKernel(() => iommuTakeOwnership(t)),
    -EBUSY,
  );
  assert.deepEqual(bits(t), [1]);
  assert.ok(h.dmesg().includes('iommu_tce: it_map is not empty'));
});

test('iommu_take_ownership of a window not at 0 leaves entry 0 alone; release does not reserve it', () => {
  const h = host();
  const t = newTable(h, 0x100, 64);
  assert.equal(
    h.inKernel(() => iommuTakeOwnership(t)),
    0,
  );
  assert.equal(bits(t).length, 64);
  h.inKernel(() => iommuReleaseOwnership(t));
  assert.deepEqual(bits(t), []);
});

test('iommu_clear_tces_and_put_pages skips empty entries and reports nothing for a page nobody holds', () => {
  const h = host();
  const t = newTable(h, 0, 16);
  t.build(2, 1, 0x1_0000_0000, DMA_BIDIRECTIONAL);
  assert.equal(
    h.inKernel(() => iommuClearTcesAndPutPages(t, 0, 16)),
    0,
  );
  assert.ok(
    h.dmesg().some((l) => l.startsWith('BUG: Bad page state')),
    'put_page on a page that is not RAM',
  );
  assert.equal(t.validEntries(), 0);
});
