import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EFAULT,
  EINVAL,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../../../src/index.ts';
import { anon, mapDma, mappings, PAGE, PROFILES, type Setup, setup, unmapDma } from './helpers.ts';

/*
 * VFIO_IOMMU_UNMAP_DMA: v1 and v2 containers side by side on the same
 * sequences, in both profiles. Three mappings: A = [0, 0x4000),
 * B = [0x4000, 0x8000), C = [0x10000, 0x11000).
 */
const A: [bigint, bigint] = [0x0n, 0x4000n];
const B: [bigint, bigint] = [0x4000n, 0x4000n];
const C: [bigint, bigint] = [0x10000n, 0x1000n];

function threeMappings(kernel: '4.1' | '6.12', type: number): Setup {
  const s = setup({ kernel, type });
  const mem = anon(s.p, 0x9000n);
  for (const [i, [iova, size]] of [A, B, C].entries())
    assert.equal(mapDma(s, { vaddr: mem + BigInt(i) * 0x4000n, iova, size }), 0);
  assert.equal(s.p.lockedVm, 9);
  return s;
}

interface Case {
  readonly what: string;
  readonly iova: bigint;
  readonly size: bigint;
  /* [ret, size written back, mappings left] for v1 and v2 */
  readonly v1: [number, bigint, [bigint, bigint][]];
  readonly v2: [number, bigint, [bigint, bigint][]];
}

const CASES: Case[] = [
  {
    what: 'exactly one mapping',
    iova: 0n,
    size: 0x4000n,
    v1: [0, 0x4000n, [B, C]],
    v2: [0, 0x4000n, [B, C]],
  },
  {
    what: 'a range inside a mapping',
    iova: 0x1000n,
    size: 0x1000n,
    v1: [0, 0n, [A, B, C]],
    v2: [-EINVAL, 0x1000n, [A, B, C]],
  },
  {
    what: "a mapping's first page",
    iova: 0n,
    size: 0x1000n,
    v1: [0, 0x4000n, [B, C]],
    v2: [-EINVAL, 0x1000n, [A, B, C]],
  },
  { what: 'two whole mappings', iova: 0n, size: 0x8000n, v1: [0, 0x8000n, [C]], v2: [0, 0x8000n, [C]] },
  {
    what: 'a range from inside one mapping into the next',
    iova: 0x2000n,
    size: 0x4000n,
    v1: [0, 0n, [A, B, C]],
    v2: [-EINVAL, 0x4000n, [A, B, C]],
  },
  {
    what: 'one mapping and the start of the next',
    iova: 0n,
    size: 0x6000n,
    v1: [0, 0x8000n, [C]],
    v2: [-EINVAL, 0x6000n, [A, B, C]],
  },
  { what: 'a hole', iova: 0x8000n, size: 0x8000n, v1: [0, 0n, [A, B, C]], v2: [0, 0n, [A, B, C]] },
  {
    what: 'a range from a hole over a mapping',
    iova: 0x8000n,
    size: 0xa000n,
    v1: [0, 0x1000n, [A, B]],
    v2: [0, 0x1000n, [A, B]],
  },
  {
    what: 'a range with holes around every mapping',
    iova: 0n,
    size: 0x20000n,
    v1: [0, 0x9000n, []],
    v2: [0, 0x9000n, []],
  },
];

