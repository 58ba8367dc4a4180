import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CAP_IPC_LOCK,
  EEXIST,
  EFAULT,
  EINVAL,
  ENOMEM,
  PROT_READ,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_IOMMU_MAP_DMA,
} from '../../../src/index.ts';
import { type1Params } from '../../../src/vfio/iommu_type1/index.ts';
import {
  anon,
  debug,
  dmesgMark,
  dmesgSince,
  MiB,
  mapDma,
  mappings,
  PAGE,
  PROFILES,
  setup,
  unmapDma,
  vmLckKb,
} from './helpers.ts';

/*
 * VFIO_IOMMU_MAP_DMA, branch by branch, in both profiles: the errno and
 * what is left afterwards (the mapping set and locked_vm).
 */
const U64_MAX = 0xffff_ffff_ffff_ffffn;

for (const kernel of PROFILES) {
  describe(`MAP_DMA argument checks (${kernel})`, () => {
    const cases: [string, (mem: bigint) => Parameters<typeof mapDma>[1], number][] = [
      ['argsz < 32', (mem) => ({ vaddr: mem, iova: 0n, size: PAGE, argsz: 31 }), EINVAL],
      ['an unknown flag', (mem) => ({ vaddr: mem, iova: 0n, size: PAGE, flags: 0x3 | 0x8 }), EINVAL],
      ['neither READ nor WRITE', (mem) => ({ vaddr: mem, iova: 0n, size: PAGE, flags: 0 }), EINVAL],
      ['size 0', (mem) => ({ vaddr: mem, iova: 0n, size: 0n }), EINVAL],
      ['a misaligned iova', (mem) => ({ vaddr: mem, iova: 0x800n, size: PAGE }), EINVAL],
      ['a misaligned vaddr', (mem) => ({ vaddr: mem + 0x10n, iova: 0n, size: PAGE }), EINVAL],
      ['a misaligned size', (mem) => ({ vaddr: mem, iova: 0n, size: PAGE + 1n }), EINVAL],
      ['an iova that wraps', (mem) => ({ vaddr: mem, iova: U64_MAX - PAGE + 1n, size: 2n * PAGE }), EINVAL],
      ['a vaddr that wraps', () => ({ vaddr: U64_MAX - PAGE + 1n, iova: 0n, size: 2n * PAGE }), EINVAL],
    ];
    for (const [what, args, errno] of cases) {
      it(`refuses ${what} with -${errno === EINVAL ? 'EINVAL' : errno}, mapping nothing`, () => {
        const s = setup({ kernel });
        const mem = anon(s.p, 4n * PAGE);
        assert.equal(mapDma(s, args(mem)), -errno);
        assert.deepEqual(mappings(s), []);
        assert.equal(s.p.lockedVm, 0);
      });
    }

    it('VADDR is an unknown flag in 4.1 and needs no READ/WRITE in 6.12', () => {
      const s = setup({ kernel });
      const mem = anon(s.p, PAGE);
      const withRw = mapDma(s, { vaddr: mem, iova: 0n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_VADDR | 3 });
      assert.equal(withRw, -EINVAL);
      const alone = mapDma(s, { vaddr: mem, iova: 0n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_VADDR });
      /* 6.12: no mapping at iova to update */
      assert.equal(alone, kernel === '4.1' ? -EINVAL : -2 /* ENOENT */);
    });

    it('an unreadable argument is -EFAULT', () => {
      const s = setup({ kernel });
      assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, 0x1000n), -EFAULT);
    });
  });

  describe(`MAP_DMA mapping and pinning (${kernel})`, () => {
    it('maps, pins and charges each page once', () => {
      const s = setup({ kernel });
      const mem = anon(s.p, 2n * MiB);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0x100000n, size: 2n * MiB }), 0);
      assert.deepEqual(mappings(s), [[0x100000n, 2n * MiB]]);
      assert.equal(s.p.lockedVm, 512);
      assert.equal(vmLckKb(s.p), 2048);
      assert.equal(debug(s).mappings[0]?.lockedPages, 512);
      /* READ only: the device may read */
      assert.equal(
        mapDma(s, { vaddr: mem, iova: 0x1000_0000n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_READ }),
        0,
      );
      assert.equal(debug(s).mappings[1]?.prot, 1);
      /* the same page pinned twice is charged twice, as the kernel does */
      assert.equal(s.p.lockedVm, 513);
    });

    for (const [what, iova, size] of [
      ['the same range', 0x10000n, 0x4000n],
      ['its first page', 0x10000n, PAGE],
      ['its last page', 0x13000n, PAGE],
      ['a range around it', 0xf000n, 0x6000n],
      ['the page below and its first page', 0xf000n, 0x2000n],
    ] as const) {
      it(`refuses ${what} of an existing mapping with -EEXIST`, () => {
        const s = setup({ kernel });
        const mem = anon(s.p, 8n * PAGE);
        assert.equal(mapDma(s, { vaddr: mem, iova: 0x10000n, size: 0x4000n }), 0);
        assert.equal(mapDma(s, { vaddr: mem, iova, size }), -EEXIST);
        assert.deepEqual(mappings(s), [[0x10000n, 0x4000n]]);
        assert.equal(s.p.lockedVm, 4);
      });
    }

    it('maps right next to an existing mapping without merging them', () => {
      const s = setup({ kernel });
      const mem = anon(s.p, 2n * PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: PAGE }), 0);
      assert.equal(mapDma(s, { vaddr: mem + PAGE, iova: PAGE, size: PAGE }), 0);
      assert.deepEqual(mappings(s), [
        [0n, PAGE],
        [PAGE, PAGE],
      ]);
    });

    it('unmapped memory is -EFAULT and a failure part way rolls everything back', () => {
      const s = setup({ kernel });
      assert.equal(mapDma(s, { vaddr: 0x1000n, iova: 0n, size: PAGE }), -EFAULT);
      const mem = anon(s.p, 4n * PAGE);
      s.p.munmap(mem + 2n * PAGE, 2n * PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 4n * PAGE }), -EFAULT);
      assert.deepEqual(mappings(s), []);
      assert.equal(s.p.lockedVm, 0);
      /* nothing is left pinned: the memory goes when unmapped */
      const obj = s.host.kernel.phys.lookup(s.p.task.mm?.pinPage(Number(mem), false) ?? 0);
      assert.equal(obj?.totalPins, 1);
    });

    it('read-only memory maps for device reads only', () => {
      const s = setup({ kernel });
      const ro = anon(s.p, PAGE, PROT_READ);
      assert.equal(mapDma(s, { vaddr: ro, iova: 0n, size: PAGE }), -EFAULT);
      assert.equal(mapDma(s, { vaddr: ro, iova: 0n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_WRITE }), -EFAULT);
      assert.equal(mapDma(s, { vaddr: ro, iova: 0n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_READ }), 0);
      assert.equal(s.p.lockedVm, 1);
    });

    it('RLIMIT_MEMLOCK is enforced to the page, with the kernel warning', () => {
      const s = setup({ kernel, spawn: { rlimitMemlock: 16n * PAGE } });
      const mem = anon(s.p, 64n * PAGE);
      /* exactly at the limit */
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 16n * PAGE }), 0);
      assert.equal(s.p.lockedVm, 16);
      const mark = dmesgMark(s.host);
      assert.equal(mapDma(s, { vaddr: mem + 16n * PAGE, iova: 16n * PAGE, size: PAGE }), -ENOMEM);
      const fn = kernel === '4.1' ? 'vfio_pin_pages' : 'vfio_pin_pages_remote';
      assert.deepEqual(dmesgSince(s.host, mark), [`${fn}: RLIMIT_MEMLOCK (65536) exceeded`]);
      assert.deepEqual(mappings(s), [[0n, 16n * PAGE]]);
      assert.equal(s.p.lockedVm, 16);
    });

    it('a mapping that crosses the limit part way fails whole (4.1 warns per chunk)', () => {
      const s = setup({ kernel, spawn: { rlimitMemlock: 16n * PAGE } });
      const mem = anon(s.p, 32n * PAGE);
      const mark = dmesgMark(s.host);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 32n * PAGE }), -ENOMEM);
      const fn = kernel === '4.1' ? 'vfio_pin_pages' : 'vfio_pin_pages_remote';
      const warn = `${fn}: RLIMIT_MEMLOCK (65536) exceeded`;
      /* 4.1 ends the first chunk at the limit, then the next chunk fails */
      assert.deepEqual(dmesgSince(s.host, mark), kernel === '4.1' ? [warn, warn] : [warn]);
      assert.deepEqual(mappings(s), []);
      assert.equal(s.p.lockedVm, 0);
    });

    it('CAP_IPC_LOCK lifts the limit but pages are still charged', () => {
      const s = setup({ kernel, spawn: { rlimitMemlock: 4n * PAGE, capabilities: [CAP_IPC_LOCK] } });
      const mem = anon(s.p, 64n * PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 64n * PAGE }), 0);
      assert.equal(s.p.lockedVm, 64);
    });

    it('IOVAs past the address width fail as each kernel fails them', () => {
      const s = setup({ kernel });
      const mem = anon(s.p, PAGE);
      const mark = dmesgMark(s.host);
      const iova = 1n << 39n;
      if (kernel === '4.1') {
        /* no IOVA ranges: pinned, then intel_iommu_map refuses */
        assert.equal(mapDma(s, { vaddr: mem, iova, size: PAGE }), -EFAULT);
        assert.deepEqual(dmesgSince(s.host, mark), [
          'intel_iommu_map: iommu width (39) is not sufficient for the mapped address (8000001000)',
        ]);
      } else {
        assert.equal(mapDma(s, { vaddr: mem, iova, size: PAGE }), -EINVAL);
        assert.deepEqual(dmesgSince(s.host, mark), []);
      }
      assert.deepEqual(mappings(s), []);
      assert.equal(s.p.lockedVm, 0);
      assert.equal(mapDma(s, { vaddr: mem, iova: iova - PAGE, size: PAGE }), 0);
    });

    it('maps 2 MiB superpages where it can, 4 KiB pages with disable_hugepages', () => {
      for (const disable of [false, true]) {
        const s = setup({ kernel, before: (h) => (type1Params(h.kernel).disable_hugepages = disable) });
        const mem = anon(s.p, 4n * MiB);
        /* physical memory comes 2 MiB aligned: IOVA 2 MiB gets one superpage, IOVA 16 MiB + 4 KiB none */
        assert.equal(mapDma(s, { vaddr: mem, iova: 2n * MiB, size: 2n * MiB }), 0);
        assert.equal(mapDma(s, { vaddr: mem + 2n * MiB, iova: 16n * MiB + PAGE, size: 4n * PAGE }), 0);
        assert.deepEqual(
          debug(s).domains[0]?.pageTableEntries,
          disable ? { 4096: 516 } : { 4096: 4, 2097152: 1 },
        );
        assert.equal(s.p.lockedVm, 516);
        assert.deepEqual(unmapDma(s, 2n * MiB, 2n * MiB), { ret: 0, size: 2n * MiB });
        assert.equal(s.p.lockedVm, 4);
      }
    });

    it('the MSI window is a reserved region in 6.12 only', () => {
      const s = setup({ kernel });
      const mem = anon(s.p, PAGE);
      const r = mapDma(s, { vaddr: mem, iova: 0xfee00000n, size: PAGE });
      assert.equal(r, kernel === '4.1' ? 0 : -EINVAL);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0xfed00000n, size: PAGE }), 0);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0xfef00000n, size: PAGE }), 0);
    });
  });
}
