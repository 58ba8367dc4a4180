// Property tests: random operation sequences run on the B+tree (at several
// orders) and on the sorted-array reference must give identical results,
// including which error class is thrown; lookups are also checked against a
// brute-force scan of the live entries, and the B+tree's structural
// invariants are checked as the sequence runs.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { DmaEntry, DmaPatch, DmaTree } from '../../../src/vfio/iommu_type1/dma_tree.ts';
import {
  checkDmaTreeInvariants,
  createDmaTree,
  createDmaTreeWithOrder,
  createNaiveDmaTree,
  dmaTreeStats,
} from '../../../src/vfio/iommu_type1/dma_tree.ts';

const TOP = 1n << 64n;
const U64_MAX = TOP - 1n;

type Op =
  | { k: 'insert'; e: DmaEntry }
  | { k: 'remove'; at: bigint }
  | { k: 'removeLive'; pick: number }
  | { k: 'get'; at: bigint }
  | { k: 'getLive'; pick: number }
  | { k: 'findOverlap'; at: bigint; size: bigint }
  | { k: 'findContaining'; at: bigint }
  | { k: 'firstAtOrAfter'; at: bigint }
  | { k: 'range'; at: bigint; end: bigint }
  | { k: 'update'; at: bigint; patch: DmaPatch }
  | { k: 'updateLive'; pick: number; patch: DmaPatch }
  | { k: 'forEach' }
  | { k: 'clear' };

// Addresses cluster in a few narrow bands so that random operations collide,
// overlap and abut, and the bands sit where the (hi, lo) encoding has edges.
const address = fc.oneof(
  { arbitrary: fc.bigInt({ min: 0n, max: 2000n }), weight: 6 },
  { arbitrary: fc.bigInt({ min: (1n << 32n) - 300n, max: (1n << 32n) + 300n }), weight: 2 },
  { arbitrary: fc.bigInt({ min: (1n << 53n) - 300n, max: (1n << 53n) + 300n }), weight: 1 },
  { arbitrary: fc.bigInt({ min: TOP - 600n, max: U64_MAX }), weight: 2 },
  { arbitrary: fc.bigInt({ min: 0n, max: U64_MAX }), weight: 1 },
  { arbitrary: fc.constantFrom(-1n, TOP, TOP + 5n), weight: 1 },
);

const size = fc.oneof(
  { arbitrary: fc.bigInt({ min: 1n, max: 24n }), weight: 12 },
  { arbitrary: fc.bigInt({ min: 1n, max: U64_MAX }), weight: 1 },
  { arbitrary: fc.constantFrom(0n, -1n, U64_MAX, TOP), weight: 1 },
);

const prot = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 63 }), weight: 20 },
  { arbitrary: fc.constantFrom(-1, 2 ** 31, 0.5), weight: 1 },
);
const handle = fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.constant(Number.NaN));
const vaddr = fc.oneof(
  { arbitrary: fc.bigInt({ min: 0n, max: U64_MAX }), weight: 20 },
  { arbitrary: fc.constantFrom(-1n, TOP), weight: 1 },
);

const entryArb: fc.Arbitrary<DmaEntry> = fc.record({
  iova: address,
  size,
  vaddr,
  prot,
  handle,
  vaddrInvalid: fc.boolean(),
});

const patchArb: fc.Arbitrary<DmaPatch> = fc.record(
  { vaddr, size, prot, handle, vaddrInvalid: fc.boolean() },
  { requiredKeys: [] },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: entryArb.map((e) => ({ k: 'insert' as const, e })), weight: 72 },
  { arbitrary: address.map((at) => ({ k: 'remove' as const, at })), weight: 6 },
  { arbitrary: fc.nat().map((pick) => ({ k: 'removeLive' as const, pick })), weight: 12 },
  { arbitrary: address.map((at) => ({ k: 'get' as const, at })), weight: 6 },
  { arbitrary: fc.nat().map((pick) => ({ k: 'getLive' as const, pick })), weight: 6 },
  {
    arbitrary: fc.tuple(address, size).map(([at, s]) => ({ k: 'findOverlap' as const, at, size: s })),
    weight: 12,
  },
  { arbitrary: address.map((at) => ({ k: 'findContaining' as const, at })), weight: 12 },
  { arbitrary: address.map((at) => ({ k: 'firstAtOrAfter' as const, at })), weight: 6 },
  { arbitrary: fc.tuple(address, address).map(([at, end]) => ({ k: 'range' as const, at, end })), weight: 6 },
  {
    arbitrary: fc.tuple(address, patchArb).map(([at, patch]) => ({ k: 'update' as const, at, patch })),
    weight: 3,
  },
  {
    arbitrary: fc
      .tuple(fc.nat(), patchArb)
      .map(([pick, patch]) => ({ k: 'updateLive' as const, pick, patch })),
    weight: 6,
  },
  { arbitrary: fc.constant({ k: 'forEach' as const }), weight: 3 },
  // Rare: clearing resets the growth the sequences need to split nodes.
  { arbitrary: fc.constant({ k: 'clear' as const }), weight: 1 },
);

