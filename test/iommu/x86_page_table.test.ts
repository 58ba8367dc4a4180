import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IOMMU_READ, IOMMU_WRITE, PageTable } from '../../src/iommu/index.ts';

/*
 * The x86 domain page table on its own: superpages where both addresses
 * allow them, coarse-grained unmapping, contiguous runs, and a random
 * walk checked page by page against a plain map.
 */
const RW = IOMMU_READ | IOMMU_WRITE;
const GiB = 1 << 30;
const PHYS = 0x1_0000_0000;
const PAGES_2M = 512;

describe('x86 page table', () => {
  it('maps with 2 MiB and 1 GiB superpages where iova and phys are both aligned', () => {
    const pt = new PageTable(0x40201000n);
    /* 2 MiB + 4 KiB at IOVA 2 MiB, phys 2 MiB aligned: one 2 MiB entry and one leaf */
    pt.map(PAGES_2M, PHYS, PAGES_2M + 1, RW);
    /* 1 GiB at IOVA 1 GiB, phys 1 GiB aligned */
    pt.map(GiB / 4096, 4 * GiB, GiB / 4096, IOMMU_READ);
    /* phys misaligned for a superpage: 4 KiB leaves */
    pt.map(4 * PAGES_2M, PHYS + 4096, 3, RW);
    assert.deepEqual(
      pt.entries().map((e) => [e.ipfn, e.pages, e.phys, e.prot]),
      [
        [512, 512, PHYS, RW],
        [1024, 1, PHYS + PAGES_2M * 4096, RW],
        [2048, 1, PHYS + 4096, RW],
        [2049, 1, PHYS + 2 * 4096, RW],
        [2050, 1, PHYS + 3 * 4096, RW],
        [GiB / 4096, GiB / 4096, 4 * GiB, IOMMU_READ],
      ],
    );
    assert.equal(pt.mappedPages, 513 + 3 + GiB / 4096);
    assert.equal(pt.iovaToPhys(512 + 7), PHYS + 7 * 4096);
    assert.equal(pt.iovaToPhys(GiB / 4096 + 5), 4 * GiB + 5 * 4096);
    assert.equal(pt.iovaToPhys(511), 0);
    assert.ok(pt.lookup(GiB / 4096 + 100));
    assert.deepEqual([pt.hitBase, pt.hitPages, pt.hitProt], [GiB / 4096, GiB / 4096, IOMMU_READ]);
  });

  it('follows a contiguous run across entries and stops where phys jumps', () => {
    const pt = new PageTable(0x40201000n);
    pt.map(PAGES_2M, PHYS, PAGES_2M + 2, RW);
    pt.map(2 * PAGES_2M + 2, PHYS + 0x10_0000_0000, 1, RW);
    assert.equal(pt.contiguousPages(PAGES_2M + 10, 10_000), PAGES_2M + 2 - 10);
    assert.equal(pt.runPhys, PHYS + 10 * 4096);
    assert.equal(pt.contiguousPages(PAGES_2M, 3), 3);
    assert.equal(pt.contiguousPages(0, 10), 0);
  });

  it('unmaps a superpage whole even when asked for part of it (coarse-grained)', () => {
    const pt = new PageTable(0x40201000n);
    pt.map(PAGES_2M, PHYS, PAGES_2M, RW);
    assert.equal(pt.unmap(PAGES_2M, 1), PAGES_2M);
    assert.equal(pt.mappedPages, 0);
    assert.equal(pt.iovaToPhys(PAGES_2M + 1), 0);
    /* a hole is counted through */
    pt.map(10, PHYS, 1, RW);
    assert.equal(pt.unmap(8, 4), 4);
    assert.equal(pt.mappedPages, 0);
  });

  it('a 4 KiB-only IOMMU maps everything in leaves', () => {
    const pt = new PageTable(0x1000n);
    pt.map(PAGES_2M, PHYS, PAGES_2M, RW);
    assert.equal(pt.entries().length, PAGES_2M);
  });

  it('grows and shrinks its tables with the number of entries', () => {
    const pt = new PageTable(0x40201000n);
    const small = pt.bytes;
    for (let i = 0; i < 10_000; i++) pt.map(i * 2, PHYS + i * 4096, 1, RW);
    assert.ok(pt.bytes >= 10_000 * 16 && pt.bytes <= 10_000 * 16 * 4, `${pt.bytes}`);
    for (let i = 0; i < 10_000; i++) assert.equal(pt.iovaToPhys(i * 2), PHYS + i * 4096);
    for (let i = 0; i < 10_000; i++) assert.equal(pt.unmap(i * 2, 1), 1);
    assert.equal(pt.bytes, small);
    assert.equal(pt.entries().length, 0);
  });

  it('agrees with a plain map of pages under random map/unmap', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            map: fc.boolean(),
            page: fc.integer({ min: 0, max: 3 * PAGES_2M }),
            pages: fc.integer({ min: 1, max: 2 * PAGES_2M }),
            aligned: fc.boolean(),
          }),
          { maxLength: 40 },
        ),
        (ops) => {
          const pt = new PageTable(0x40201000n);
          const ref = new Map<number, number>();
          let phys = PHYS;
          for (const op of ops) {
            const page = op.aligned ? op.page - (op.page % PAGES_2M) : op.page;
            if (op.map) {
              let free = true;
              for (let p = page; p < page + op.pages; p++) if (ref.has(p)) free = false;
              if (!free || pt.anyMapped(page, op.pages)) {
                assert.equal(free, false);
                continue;
              }
              const base = op.aligned ? phys + (page % PAGES_2M) * 4096 : phys + 4096;
              pt.map(page, base, op.pages, RW);
              for (let p = 0; p < op.pages; p++) ref.set(page + p, base + p * 4096);
              phys += 4 * PAGES_2M * 4096;
            } else {
              /* unmap what a caller that knows its mappings would: exact entries */
              const n = pt.contiguousPages(page, op.pages);
              if (n === 0) continue;
              const got = pt.unmap(page, n);
              for (const [p] of [...ref]) if (!pt.lookup(p)) ref.delete(p);
              assert.ok(got >= n);
            }
            for (const [p, ph] of ref) assert.equal(pt.iovaToPhys(p), ph);
            assert.equal(pt.mappedPages, ref.size);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
