import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Host } from '../../../src/index.ts';
import {
  accountLockedVm,
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  type DmaRun,
  mmIommuGet,
  mmIommuLookup,
  mmIommuMappedDec,
  mmIommuMappedInc,
  mmIommuNew,
  mmIommuPut,
  mmIommuRegions,
  mmIommuUaToHpa,
} from '../../../src/iommu/index.ts';
import { runAs } from '../../../src/kernel/index.ts';
import {
  CAP_IPC_LOCK,
  EBUSY,
  EFAULT,
  ENOENT,
  ENOMEM,
  ENXIO,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
} from '../../../src/uapi/index.ts';

/*
 * The PowerNV platform around the tables: PEs and their DMA translation,
 * the host drivers' DMA, the fault report; and the preregistration
 * helpers of arch/powerpc/mm/book3s64/iommu_api.c.
 */
function ppc(kernel: '4.1' | '6.12' = '4.1', pageSize: 4096 | 65536 = 65536): Host {
  const h = new Host({ arch: 'ppc64', kernel, pageSize });
  h.addPciDevice({ bdf: '0001:00:01.0', model: 'generic', iommuGroup: 1 });
  return h;
}

function peOf(h: Host) {
  const g = h.iommu.groups.get(1);
  assert.ok(g !== undefined);
  const pe = h.ppc64?.pe(g);
  assert.ok(pe !== undefined);
  return pe;
}

test("the PE's translation: runs merge across contiguous TCEs, split where the pages are not contiguous", () => {
  const h = ppc();
  const pe = peOf(h);
  const t = pe.table_group.tables[0];
  assert.ok(t !== undefined);
  t.build(1, 2, 0x1_0000_0000, DMA_BIDIRECTIONAL);
  t.build(3, 1, 0x2_0000_0000, DMA_BIDIRECTIONAL);
  const runs: DmaRun[] = [];
  assert.equal(pe.domain.translate(0x1800n, 0x2000, false, runs), undefined);
  assert.deepEqual(runs, [
    { phys: 0x1_0000_0800, len: 0x1800 },
    { phys: 0x2_0000_0000, len: 0x800 },
  ]);
  assert.equal(h.iommu.groups.get(1)?.domain, pe.domain);
  assert.equal(pe.domain.type, 'spapr-tce');
});