type Outcome = { ok: unknown } | { threw: string };

function outcome(f: () => unknown): Outcome {
  try {
    return { ok: f() };
  } catch (e) {
    return { threw: (e as Error).constructor.name };
  }
}

function listing(t: DmaTree): DmaEntry[] {
  const out: DmaEntry[] = [];
  t.forEach((e) => {
    out.push(e);
  });
  return out;
}

// What each lookup must return, computed by scanning every live entry.
function bruteForce(live: DmaEntry[], op: Op): unknown {
  const overlaps = (e: DmaEntry, s: bigint, end: bigint) => e.iova < end && e.iova + e.size > s;
  switch (op.k) {
    case 'get':
      return live.find((e) => e.iova === op.at);
    case 'findOverlap':
      return live.find((e) => overlaps(e, op.at, op.at + op.size));
    case 'findContaining':
      return live.find((e) => overlaps(e, op.at, op.at + 1n));
    case 'firstAtOrAfter':
      return live.find((e) => e.iova >= op.at);
    case 'range':
      return live.filter((e) => op.end > op.at && overlaps(e, op.at, op.end));
    default:
      return undefined;
  }
}

const LOOKUPS = new Set(['get', 'getLive', 'findOverlap', 'findContaining', 'firstAtOrAfter', 'range']);

// Runs ops on every tree; the first tree is the reference. Every lookup is
// also checked by brute force; the B+trees' invariants every `checkEvery`
// steps. `live` mirrors the set of iovas so that "live" picks can target
// existing entries.
function run(trees: DmaTree[], ops: Op[], checkEvery: number, live: bigint[] = []): void {
  const ref = trees[0]!;
  let snapshot: DmaEntry[] | undefined;
  ops.forEach((op, step) => {
    let act: (t: DmaTree) => unknown;
    let at: bigint | undefined;
    switch (op.k) {
      case 'insert':
        act = (t) => t.insert(op.e);
        break;
      case 'remove':
        act = (t) => t.remove(op.at);
        break;
      case 'removeLive':
      case 'getLive':
      case 'updateLive':
        at = live.length > 0 ? live[op.pick % live.length]! : 0n;
        if (op.k === 'removeLive') act = (t) => t.remove(at!);
        else if (op.k === 'getLive') act = (t) => t.get(at!);
        else act = (t) => t.update(at!, op.patch);
        break;
      case 'get':
        act = (t) => t.get(op.at);
        break;
      case 'findOverlap':
        act = (t) => t.findOverlap(op.at, op.size);
        break;
      case 'findContaining':
        act = (t) => t.findContaining(op.at);
        break;
      case 'firstAtOrAfter':
        act = (t) => t.firstAtOrAfter(op.at);
        break;
      case 'range':
        act = (t) => t.range(op.at, op.end);
        break;
      case 'update':
        act = (t) => t.update(op.at, op.patch);
        break;
      case 'forEach':
        act = listing;
        break;
      case 'clear':
        act = (t) => t.clear();
        break;
    }
    const want = outcome(() => act(ref));
    for (const t of trees.slice(1)) {
      assert.deepEqual(
        outcome(() => act(t)),
        want,
        `step ${step}: ${fmt(op)}`,
      );
      assert.equal(t.count, ref.count, `step ${step}: count`);
    }
    if ('ok' in want) {
      if (!LOOKUPS.has(op.k) && op.k !== 'forEach') snapshot = undefined;
      if (op.k === 'insert') live.push(op.e.iova);
      else if (op.k === 'clear') live.length = 0;
      else if ((op.k === 'remove' || op.k === 'removeLive') && want.ok === true) {
        const target = op.k === 'remove' ? op.at : at!;
        const i = live.indexOf(target);
        live[i] = live[live.length - 1]!;
        live.pop();
      }
    }
    if (LOOKUPS.has(op.k) && 'ok' in want) {
      snapshot ??= listing(ref);
      const probe: Op = op.k === 'getLive' ? { k: 'get', at: at! } : op;
      assert.deepEqual(want.ok, bruteForce(snapshot, probe), `step ${step}: brute force ${fmt(op)}`);
    }
    if (step % checkEvery === 0 || step === ops.length - 1) {
      assert.equal(ref.count, live.length, `step ${step}: live set`);
      for (const t of trees) checkDmaTreeInvariants(t);
    }
  });
  for (const t of trees.slice(1)) assert.deepEqual(listing(t), listing(ref), 'final contents');
}

