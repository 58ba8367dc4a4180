import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer, VfioContainer, VfioGroup } from '../../src/lib/index.ts';
import {
  EBUSY,
  EEXIST,
  EINVAL,
  ENOMEM,
  EPERM,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../../src/uapi/index.ts';
import { assertBaseline, assertClosed, machine, throwsVfio } from './fixture.ts';

/* DMA mappings through the library against the real type1 and sPAPR backends. */
const EDU = { bdf: '0000:00:03.0', group: 3, model: 'edu' };

function container(m: ReturnType<typeof machine>, type: number): { c: VfioContainer; g: VfioGroup } {
  const c = VfioContainer.open(m.p);
  const g = VfioGroup.open(m.p, EDU.group);
  g.setContainer(c);
  c.setIommu(type);
  return { c, g };
}

test('type1 v1 (4.1): DmaBuffer pins and accounts its pages, close gives them back', () => {
  const m = machine([EDU]);
  const { c, g } = container(m, VFIO_TYPE1_IOMMU);
  const info = c.iommuInfo();
  assert.deepEqual(info, { flags: 0, iovaPgsizes: 0xffff_ffff_ffff_f000n, minPageSize: 0x1000n, raw: [] });
  const a = DmaBuffer.allocate(c, 0x10000);
  assert.equal(a.iova, 0n);
  assert.equal(m.p.lockedVm, 16);
  throwsVfio(() => c.mapDma({ iova: 0n, size: 0x1000n, vaddr: a.vaddr }), {
    errno: EEXIST,
    code: 'EEXIST',
    request: 'VFIO_IOMMU_MAP_DMA',
    message: `VFIO_IOMMU_MAP_DMA(iova 0x0, size 0x1000, vaddr 0x${a.vaddr.toString(16)}, READ|WRITE) on fd ${c.fd} failed: EEXIST (File exists): MAP_DMA: the range overlaps an existing mapping`,
  });
  /* v1: a request starting inside a mapping unmaps nothing; one past every mapping neither */
  assert.equal(c.unmapDma(0x1000n, 0x1000n), 0n);
  assert.equal(c.unmapDma(0x10_0000n, 0x1000n), 0n);
  a.close();
  assert.equal(m.p.lockedVm, 0);
  g.close();
  c.close();
  assertClosed(m);
  assertBaseline(m);
});

test('type1: RLIMIT_MEMLOCK refuses the map; the IOVA and the memory are given back', () => {
  const m = machine([EDU], {}, 1n << 20n);
  const { c, g } = container(m, VFIO_TYPE1_IOMMU);
  const avail = c.iovas().available;
  throwsVfio(() => DmaBuffer.allocate(c, 2 << 20), {
    errno: ENOMEM,
    code: 'ENOMEM',
    request: 'VFIO_IOMMU_MAP_DMA',
    message:
      /^VFIO_IOMMU_MAP_DMA\(iova 0x0, size 0x200000, vaddr 0x[0-9a-f]+, READ\|WRITE\) on fd 0 failed: ENOMEM \(Cannot allocate memory\)/,
  });
  assert.equal(c.iovas().available, avail);
  assert.equal(m.p.lockedVm, 0);
  g.close();
  c.close();
  assertClosed(m);
});

test('type1 v2 (6.12): IOVA ranges honoured, v2 unmap rules, UNMAP_ALL, dirty bitmap of pinned pages', () => {
  const m = machine([EDU], { kernel: '6.12' });
  const { c, g } = container(m, VFIO_TYPE1v2_IOMMU);
  const info = c.iommuInfo();
  assert.equal(info.flags, 3);
  assert.equal(info.iovaPgsizes, 0x4020_1000n);
  assert.deepEqual(info.iovaRanges, [
    { start: 0n, end: 0xfedf_ffffn },
    { start: 0xfef0_0000n, end: (1n << 39n) - 1n },
  ]);
  assert.equal(info.dmaAvail, 65535);
  const a = DmaBuffer.allocate(c, 0x10000);
  assert.equal(c.iommuInfo().dmaAvail, 65534);
  throwsVfio(() => c.mapDma({ iova: 0xfee0_0000n, size: 0x1000n, vaddr: a.vaddr }), {
    errno: EINVAL,
    code: 'EINVAL',
    message: /: MAP_DMA: the range is not inside a valid IOVA range$/,
  });
  assert.throws(
    () => DmaBuffer.allocate(c, 0x1000, { iova: 0xfee0_0000n }),
    /IOVA 0xfee00000\+0x1000 is not free/,
  );
  throwsVfio(() => c.unmapDma(0x1000n, 0x1000n), {
    errno: EINVAL,
    code: 'EINVAL',
    message: `VFIO_IOMMU_UNMAP_DMA(iova 0x1000, size 0x1000) on fd ${c.fd} failed: EINVAL (Invalid argument): UNMAP_DMA (v2): the range starts inside a mapping`,
  });
  c.startDirtyTracking();
  assert.deepEqual([...c.dirtyBitmap(0n, 0x10000n, 0x1000n)], [0xff, 0xff, 0, 0, 0, 0, 0, 0]);
  c.stopDirtyTracking();
  const b = DmaBuffer.allocate(c, 0x2000);
  assert.equal(b.iova, 0x10000n);
  assert.equal(c.unmapAll(), 0x12000n);
  assert.equal(m.p.lockedVm, 0);
  a.close(); /* its unmap finds nothing left: 0 bytes, no error */
  b.close();
  g.close();
  c.close();
  assertClosed(m);
  assertBaseline(m);
});

for (const kernel of ['4.1', '6.12'] as const) {
  test(`sPAPR (${kernel}): the DMA window, ENABLE charges it, DmaBuffers inside it`, () => {
    const m = machine([EDU], { arch: 'ppc64', kernel }, 2n << 30n);
    const { c, g } = container(m, VFIO_SPAPR_TCE_IOMMU);
    assert.deepEqual(c.spaprInfo(), { flags: 0, dma32WindowStart: 0, dma32WindowSize: 0x4000_0000 });
    assert.deepEqual(c.iovas().freeRanges(), [{ start: 0n, end: 0x3fff_ffffn }]);
    if (kernel === '6.12')
      throwsVfio(() => DmaBuffer.allocate(c, 0x10000), {
        errno: EPERM,
        code: 'EPERM',
        message: /: the container is not enabled \(VFIO_IOMMU_ENABLE first\)$/,
      });
    c.enable();
    assert.ok(m.p.lockedVm >= 16384, 'the whole 1 GiB window is charged in 64 KiB pages');
    throwsVfio(() => c.enable(), {
      errno: EBUSY,
      code: 'EBUSY',
      message: `VFIO_IOMMU_ENABLE() on fd ${c.fd} failed: EBUSY (Device or resource busy): the container is enabled already`,
    });
    const a = DmaBuffer.allocate(c, 0x10000);
    assert.deepEqual([a.iova, a.size], [0n, 0x10000n]);
    /* sPAPR writes nothing back: the requested size comes back */
    assert.equal(c.unmapDma(a.iova, a.size), 0x10000n);
    c.mapDma({ iova: a.iova, size: a.size, vaddr: a.vaddr });
    throwsVfio(() => c.mapDma({ iova: 0x4000_0000n, size: 0x10000n, vaddr: a.vaddr }), {
      errno: kernel === '4.1' ? EINVAL : 6,
      code: kernel === '4.1' ? 'EINVAL' : 'ENXIO',
      request: 'VFIO_IOMMU_MAP_DMA',
    });
    a.close();
    c.disable();
    g.close();
    c.close();
    assert.equal(m.p.lockedVm, 0);
    assertClosed(m);
    assertBaseline(m);
  });
}

test('sPAPR v2 (6.12): preregistered memory, a dynamic window, DDW in GET_INFO', () => {
  const m = machine([EDU], { arch: 'ppc64', kernel: '6.12' });
  const { c, g } = container(m, 7 /* VFIO_SPAPR_TCE_v2_IOMMU */);
  const info = c.spaprInfo();
  assert.equal(info.flags, 1);
  assert.deepEqual(info.ddw, { pgsizes: 0x101_1000n, maxDynamicWindowsSupported: 2, levels: 5 });
  const mem = m.p.mmap(0n, 0x10_0000, 3, 0x22, -1, 0n);
  c.registerMemory(mem, 0x10_0000n);
  const start = c.createWindow(16, 1n << 30n, 1);
  assert.equal(start, 0x0800_0000_0000_0000n);
  c.mapDma({ iova: start, size: 0x10_0000n, vaddr: mem });
  assert.equal(c.unmapDma(start, 0x10_0000n), 0x10_0000n);
  c.removeWindow(start);
  c.unregisterMemory(mem, 0x10_0000n);
  g.close();
  c.close();
  assert.equal(m.p.munmap(mem, 0x10_0000), 0);
  assert.equal(m.p.lockedVm, 0);
  assertClosed(m);
});
