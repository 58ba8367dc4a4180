import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IovaAllocator } from '../../src/lib/index.ts';

const MSI = { start: 0xfee0_0000n, end: 0xfeef_ffffn };
/* the x86 type1 ranges around the MSI window, as the 6.x kernel reports them */
const X86 = [
  { start: 0n, end: MSI.start - 1n },
  { start: MSI.end + 1n, end: (1n << 39n) - 1n },
];

test('first fit from the bottom, sizes rounded to the granule', () => {
  const a = new IovaAllocator(X86);
  assert.equal(a.alloc(1n), 0n);
  assert.equal(a.sizeOf(0n), 0x1000n);
  assert.equal(a.alloc(0x1001n), 0x1000n);
  assert.equal(a.sizeOf(0x1000n), 0x2000n);
  assert.equal(a.alloc(0x1000n, { align: 0x10_0000n }), 0x10_0000n);
  assert.equal(a.alloc(0x1000n), 0x3000n, 'the hole below the aligned one is used');
  a.free(0x1000n);
  assert.equal(a.alloc(0x2000n), 0x1000n, 'a freed range is reused');
});

test('the reserved MSI window is never handed out', () => {
  const a = new IovaAllocator(X86, 0x10_0000n);
  const below = a.alloc(MSI.start); /* everything below the window */
  assert.equal(below, 0n);
  const next = a.alloc(0x10_0000n);
  assert.equal(next, MSI.end + 1n);
  assert.deepEqual(a.freeRanges(), [{ start: MSI.end + 1n + 0x10_0000n, end: (1n << 39n) - 1n }]);
});

test('a limit for a device DMA mask', () => {
  const a = new IovaAllocator([{ start: 0n, end: 0xffff_ffffn }]);
  const mask28 = 1n << 28n;
  const x = a.alloc(mask28 - 0x1000n, { below: mask28 });
  assert.equal(x, 0n);
  assert.equal(a.alloc(0x1000n, { below: mask28 }), mask28 - 0x1000n);
  assert.throws(
    () => a.alloc(0x1000n, { below: mask28 }),
    /no free IOVA range of 0x1000 bytes below 0x10000000/,
  );
  assert.equal(a.alloc(0x1000n), mask28);
});

test('reserve takes an exact range; errors for taken, misaligned, unknown', () => {
  const a = new IovaAllocator([{ start: 0x1000n, end: 0xf_ffffn }]);
  a.reserve(0x8000n, 0x2000n);
  assert.throws(() => a.reserve(0x9000n, 0x1000n), /IOVA 0x9000\+0x1000 is not free/);
  assert.throws(() => a.reserve(0x0n, 0x1000n), /IOVA 0x0\+0x1000 is not free/);
  assert.throws(() => a.reserve(0x8800n, 0x1000n), /not 0x1000-aligned/);
  assert.throws(() => a.free(0x9000n), /IOVA 0x9000 was not allocated here/);
  assert.equal(a.alloc(0x7000n), 0x1000n);
  assert.throws(() => a.alloc(0xf_7000n), /no free IOVA range of 0xf7000 bytes/);
  assert.equal(a.alloc(0xf_6000n), 0xa000n);
  a.free(0xa000n);
  a.free(0x8000n);
  a.free(0x1000n);
  assert.deepEqual(a.freeRanges(), [{ start: 0x1000n, end: 0xf_ffffn }], 'frees merge back into one range');
});

test('ranges are clipped to the granule; bad arguments are refused', () => {
  const a = new IovaAllocator([{ start: 0x800n, end: 0x2fffn }], 0x1000n);
  assert.deepEqual(a.freeRanges(), [{ start: 0x1000n, end: 0x2fffn }]);
  assert.equal(a.available, 0x2000n);
  assert.throws(() => new IovaAllocator([], 3n), /not a power of two/);
  assert.throws(() => new IovaAllocator([{ start: 2n, end: 1n }]), /ends before it starts/);
  assert.throws(() => a.alloc(0n), /cannot allocate 0 bytes/);
  assert.throws(
    () =>
      new IovaAllocator([
        { start: 0n, end: 0x1fffn },
        { start: 0x1000n, end: 0x2fffn },
      ]),
    /overlaps/,
  );
});

test('property: allocations stay inside the ranges, aligned, disjoint; freeing all restores everything', () => {
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('alloc' as const),
      pages: fc.integer({ min: 1, max: 64 }),
      alignShift: fc.integer({ min: 0, max: 6 }),
    }),
    fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const ranges = [
        { start: 0x1000n, end: 0x3f_ffffn },
        { start: 0x80_0000n, end: 0x9f_ffffn },
      ];
      const a = new IovaAllocator(ranges);
      const total = a.available;
      const live = new Map<bigint, bigint>();
      for (const o of ops) {
        if (o.kind === 'alloc') {
          const size = BigInt(o.pages) * 0x1000n;
          const align = 0x1000n << BigInt(o.alignShift);
          let iova: bigint;
          try {
            iova = a.alloc(size, { align });
          } catch {
            continue;
          }
          assert.equal(iova % align, 0n);
          assert.ok(ranges.some((r) => r.start <= iova && iova + size - 1n <= r.end));
          for (const [s, l] of live) assert.ok(iova + size <= s || s + l <= iova, 'overlap');
          live.set(iova, size);
        } else if (live.size > 0) {
          const keys = [...live.keys()];
          const k = keys[o.pick % keys.length]!;
          a.free(k);
          live.delete(k);
        }
        const used = [...live.values()].reduce((n, l) => n + l, 0n);
        assert.equal(a.available, total - used);
      }
      for (const k of live.keys()) a.free(k);
      assert.deepEqual(a.freeRanges(), ranges);
    }),
    { numRuns: 200 },
  );
});