test('faults: no window, invalid TCE, missing permission; each freezes the PE', () => {
  const h = ppc('4.1');
  const pe = peOf(h);
  const t = pe.table_group.tables[0];
  assert.ok(t !== undefined);
  t.build(1, 1, 0x1_0000_0000, DMA_TO_DEVICE);
  const f1 = pe.domain.translate(0x4000_0000n, 4, false, []);
  assert.equal(f1?.reason, 'no DMA window at this bus address');
  pe.eeh.hw.mmioFrozen = pe.eeh.hw.dmaFrozen = false;
  const f2 = pe.domain.translate(0x1ffcn, 8, false, []);
  assert.equal(f2?.iova, 0x2000n, 'the first byte that faults');
  assert.equal(f2?.reason, 'TCE #2 is not valid');
  pe.eeh.hw.mmioFrozen = pe.eeh.hw.dmaFrozen = false;
  const f3 = pe.domain.translate(0x1000n, 4, true, []);
  assert.equal(f3?.reason, 'TCE #1 does not permit write');
  assert.equal(pe.eeh.hw.dmaFrozen, true);
  const f4 = pe.domain.translate(0x1000n, 4, false, []);
  assert.match(f4?.reason ?? '', /PHB#1-PE#0 is frozen/);
});

test("a device DMA fault is reported in the platform's words", () => {
  const h = ppc();
  const dev = h.device('0001:00:01.0');
  assert.ok(dev !== undefined);
  assert.equal(h.iommu.dmaAccess(dev, 0x5000n, new Uint8Array(4), true), false);
  assert.ok(
    h.dmesg().includes('pnv-iommu: PHB#1-PE#0 0001:00:01.0: DMA write fault at 0x5000: TCE #5 is not valid'),
    h.dmesg().join('\n'),
  );
  assert.deepEqual(
    { device: h.iommu.faults[0]?.device, iova: h.iommu.faults[0]?.iova, write: h.iommu.faults[0]?.write },
    { device: '0001:00:01.0', iova: 0x5000n, write: true },
  );
});

test('host DMA-API drivers map a coherent ring while bound and free it on unbind', () => {
  const h = ppc();
  h.addPciDevice({ bdf: '0001:00:02.0', model: 'generic', iommuGroup: 1, driver: 'e1000e' });
  const t = peOf(h).table_group.tables[0];
  assert.ok(t !== undefined);
  assert.equal(t.validEntries(), 16);
  assert.equal(h.liveObjects().kernel_dma_pages, 1);
  h.unbind('0001:00:02.0');
  assert.equal(t.validEntries(), 0);
  assert.equal(h.liveObjects().kernel_dma_pages, undefined);
});

test('the window options: start and size must be 64 KiB aligned and end below 4 GiB', () => {
  assert.throws(() => new Host({ arch: 'ppc64', dma32WindowSize: 0x1000n }), /64 KiB/);
  assert.throws(
    () => new Host({ arch: 'ppc64', dma32WindowStart: 0xc000_0000n, dma32WindowSize: 0x8000_0000n }),
    /4 GiB/,
  );
  const h = new Host({ arch: 'ppc64', dma32WindowStart: 0x8000_0000n, dma32WindowSize: 0x4000_0000n });
  h.addPciDevice({ bdf: '0001:00:01.0', model: 'generic', iommuGroup: 1 });
  const t = peOf(h).table_group.tables[0];
  assert.equal(t?.it_offset, 0x80000);
  assert.equal(t?.it_size, 0x40000);
  assert.throws(
    () => h.addPciDevice({ bdf: '0001:00:02.0', model: 'generic', iommuGroup: 2, tcePageShift: 13 }),
    /12 or 16/,
  );
});

test('account_locked_vm: the limit in pages, CAP_IPC_LOCK, uncharging', () => {
  const h = ppc('6.12');
  const p = h.spawn({ rlimitMemlock: 0x30000n });
  const q = h.spawn({ rlimitMemlock: 0n, capabilities: [CAP_IPC_LOCK] });
  const mm = p.task.mm;
  assert.ok(mm !== null);
  runAs(h.kernel, p.task, () => {
    assert.equal(accountLockedVm(mm, 3, true), 0);
    assert.equal(accountLockedVm(mm, 1, true), -ENOMEM);
    assert.equal(accountLockedVm(mm, 0, true), 0);
    assert.equal(accountLockedVm(null, 100, true), 0);
    assert.equal(accountLockedVm(mm, 2, false), 0);
  });
  assert.equal(mm.locked_vm, 1);
  runAs(h.kernel, q.task, () => assert.equal(accountLockedVm(q.task.mm, 1000, true), 0));
  assert.equal(q.lockedVm, 1000);
});

test('mm_iommu: new / get / lookup / ua_to_hpa / mapped counting / put', () => {
  const h = ppc('6.12');
  const p = h.spawn({ rlimitMemlock: 1n << 30n });
  const mm = p.task.mm;
  assert.ok(mm !== null);
  const ua = Number(p.mmap(0n, 0x40000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n));
  runAs(h.kernel, p.task, () => {
    const mem = mmIommuNew(mm, ua, 4);
    assert.ok(typeof mem !== 'number');
    assert.equal(mm.locked_vm, 4);
    assert.equal(mem.pageshift, 16, 'no huge pages: PAGE_SHIFT');
    assert.equal(mmIommuLookup(mm, ua + 0x10000, 0x20000), mem);
    assert.equal(mmIommuLookup(mm, ua + 0x30000, 0x20000), undefined);
    const hpa = mmIommuUaToHpa(mem, ua + 0x10123, 12);
    assert.equal(hpa, (mem.hpas[1] ?? 0) + 0x123);
    assert.equal(mmIommuUaToHpa(mem, ua, 24), -EFAULT, 'a 16M IOMMU page does not fit a 64K page');
    assert.equal(mmIommuUaToHpa(mem, ua + 0x40000, 12), -EFAULT);
    assert.equal(mmIommuGet(mm, ua, 3), undefined, 'only the exact region');
    assert.equal(mmIommuGet(mm, ua, 4), mem);
    assert.equal(mem.used, 2);
    assert.equal(mmIommuMappedInc(mem), 0);
    assert.equal(mmIommuPut(mm, mem), 0);
    assert.equal(mmIommuPut(mm, mem), -EBUSY, 'a TCE still points into it');
    assert.equal(mem.used, 1);
    mmIommuMappedDec(mem);
    mmIommuMappedDec(mem);
    assert.equal(mem.mapped, 1, 'never below 1 while registered');
    assert.equal(mmIommuPut(mm, mem), 0);
    assert.equal(mmIommuMappedInc(mem), -ENXIO, 'released');
    assert.equal(mmIommuPut(mm, mem), -ENOENT);
  });
  assert.equal(mm.locked_vm, 0);
  assert.deepEqual(mmIommuRegions(mm), []);
});
