// Unit tests of the type1 DMA mapping tree. Every case runs against the
// B+tree at its default order, the B+tree at a tiny order (so a few dozen
// entries already split and merge nodes) and the sorted-array reference.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DmaEntry, DmaTree } from '../../../src/vfio/iommu_type1/dma_tree.ts';
import {
  checkDmaTreeInvariants,
  createDmaTree,
  createDmaTreeWithOrder,
  createNaiveDmaTree,
  dmaTreeStats,
} from '../../../src/vfio/iommu_type1/dma_tree.ts';

const U64_MAX = (1n << 64n) - 1n;
const TOP = 1n << 64n;
const PAGE = 0x1000n;

const impls: [string, () => DmaTree][] = [
  ['btree', createDmaTree],
  ['btree order 4/4', () => createDmaTreeWithOrder(4, 4)],
  ['naive', createNaiveDmaTree],
];

function entry(iova: bigint, size: bigint, extra: Partial<DmaEntry> = {}): DmaEntry {
  return {
    iova,
    size,
    vaddr: (0x7f00_0000_0000n + iova) & U64_MAX,
    prot: 3,
    handle: 0,
    vaddrInvalid: false,
    ...extra,
  };
}

function iovas(list: DmaEntry[] | undefined): bigint[] | undefined {
  return list?.map((e) => e.iova);
}

function all(t: DmaTree): DmaEntry[] {
  const out: DmaEntry[] = [];
  t.forEach((e) => {
    out.push(e);
  });
  return out;
}