for (const kernel of PROFILES) {
  describe(`UNMAP_DMA v1 against v2 (${kernel})`, () => {
    for (const c of CASES) {
      it(`unmapping ${c.what}`, () => {
        for (const [type, want] of [
          [VFIO_TYPE1_IOMMU, c.v1],
          [VFIO_TYPE1v2_IOMMU, c.v2],
        ] as const) {
          const s = threeMappings(kernel, type);
          const r = unmapDma(s, c.iova, c.size);
          assert.deepEqual([r.ret, r.size], [want[0], want[1]], `type ${type}`);
          assert.deepEqual(mappings(s), want[2], `type ${type}`);
          const left = want[2].reduce((n, [, sz]) => n + Number(sz / PAGE), 0);
          assert.equal(s.p.lockedVm, left, `type ${type}`);
        }
      });
    }

    it('a request that wraps past 2^64: 4.1 takes its end modulo 2^64, 6.12 refuses it', () => {
      for (const [type, want] of [
        [VFIO_TYPE1_IOMMU, kernel === '4.1' ? 0 : -EINVAL],
        /* 4.1 v2: the wrapped end falls inside A, which does not end there */
        [VFIO_TYPE1v2_IOMMU, -EINVAL],
      ] as const) {
        const s = threeMappings(kernel, type);
        const r = unmapDma(s, 0xffff_ffff_ffff_f000n, 0x2000n);
        assert.equal(r.ret, want, `type ${type}`);
        if (r.ret === 0) assert.equal(r.size, 0n);
        assert.deepEqual(mappings(s), [A, B, C]);
      }
    });
  });

  describe(`UNMAP_DMA argument checks (${kernel})`, () => {
    it('argsz, flags, alignment, size 0 and a bad pointer', () => {
      const s = threeMappings(kernel, VFIO_TYPE1v2_IOMMU);
      assert.equal(unmapDma(s, 0n, 0x4000n, 0, s.container, s.p, 23).ret, -EINVAL);
      assert.equal(unmapDma(s, 0n, 0x4000n, 0x8).ret, -EINVAL);
      assert.equal(unmapDma(s, 0x800n, 0x4000n).ret, -EINVAL);
      assert.equal(unmapDma(s, 0n, 0x4800n).ret, -EINVAL);
      assert.equal(unmapDma(s, 0n, 0n).ret, -EINVAL);
      assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, 0x1000n), -EFAULT);
      assert.deepEqual(mappings(s), [A, B, C]);
    });

    it(
      kernel === '4.1' ? 'refuses every flag (ALL, VADDR) with -EINVAL' : 'UNMAP_ALL takes everything',
      () => {
        const s = threeMappings(kernel, VFIO_TYPE1v2_IOMMU);
        if (kernel === '4.1') {
          assert.equal(unmapDma(s, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL).ret, -EINVAL);
          assert.equal(unmapDma(s, 0n, 0x4000n, VFIO_DMA_UNMAP_FLAG_VADDR).ret, -EINVAL);
          assert.deepEqual(mappings(s), [A, B, C]);
          return;
        }
        assert.equal(unmapDma(s, 0n, 0x1000n, VFIO_DMA_UNMAP_FLAG_ALL).ret, -EINVAL);
        assert.equal(unmapDma(s, 0x1000n, 0n, VFIO_DMA_UNMAP_FLAG_ALL).ret, -EINVAL);
        assert.deepEqual(mappings(s), [A, B, C]);
        assert.deepEqual(unmapDma(s, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL), { ret: 0, size: 0x9000n });
        assert.deepEqual(mappings(s), []);
        assert.equal(s.p.lockedVm, 0);
      },
    );

    it('UNMAP_ALL in a v1 container also takes everything (6.12)', () => {
      if (kernel === '4.1') return;
      const s = threeMappings(kernel, VFIO_TYPE1_IOMMU);
      assert.deepEqual(unmapDma(s, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL), { ret: 0, size: 0x9000n });
      assert.deepEqual(mappings(s), []);
    });

    it('mappings can be unmapped from the top of the address space down', () => {
      const s = setup({ kernel });
      const mem = anon(s.p, 4n * PAGE);
      const top = (1n << 39n) - 4n * PAGE;
      assert.equal(mapDma(s, { vaddr: mem, iova: top, size: 4n * PAGE }), 0);
      assert.deepEqual(unmapDma(s, top, 4n * PAGE), { ret: 0, size: 4n * PAGE });
      assert.equal(s.p.lockedVm, 0);
    });
  });
}
