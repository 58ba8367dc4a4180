import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EFAULT,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_GET_DEVICE_FD,
} from '../../../src/index.ts';
import { putCString, userAlloc } from '../../helpers/user.ts';
import {
  anon,
  bdfOf,
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
} from './helpers.ts';

/*
 * Who pays and who cleans up: locked_vm follows current->mm (4.1) or the
 * mm that mapped (6.12); a process that exits with mappings leaves nothing
 * behind; device memory (VM_PFNMAP) maps without a charge; device DMA
 * goes through the domain and faults where it should.
 */
for (const kernel of PROFILES) {
  describe(`type1 lifetime and accounting (${kernel})`, () => {
    it('a process exiting with mappings leaves the host at its baseline', () => {
      let base: Record<string, number> = {};
      let physBase = 0;
      const s = setup({
        kernel,
        groups: [3, 4],
        before: (h) => {
          base = h.liveObjects();
          physBase = h.kernel.phys.liveObjects;
        },
      });
      const mem = anon(s.p, 2n * MiB);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: MiB }), 0);
      assert.equal(mapDma(s, { vaddr: mem + MiB, iova: 1n << 32n, size: MiB }), 0);
      assert.equal(s.p.lockedVm, 512);
      assert.equal(s.host.liveObjects().vfio_dma, 2);
      s.p.exit();
      assert.deepEqual(s.host.liveObjects(), base);
      assert.equal(s.host.kernel.phys.liveObjects, physBase);
    });

    it('unmapping from another process: 4.1 uncharges the caller, 6.12 the mapper', () => {
      const s = setup({ kernel });
      const mem = anon(s.p, 4n * PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 4n * PAGE }), 0);
      const q = s.host.spawn();
      const qs = { ...s, p: q, container: s.p.passFd(s.container, q), arg: userAlloc(q, 4096) };
      assert.deepEqual(unmapDma(qs, 0n, 4n * PAGE), { ret: 0, size: 4n * PAGE });
      if (kernel === '4.1') {
        /* current->mm pays: the mapper keeps its charge, the caller's goes below zero */
        assert.deepEqual([s.p.lockedVm, q.lockedVm], [4, -4]);
      } else {
        assert.deepEqual([s.p.lockedVm, q.lockedVm], [0, 0]);
      }
    });

    it('mappings outliving their process are released without charging anyone', () => {
      const s = setup({ kernel });
      const base = s.host.liveObjects();
      const mem = anon(s.p, 4n * PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 4n * PAGE }), 0);
      const q = s.host.spawn();
      const qs = { ...s, p: q, container: s.p.passFd(s.container, q), arg: userAlloc(q, 4096) };
      s.p.passFd(s.groups[0] ?? -1, q);
      s.p.exit();
      assert.deepEqual(mappings(qs), [[0n, 4n * PAGE]]);
      /* the pages stay pinned: the device can still reach them */
      assert.equal(s.host.device(bdfOf(3))?.dmaPort?.dmaWrite(0n, new Uint8Array([1])), true);
      q.exit();
      assert.equal(q.lockedVm, 0);
      const after = s.host.liveObjects();
      assert.deepEqual(
        Object.keys(after).filter(
          (k) => k.startsWith('vfio_dma') || k.startsWith('iommu') || k === 'vfio_iommu',
        ),
        [],
      );
      assert.equal(after.vfio_iommu_driver, base.vfio_iommu_driver);
    });

    it('device memory (VM_PFNMAP) maps without pinning or charging', () => {
      const s = setup({ kernel });
      const dev = s.p.ioctl(s.groups[0] ?? -1, VFIO_GROUP_GET_DEVICE_FD, putCString(s.p, s.arg, bdfOf(3)));
      assert.ok(dev >= 0);
      const bar = s.p.mmap(0n, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED, dev, 0n);
      assert.ok(bar > 0n, `mmap BAR0: ${bar}`);
      assert.equal(mapDma(s, { vaddr: bar, iova: 0x100000n, size: 0x4000n }), 0);
      assert.equal(s.p.lockedVm, 0);
      assert.equal(debug(s).mappings[0]?.lockedPages, 0);
      const ro = s.p.mmap(0n, 0x1000, PROT_READ, MAP_SHARED, dev, 0n);
      /* 6.12 checks the PTE is writable for a device-writable mapping; 4.1 does not */
      const r = mapDma(s, { vaddr: ro, iova: 0x200000n, size: PAGE });
      assert.equal(r, kernel === '4.1' ? 0 : -EFAULT);
      assert.equal(mapDma(s, { vaddr: ro, iova: 0x300000n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_READ }), 0);
      assert.deepEqual(unmapDma(s, 0x100000n, 0x4000n), { ret: 0, size: 0x4000n });
      assert.equal(s.p.lockedVm, 0);
    });
  });

  describe(`device DMA through a type1 domain (${kernel})`, () => {
    it('crosses mappings in one access and faults on permissions and holes', () => {
      const s = setup({ kernel });
      const a = anon(s.p, PAGE);
      const b = anon(s.p, PAGE);
      assert.equal(mapDma(s, { vaddr: a, iova: 0x10000n, size: PAGE }), 0);
      assert.equal(mapDma(s, { vaddr: b, iova: 0x11000n, size: PAGE }), 0);
      assert.equal(mapDma(s, { vaddr: b, iova: 0x20000n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_READ }), 0);
      assert.equal(mapDma(s, { vaddr: a, iova: 0x30000n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_WRITE }), 0);
      const port = s.host.device(bdfOf(3))?.dmaPort;
      assert.ok(port !== undefined);
      const data = new Uint8Array(32).map((_, i) => i + 1);
      assert.equal(port.dmaWrite(0x10ff0n, data), true);
      assert.deepEqual([...s.p.mem.read(a + 0xff0n, 16), ...s.p.mem.read(b, 16)], [...data]);
      const got = new Uint8Array(8);
      assert.equal(port.dmaRead(0x20000n, got), true);
      assert.deepEqual([...got], [17, 18, 19, 20, 21, 22, 23, 24]);
      const mark = dmesgMark(s.host);
      assert.equal(port.dmaWrite(0x20000n, data), false, 'read-only mapping');
      assert.equal(port.dmaRead(0x30000n, got), false, 'write-only mapping');
      assert.deepEqual([...got], new Array(8).fill(0), 'a faulting read delivers zeros');
      assert.equal(port.dmaRead(0x11ff8n, new Uint8Array(16)), false, 'runs into a hole');
      assert.equal(port.dmaRead(1n << 39n, got), false, 'beyond the address width');
      const logs = dmesgSince(s.host, mark);
      if (kernel === '4.1')
        assert.deepEqual(logs, [
          'dmar: DRHD: handling fault status reg 2',
          'dmar: DMAR:[DMA Write] Request device [00:03.0] fault addr 20000 ',
          'DMAR:[fault reason 05] PTE Write access is not set',
          'dmar: DRHD: handling fault status reg 2',
          'dmar: DMAR:[DMA Read] Request device [00:03.0] fault addr 30000 ',
          'DMAR:[fault reason 06] PTE Read access is not set',
          'dmar: DRHD: handling fault status reg 2',
          'dmar: DMAR:[DMA Read] Request device [00:03.0] fault addr 12000 ',
          'DMAR:[fault reason 06] PTE Read access is not set',
          'dmar: DRHD: handling fault status reg 2',
          'dmar: DMAR:[DMA Read] Request device [00:03.0] fault addr 8000000000 ',
          'DMAR:[fault reason 04] Access beyond MGAW',
        ]);
      else
        assert.deepEqual(logs, [
          'DMAR: DRHD: handling fault status reg 2',
          'DMAR: [DMA Write NO_PASID] Request device [00:03.0] fault addr 0x20000 [fault reason 0x05] PTE Write access is not set',
          'DMAR: DRHD: handling fault status reg 2',
          'DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr 0x30000 [fault reason 0x06] PTE Read access is not set',
          'DMAR: DRHD: handling fault status reg 2',
          'DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr 0x12000 [fault reason 0x06] PTE Read access is not set',
          'DMAR: DRHD: handling fault status reg 2',
          'DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr 0x8000000000 [fault reason 0x04] Access beyond MGAW',
        ]);
      assert.deepEqual(
        s.host.iommu.faults.map((f) => [f.iova, f.write]),
        [
          [0x20000n, true],
          [0x30000n, false],
          [0x12000n, false],
          [1n << 39n, false],
        ],
      );
    });
  });
}