for (const [name, make] of impls) {
  describe(`dma tree (${name})`, () => {
    it('is empty when created', () => {
      const t = make();
      assert.equal(t.count, 0);
      assert.equal(t.get(0n), undefined);
      assert.equal(t.findOverlap(0n, U64_MAX), undefined);
      assert.equal(t.findContaining(0n), undefined);
      assert.equal(t.firstAtOrAfter(0n), undefined);
      assert.deepEqual(t.range(0n, TOP), []);
      assert.deepEqual(all(t), []);
      assert.equal(t.remove(0n), false);
      checkDmaTreeInvariants(t);
    });

    it('stores and returns every field exactly', () => {
      const t = make();
      const e: DmaEntry = {
        iova: 0xdead_b000n,
        size: 0x20_0000n,
        vaddr: 0xffff_ffff_ffff_f000n,
        prot: 0x7fff_ffff,
        handle: -1.5,
        vaddrInvalid: true,
      };
      t.insert(e);
      assert.deepEqual(t.get(e.iova), e);
      const odd = { ...entry(0x1_0000_0000n, PAGE), handle: 2 ** 52 + 1, prot: 0, vaddr: 0n };
      t.insert(odd);
      assert.deepEqual(t.get(odd.iova), odd);
      const nan = { ...entry(0x2_0000_0000n, PAGE), handle: Number.NaN };
      t.insert(nan);
      assert.ok(Number.isNaN(t.get(nan.iova)?.handle));
      assert.equal(t.count, 3);
    });

    it('hands out copies, not views of its storage', () => {
      const t = make();
      const e = entry(0n, PAGE);
      t.insert(e);
      e.size = 5n;
      const got = t.get(0n)!;
      assert.equal(got.size, PAGE);
      got.prot = 0;
      assert.equal(t.get(0n)?.prot, 3);
    });

    it('accepts an entry at iova 0 and adjacent entries on both sides', () => {
      const t = make();
      t.insert(entry(PAGE, PAGE));
      t.insert(entry(0n, PAGE));
      t.insert(entry(2n * PAGE, PAGE));
      assert.deepEqual(iovas(all(t)), [0n, PAGE, 2n * PAGE]);
      assert.equal(t.findContaining(0n)?.iova, 0n);
      assert.equal(t.findContaining(PAGE - 1n)?.iova, 0n);
      assert.equal(t.findContaining(PAGE)?.iova, PAGE);
      assert.equal(t.findContaining(3n * PAGE - 1n)?.iova, 2n * PAGE);
      assert.equal(t.findContaining(3n * PAGE), undefined);
    });

    it('rejects overlap by a single byte at either end, and duplicates', () => {
      const t = make();
      t.insert(entry(0x10000n, 0x1000n));
      assert.throws(() => t.insert(entry(0xf001n, 0x1000n)), { name: 'Error' });
      assert.throws(() => t.insert(entry(0x10fffn, 0x1000n)), { name: 'Error' });
      assert.throws(() => t.insert(entry(0x10000n, 0x1000n)), { name: 'Error' });
      assert.throws(() => t.insert(entry(0x10800n, 0x10n)), { name: 'Error' });
      assert.throws(() => t.insert(entry(0n, 0x100000n)), { name: 'Error' });
      assert.equal(t.count, 1);
      t.insert(entry(0xf000n, 0x1000n));
      t.insert(entry(0x11000n, 0x1000n));
      assert.equal(t.count, 3);
      checkDmaTreeInvariants(t);
    });

    it('validates fields with RangeError/TypeError before anything else', () => {
      const t = make();
      t.insert(entry(0n, PAGE));
      assert.throws(() => t.insert(entry(-1n, PAGE)), RangeError);
      assert.throws(() => t.insert(entry(TOP, PAGE)), RangeError);
      assert.throws(() => t.insert(entry(PAGE, 0n)), RangeError);
      assert.throws(() => t.insert(entry(PAGE, TOP)), RangeError);
      assert.throws(() => t.insert(entry(PAGE, PAGE, { vaddr: TOP })), RangeError);
      assert.throws(() => t.insert(entry(PAGE, PAGE, { prot: -1 })), RangeError);
      assert.throws(() => t.insert(entry(PAGE, PAGE, { prot: 2 ** 31 })), RangeError);
      assert.throws(() => t.insert(entry(PAGE, PAGE, { prot: 1.5 })), RangeError);
      assert.throws(() => t.insert({ ...entry(PAGE, PAGE), handle: '1' as unknown as number }), TypeError);
      assert.throws(
        () => t.insert({ ...entry(PAGE, PAGE), vaddrInvalid: 1 as unknown as boolean }),
        TypeError,
      );
      // Invalid and overlapping: the field check wins.
      assert.throws(() => t.insert(entry(0n, PAGE, { prot: -1 })), RangeError);
      assert.throws(() => t.findOverlap(0n, 0n), RangeError);
      assert.throws(() => t.findOverlap(0n, -1n), RangeError);
      assert.equal(t.count, 1);
    });

    it('handles u64 values near 2^64 exactly', () => {
      const t = make();
      const last = entry(TOP - PAGE, PAGE, { vaddr: U64_MAX });
      t.insert(last);
      assert.throws(() => t.insert(entry(TOP - PAGE, PAGE + 1n)), RangeError);
      assert.throws(() => t.insert(entry(U64_MAX, 2n)), RangeError);
      t.insert(entry(TOP - 2n * PAGE, PAGE));
      // Distinct above 2^53, where doubles would round them together.
      const big = 1n << 60n;
      t.insert(entry(big + 1n, 1n));
      t.insert(entry(big + 2n, 1n));
      t.insert(entry(big, 1n));
      assert.deepEqual(iovas(t.range(big, big + 3n)), [big, big + 1n, big + 2n]);
      assert.equal(t.get(big + 1n)?.size, 1n);
      assert.equal(t.findContaining(U64_MAX)?.iova, TOP - PAGE);
      assert.equal(t.findContaining(TOP - PAGE - 1n)?.iova, TOP - 2n * PAGE);
      assert.equal(t.findOverlap(U64_MAX, 1n)?.iova, TOP - PAGE);
      assert.equal(t.findOverlap(TOP - 3n * PAGE, U64_MAX)?.iova, TOP - 2n * PAGE);
      assert.deepEqual(iovas(t.range(TOP - PAGE - 1n, TOP)), [TOP - 2n * PAGE, TOP - PAGE]);
      assert.deepEqual(t.get(TOP - PAGE), last);
      assert.equal(t.firstAtOrAfter(TOP - PAGE + 1n), undefined);
      assert.equal(t.firstAtOrAfter(TOP), undefined);
      assert.equal(t.findContaining(TOP), undefined);
      assert.equal(t.get(TOP), undefined);
      assert.equal(t.remove(TOP - PAGE), true);
      t.insert(entry(U64_MAX, 1n));
      assert.equal(t.findContaining(U64_MAX)?.size, 1n);
      checkDmaTreeInvariants(t);
    });

    it('carries across the 2^32 boundary when computing ends', () => {
      const t = make();
      t.insert(entry(0xffff_f000n, 0x2000n));
      assert.equal(t.findContaining(0x1_0000_0000n)?.iova, 0xffff_f000n);
      assert.equal(t.findContaining(0x1_0000_0fffn)?.iova, 0xffff_f000n);
      assert.equal(t.findContaining(0x1_0000_1000n), undefined);
      assert.throws(() => t.insert(entry(0x1_0000_0000n, PAGE)), { name: 'Error' });
      t.insert(entry(0x1_0000_1000n, PAGE));
      assert.equal(t.findOverlap(0x1_0000_0fffn, 2n)?.iova, 0xffff_f000n);
    });

    it('findOverlap returns the lowest overlapping entry', () => {
      const t = make();
      for (const at of [0x1000n, 0x3000n, 0x5000n]) t.insert(entry(at, PAGE));
      assert.equal(t.findOverlap(0n, 0x1000n), undefined);
      assert.equal(t.findOverlap(0n, 0x1001n)?.iova, 0x1000n);
      assert.equal(t.findOverlap(0x1fffn, 1n)?.iova, 0x1000n);
      assert.equal(t.findOverlap(0x2000n, 0x1000n), undefined);
      assert.equal(t.findOverlap(0x1800n, 0x10000n)?.iova, 0x1000n);
      assert.equal(t.findOverlap(0x2000n, 0x10000n)?.iova, 0x3000n);
      assert.equal(t.findOverlap(0x4fffn, 0x2n)?.iova, 0x5000n);
      assert.equal(t.findOverlap(0x6000n, U64_MAX), undefined);
      assert.equal(t.findOverlap(0n, U64_MAX)?.iova, 0x1000n);
    });

    it('firstAtOrAfter finds the exact entry or the next one', () => {
      const t = make();
      for (const at of [0x1000n, 0x3000n]) t.insert(entry(at, PAGE));
      assert.equal(t.firstAtOrAfter(0n)?.iova, 0x1000n);
      assert.equal(t.firstAtOrAfter(-5n)?.iova, 0x1000n);
      assert.equal(t.firstAtOrAfter(0x1000n)?.iova, 0x1000n);
      assert.equal(t.firstAtOrAfter(0x1001n)?.iova, 0x3000n);
      assert.equal(t.firstAtOrAfter(0x3001n), undefined);
    });

    it('removes only at an exact start', () => {
      const t = make();
      t.insert(entry(0x1000n, PAGE));
      assert.equal(t.remove(0x1001n), false);
      assert.equal(t.remove(0x0fffn), false);
      assert.equal(t.remove(-1n), false);
      assert.equal(t.count, 1);
      assert.equal(t.remove(0x1000n), true);
      assert.equal(t.remove(0x1000n), false);
      assert.equal(t.count, 0);
      assert.equal(t.get(0x1000n), undefined);
    });

    it('range returns overlapping entries in order, end exclusive', () => {
      const t = make();
      for (let i = 0n; i < 10n; i++) t.insert(entry(i * 0x2000n, PAGE));
      assert.deepEqual(iovas(t.range(0x1000n, 0x4000n)), [0x2000n]);
      assert.deepEqual(iovas(t.range(0x0fffn, 0x4001n)), [0n, 0x2000n, 0x4000n]);
      assert.deepEqual(iovas(t.range(0x2fffn, 0x3000n)), [0x2000n]);
      assert.deepEqual(iovas(t.range(0x3000n, 0x4000n)), []);
      assert.deepEqual(iovas(t.range(0x5000n, 0x4000n)), []);
      assert.deepEqual(iovas(t.range(0x4000n, 0x4000n)), []);
      assert.equal(t.range(0n, TOP).length, 10);
      assert.equal(t.range(-100n, TOP + 100n).length, 10);
      assert.deepEqual(iovas(t.range(0x12000n, TOP)), [0x12000n]);
    });

    it('update patches fields and refuses to grow into the next entry', () => {
      const t = make();
      t.insert(entry(0x1000n, PAGE));
      t.insert(entry(0x3000n, PAGE));
      t.update(0x1000n, { vaddr: 5n, prot: 1, handle: 42, vaddrInvalid: true });
      assert.deepEqual(t.get(0x1000n), {
        iova: 0x1000n,
        size: PAGE,
        vaddr: 5n,
        prot: 1,
        handle: 42,
        vaddrInvalid: true,
      });
      t.update(0x1000n, { vaddrInvalid: false });
      assert.equal(t.get(0x1000n)?.vaddrInvalid, false);
      assert.equal(t.get(0x1000n)?.prot, 1);
      t.update(0x1000n, { size: 0x2000n });
      assert.equal(t.findContaining(0x2fffn)?.iova, 0x1000n);
      assert.throws(() => t.update(0x1000n, { size: 0x2001n, vaddr: 9n }), { name: 'Error' });
      assert.equal(t.get(0x1000n)?.vaddr, 5n, 'a rejected update writes nothing');
      assert.throws(() => t.update(0x1000n, { size: 0n }), RangeError);
      assert.throws(() => t.update(0x3000n, { size: TOP - 0x3000n + 1n }), RangeError);
      assert.throws(() => t.update(0x1001n, { prot: 1 }), { name: 'Error' });
      assert.throws(() => t.update(0x1000n, { prot: -2 }), RangeError);
      t.update(0x3000n, { size: TOP - 0x3000n });
      assert.equal(t.findContaining(U64_MAX)?.iova, 0x3000n);
      t.update(0x1000n, { size: 1n });
      assert.equal(t.findContaining(0x1001n), undefined);
      checkDmaTreeInvariants(t);
    });

    it('forEach visits ascending and detects mutation', () => {
      const t = make();
      for (const at of [5n, 1n, 9n, 3n, 7n]) t.insert(entry(at * PAGE, PAGE));
      assert.deepEqual(
        iovas(all(t)),
        [1n, 3n, 5n, 7n, 9n].map((x) => x * PAGE),
      );
      assert.throws(() => {
        t.forEach((e) => {
          t.remove(e.iova);
        });
      }, /mutated/);
      assert.throws(() => {
        t.forEach(() => {
          t.clear();
        });
      }, /mutated/);
    });

    it('clear empties the tree and it stays usable', () => {
      const t = make();
      for (let i = 0n; i < 100n; i++) t.insert(entry(i * PAGE, PAGE));
      t.clear();
      assert.equal(t.count, 0);
      assert.deepEqual(all(t), []);
      assert.equal(t.findContaining(0n), undefined);
      t.insert(entry(0n, PAGE));
      assert.equal(t.count, 1);
      checkDmaTreeInvariants(t);
    });

    it('keeps order through ascending, descending and interleaved fills and drains', () => {
      const n = 2000n;
      const orders: [string, bigint[]][] = [
        ['ascending', Array.from({ length: Number(n) }, (_, i) => BigInt(i))],
        ['descending', Array.from({ length: Number(n) }, (_, i) => n - 1n - BigInt(i))],
        ['interleaved', Array.from({ length: Number(n) }, (_, i) => BigInt((i * 7919) % Number(n)))],
      ];
      for (const [what, order] of orders) {
        const t = make();
        for (const i of order) t.insert(entry(i * PAGE, PAGE, { handle: Number(i) }));
        checkDmaTreeInvariants(t);
        assert.equal(t.count, Number(n), what);
        const seen = all(t);
        assert.deepEqual(
          seen.map((e) => e.handle),
          Array.from({ length: Number(n) }, (_, i) => i),
          what,
        );
        for (const i of order) assert.equal(t.findContaining(i * PAGE + 5n)?.handle, Number(i), what);
        // Drain every other entry, then the rest in reverse.
        for (const i of order) if (i % 2n === 0n) assert.equal(t.remove(i * PAGE), true, what);
        checkDmaTreeInvariants(t);
        assert.equal(t.findContaining(PAGE * 2n), undefined);
        assert.equal(t.findOverlap(0n, PAGE * 2n)?.iova, PAGE);
        for (const i of [...order].reverse()) if (i % 2n === 1n) assert.equal(t.remove(i * PAGE), true, what);
        checkDmaTreeInvariants(t);
        assert.equal(t.count, 0, what);
      }
    });
  });
}

describe('dma tree (btree specifics)', () => {
  it('keeps leaves full under ascending inserts', () => {
    const t = createDmaTree();
    for (let i = 0n; i < 10_000n; i++) t.insert(entry(i * PAGE, PAGE));
    const st = dmaTreeStats(t)!;
    assert.ok(st.leaves <= Math.ceil(10_000 / 32) + 1, `${st.leaves} leaves`);
    checkDmaTreeInvariants(t);
  });

  it('rejects orders it cannot represent', () => {
    assert.throws(() => createDmaTreeWithOrder(3, 64), RangeError);
    assert.throws(() => createDmaTreeWithOrder(65, 64), RangeError);
    assert.throws(() => createDmaTreeWithOrder(32, 3), RangeError);
  });

  it('reports no stats for the naive tree', () => {
    assert.equal(dmaTreeStats(createNaiveDmaTree()), undefined);
  });
});
