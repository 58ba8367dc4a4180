import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EEXIST, EINVAL, ENOSPC, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from '../../../src/index.ts';
import { type1Params } from '../../../src/vfio/iommu_type1/index.ts';
import { anon, mapDma, mappings, PAGE, PROFILES, setup, unmapDma } from './helpers.ts';

/*
 * Random MAP/UNMAP sequences against a reference model written from the
 * rules alone: the mapping set, every errno, the size UNMAP writes back,
 * and locked_vm equal to the pages the live mappings pinned. The 6.12
 * containers get a dma_entry_limit of 6 so -ENOSPC comes up too.
 */
type Op = { kind: 'map'; page: number; pages: number } | { kind: 'unmap'; page: number; pages: number };

interface Model {
  readonly v2: boolean;
  readonly limit: number;
  maps: [number, number][] /* [first page, pages], sorted */;
}

function modelMap(m: Model, page: number, pages: number): number {
  if (m.maps.some(([p, n]) => p < page + pages && page < p + n)) return -EEXIST;
  if (m.maps.length >= m.limit) return -ENOSPC;
  m.maps.push([page, pages]);
  m.maps.sort((a, b) => a[0] - b[0]);
  return 0;
}

function modelUnmap(m: Model, page: number, pages: number): [number, number] {
  const end = page + pages;
  if (m.v2) {
    if (m.maps.some(([p, n]) => p < page && page < p + n)) return [-EINVAL, 0];
    if (m.maps.some(([p, n]) => p <= end - 1 && end - 1 < p + n && p + n !== end)) return [-EINVAL, 0];
  }
  let freed = 0;
  const keep: [number, number][] = [];
  let stopped = false;
  for (const [p, n] of m.maps) {
    const overlaps = p < end && page < p + n;
    if (!overlaps || stopped) {
      keep.push([p, n]);
      continue;
    }
    /* v1: a mapping that starts below the request ends the walk */
    if (!m.v2 && p < page) {
      stopped = true;
      keep.push([p, n]);
      continue;
    }
    freed += n;
  }
  m.maps = keep;
  return [0, freed];
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('map' as const),
    page: fc.integer({ min: 0, max: 40 }),
    pages: fc.integer({ min: 1, max: 6 }),
  }),
  fc.record({
    kind: fc.constant('unmap' as const),
    page: fc.integer({ min: 0, max: 40 }),
    pages: fc.integer({ min: 1, max: 12 }),
  }),
);

for (const kernel of PROFILES) {
  describe(`type1 against a reference model (${kernel})`, () => {
    for (const type of [VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU]) {
      it(`random MAP/UNMAP sequences, ${type === VFIO_TYPE1_IOMMU ? 'v1' : 'v2'}`, () => {
        fc.assert(
          fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
            const limit = kernel === '6.12' ? 6 : Number.POSITIVE_INFINITY;
            const s = setup({
              kernel,
              type,
              before: (h) => {
                if (kernel === '6.12') type1Params(h.kernel).dma_entry_limit = 6;
              },
            });
            const mem = anon(s.p, 64n * PAGE);
            const model: Model = { v2: type === VFIO_TYPE1v2_IOMMU, limit, maps: [] };
            for (const op of ops) {
              const iova = BigInt(op.page) * PAGE;
              const size = BigInt(op.pages) * PAGE;
              if (op.kind === 'map') {
                const want = modelMap(model, op.page, op.pages);
                assert.equal(
                  mapDma(s, { vaddr: mem + iova, iova, size }),
                  want,
                  `map ${op.page}+${op.pages}`,
                );
              } else {
                const [ret, freed] = modelUnmap(model, op.page, op.pages);
                const r = unmapDma(s, iova, size);
                assert.equal(r.ret, ret, `unmap ${op.page}+${op.pages}`);
                if (ret === 0) assert.equal(r.size, BigInt(freed) * PAGE);
              }
              assert.deepEqual(
                mappings(s),
                model.maps.map(([p, n]) => [BigInt(p) * PAGE, BigInt(n) * PAGE]),
              );
              assert.equal(
                s.p.lockedVm,
                model.maps.reduce((t, [, n]) => t + n, 0),
              );
            }
            const base = s.host.liveObjects();
            assert.equal(base.vfio_dma ?? 0, model.maps.length);
            s.p.exit();
            assert.equal(s.host.liveObjects().vfio_dma, undefined);
          }),
          { numRuns: 40 },
        );
      });
    }
  });
}