function fmt(op: Op): string {
  return JSON.stringify(op, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

function makeTrees(): DmaTree[] {
  return [
    createNaiveDmaTree(),
    createDmaTree(),
    createDmaTreeWithOrder(4, 4),
    createDmaTreeWithOrder(5, 5),
    createDmaTreeWithOrder(64, 8),
  ];
}

describe('dma tree properties', () => {
  it('matches the sorted array and brute force on random operation sequences', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200, size: 'max' }), (ops) => {
        run(makeTrees(), ops, 10);
      }),
      { numRuns: 200 },
    );
  });

  it('matches on lookups at and around every entry boundary', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 40, size: 'max' }), (es) => {
        const trees = makeTrees();
        const ops: Op[] = es.map((e) => ({ k: 'insert', e }));
        for (const e of es) {
          for (const d of [-1, 0, 1]) {
            for (const at of [e.iova + BigInt(d), e.iova + e.size + BigInt(d)]) {
              ops.push({ k: 'findContaining', at });
              ops.push({ k: 'findOverlap', at, size: 1n });
              ops.push({ k: 'firstAtOrAfter', at });
              ops.push({ k: 'range', at, end: at + e.size });
            }
          }
        }
        run(trees, ops, 50);
      }),
      { numRuns: 100 },
    );
  });

  it('matches through thousands of live entries, splitting and merging nodes', () => {
    const page = 0x1000n;
    const mapping = fc.record({
      iova: fc.oneof(
        { arbitrary: fc.bigInt({ min: 0n, max: 1n << 16n }).map((p) => p * page), weight: 20 },
        { arbitrary: fc.bigInt({ min: 1n, max: 64n }).map((p) => TOP - p * page), weight: 1 },
      ),
      size: fc.bigInt({ min: 1n, max: 3n }).map((p) => p * page),
      vaddr: fc.bigInt({ min: 0n, max: U64_MAX }),
      prot: fc.integer({ min: 0, max: 7 }),
      handle: fc.nat(),
      vaddrInvalid: fc.boolean(),
    });
    const lookups = fc.oneof(
      fc.nat().map((pick) => ({ k: 'removeLive' as const, pick })),
      fc.nat().map((pick) => ({ k: 'getLive' as const, pick })),
      fc
        .bigInt({ min: 0n, max: 1n << 28n })
        .map((at) => ({ k: 'findOverlap' as const, at: at * 0x100n, size: page * 4n })),
      fc.bigInt({ min: 0n, max: 1n << 28n }).map((at) => ({ k: 'findContaining' as const, at: at * 0x100n })),
    );
    fc.assert(
      fc.property(
        fc.array(mapping, { minLength: 4000, maxLength: 5000 }),
        fc.array(
          fc.oneof(
            mapping.map((e) => ({ k: 'insert' as const, e })),
            lookups,
          ),
          { minLength: 2000, maxLength: 3000 },
        ),
        fc.array(fc.nat(), { minLength: 8000, maxLength: 8000 }),
        (fill, mixed, drain) => {
          const naive = createNaiveDmaTree();
          const trees = [naive, createDmaTree(), createDmaTreeWithOrder(4, 4), createDmaTreeWithOrder(8, 6)];
          const ops: Op[] = [...fill.map((e) => ({ k: 'insert' as const, e })), ...mixed];
          run(trees, ops, 500);
          const tall = dmaTreeStats(trees[1]!)!;
          assert.ok(tall.height >= 2, `default order reached height ${tall.height} only`);
          // Drain everything in a random order, checking as the tree shrinks.
          const rest = listing(naive).map((e) => e.iova);
          const order = rest.map((iova, i) => ({ iova, key: drain[i % drain.length]! * 8192 + i }));
          order.sort((a, b) => a.key - b.key);
          run(
            trees,
            order.map(({ iova }) => ({ k: 'remove', at: iova })),
            500,
            rest,
          );
          for (const t of trees) assert.equal(t.count, 0);
          assert.equal(dmaTreeStats(trees[1]!)!.height, 0);
        },
      ),
      // Shrinking sequences of ten thousand operations takes minutes; the
      // short-sequence properties above are where minimal counterexamples
      // come from.
      { numRuns: 2, endOnFailure: true },
    );
  });
});
