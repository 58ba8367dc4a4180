import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Host } from '../../../src/index.ts';
import { type IommuTable, pnvPeOfGroup } from '../../../src/iommu/index.ts';
import { runAs } from '../../../src/kernel/index.ts';
import {
  EBUSY,
  EINVAL,
  ENODEV,
  VFIO_CHECK_EXTENSION,
  VFIO_EEH,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU,
  VFIO_TYPE1_IOMMU,
} from '../../../src/uapi/index.ts';
import { vfioOf, vfioRegisterIommuDriver } from '../../../src/vfio/index.ts';
import { TceContainerV41, tceIommuDriverOps } from '../../../src/vfio/iommu_spapr_tce/index.ts';
import {
  addGroup,
  group,
  logMark,
  mapBits,
  mapDma,
  physOf,
  pins,
  ready,
  session,
  setIommu,
  spaprHost,
  table,
  unsetGroup,
  userMem,
} from './helpers.ts';

/*
 * The seed's driver functions, branch by branch (4.1): tce_iommu_init,
 * tce_iommu_open, tce_iommu_attach_group (and iommu_take_ownership under
 * it), tce_iommu_detach_group, tce_iommu_release.
 */

function ops(host: ReturnType<typeof spaprHost>) {
  const o = host.inKernel(() => tceIommuDriverOps());
  assert.ok(o !== undefined, 'the module registered its ops');
  return o;
}

test('tce_iommu_init: vfio_init loads the module, which registers "iommu-vfio-powerpc"', () => {
  const host = spaprHost();
  assert.equal(host.kernel.modules.find('vfio_iommu_spapr_tce')?.state, 'live');
  const drivers = vfioOf(host.kernel)?.iommu_drivers_list.map((d) => d.ops.name);
  assert.deepEqual(drivers, ['iommu-vfio-powerpc']);
  const s = session(host);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU), 1);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_EEH), 1);
  /* 4.1 has no v2 and no type1 on POWER */
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU), 0);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU), 0);
});

test('vfio_register_iommu_driver: registering the same ops twice is -EINVAL', () => {
  const host = spaprHost();
  const o = ops(host);
  assert.equal(
    host.inKernel(() => vfioRegisterIommuDriver(o)),
    -EINVAL,
  );
  assert.equal(vfioOf(host.kernel)?.iommu_drivers_list.length, 1);
});

test('tce_iommu_cleanup: rmmod unregisters; vfio cannot go while the backend is loaded', () => {
  const host = spaprHost({ devices: [] });
  assert.notEqual(host.rmmod('vfio'), 0);
  assert.equal(host.rmmod('vfio_iommu_spapr_tce'), 0);
  assert.deepEqual(vfioOf(host.kernel)?.iommu_drivers_list, []);
  const s = session(host);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU), 0);
});

test('an x86_64 host has no sPAPR backend', () => {
  const host = spaprHost({ devices: [] });
  assert.ok(host.ppc64 !== undefined);
  const x86 = new Host({ arch: 'x86_64' });
  assert.equal(x86.kernel.modules.find('vfio_iommu_spapr_tce'), undefined);
  assert.equal(x86.ppc64, undefined);
});

test('tce_iommu_open: any type but VFIO_SPAPR_TCE_IOMMU is -EINVAL with "tce_vfio: Wrong IOMMU type"', () => {
  const host = spaprHost({ devices: [] });
  const o = ops(host);
  const log = logMark(host);
  const before = host.liveObjects().tce_container ?? 0;
  assert.equal(
    host.inKernel(() => o.open(BigInt(VFIO_SPAPR_TCE_v2_IOMMU))),
    -EINVAL,
  );
  assert.ok(log().includes('tce_vfio: Wrong IOMMU type'));
  assert.equal(host.liveObjects().tce_container ?? 0, before);
  const c = host.inKernel(() => o.open(BigInt(VFIO_SPAPR_TCE_IOMMU)));
  assert.ok(c instanceof TceContainerV41);
  assert.equal(c.tbl, undefined);
  assert.equal(c.enabled, false);
  assert.equal(host.liveObjects().tce_container, before + 1);
  host.inKernel(() => o.release(c));
  assert.equal(host.liveObjects().tce_container ?? 0, before);
});

test('VFIO_SET_IOMMU(v2) on 4.1: no driver claims the type (-ENODEV)', () => {
  const host = spaprHost();
  const s = session(host);
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s, VFIO_SPAPR_TCE_v2_IOMMU), -ENODEV);
  assert.equal(setIommu(s, VFIO_SPAPR_TCE_IOMMU), 0);
});

test('attach_group: takes ownership (bit 0 released, it_map filled with 0xff, every TCE cleared)', () => {
  const host = spaprHost();
  const t = table(host, 1);
  assert.deepEqual(mapBits(t), [0], 'iommu_init_table reserved entry 0');
  const s = session(host);
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s), 0);
  const sz = (t.it_size + 7) >> 3;
  assert.ok((t.it_map as Uint8Array).subarray(0, sz).every((b) => b === 0xff));
  assert.equal(t.validEntries(), 0);
  assert.equal(group(host, 1).iommu_data, t, 'the 4.1 iommudata is the iommu_table');
  assert.equal(t.it_group, group(host, 1));
});

test('attach_group: a second group is -EBUSY, naming both group ids', () => {
  const host = spaprHost({
    devices: [
      { bdf: '0001:00:01.0', group: 1 },
      { bdf: '0001:00:02.0', group: 2 },
    ],
  });
  const s = session(host);
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s), 0);
  const t2 = table(host, 2);
  const log = logMark(host);
  assert.equal(addGroup(s, 2), -EBUSY);
  assert.ok(
    log().includes('tce_vfio: Only one group per IOMMU container is allowed, existing id=1, attaching id=2'),
    log().join('\n'),
  );
  assert.deepEqual(mapBits(t2), [0], 'group 2 stayed with the host');
});

test('attach_group: an enabled container without a table refuses with "attaching group #N to enabled container"', () => {
  const host = spaprHost();
  const o = ops(host);
  const c = host.inKernel(() => o.open(BigInt(VFIO_SPAPR_TCE_IOMMU))) as TceContainerV41;
  c.enabled = true;
  const log = logMark(host);
  assert.equal(
    host.inKernel(() => o.attach_group(c, group(host, 1))),
    -EBUSY,
  );
  assert.ok(log().includes('tce_vfio: attaching group #1 to enabled container'));
  assert.equal(c.tbl, undefined);
  c.enabled = false;
  host.inKernel(() => o.release(c));
});

test('attach_group: -EBUSY "iommu_tce: it_map is not empty" while a host driver holds DMA; bit 0 stays cleared', () => {
  const host = spaprHost({
    devices: [
      { bdf: '0001:00:01.0', group: 1 },
      { bdf: '0001:00:02.0', group: 1, driver: 'e1000e' },
    ],
  });
  const t = table(host, 1);
  /* the bound driver's 64 KiB coherent ring: 16 TCEs, a large allocation, so from the top quarter's pool */
  const ring = Array.from({ length: 16 }, (_, i) => 196608 + i);
  assert.deepEqual(mapBits(t), [0, ...ring]);
  assert.equal(t.validEntries(), 16);
  const s = session(host);
  assert.equal(addGroup(s, 1), 0, '4.1 does not check viability at SET_CONTAINER');
  const log = logMark(host);
  assert.equal(setIommu(s), -EBUSY);
  assert.ok(log().includes('iommu_tce: it_map is not empty'));
  assert.deepEqual(mapBits(t), ring, 'the seed cleared bit 0 and did not restore it');
  assert.equal(t.validEntries(), 16, 'the host mappings are untouched');
  /* the driver goes away with its mappings: now the group can be taken */
  host.unbind('0001:00:02.0');
  assert.deepEqual(mapBits(t), []);
  assert.equal(setIommu(s), 0);
});

test('detach_group: clears every TCE and puts its page, then gives the table back (bit 0 reserved again)', () => {
  const { host, s } = ready();
  const t = table(host, 1);
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x1000n, size: 0x3000n }), 0);
  const phys = physOf(s, buf);
  assert.equal(pins(host, phys), 3);
  assert.equal(unsetGroup(s, 1), 0);
  assert.equal(pins(host, phys), 0);
  assert.equal(t.validEntries(), 0);
  assert.deepEqual(mapBits(t), [0]);
});

test('detach_group from an enabled container warns and forces disable (uncharging the caller)', () => {
  const { host, s } = ready();
  assert.equal(s.p.ioctl(s.container, 0x3b73 /* VFIO_IOMMU_ENABLE */), 0);
  assert.equal(s.p.lockedVm, 16384);
  const log = logMark(host);
  assert.equal(unsetGroup(s, 1), 0);
  assert.ok(log().includes('tce_vfio: detaching group #1 from enabled container, forcing disable'));
  assert.equal(s.p.lockedVm, 0);
});

test("detach_group of a group that is not the container's warns and does nothing", () => {
  const host = spaprHost({
    devices: [
      { bdf: '0001:00:01.0', group: 1 },
      { bdf: '0001:00:02.0', group: 2 },
    ],
  });
  const o = ops(host);
  const s = session(host);
  const c = runAs(host.kernel, s.p.task, () => o.open(BigInt(VFIO_SPAPR_TCE_IOMMU))) as TceContainerV41;
  assert.equal(
    runAs(host.kernel, s.p.task, () => o.attach_group(c, group(host, 1))),
    0,
  );
  const log = logMark(host);
  runAs(host.kernel, s.p.task, () => o.detach_group(c, group(host, 2)));
  assert.ok(log().includes('tce_vfio: detaching group #2, expected group is #2'), log().join('\n'));
  assert.equal(c.tbl, table(host, 1));
  runAs(host.kernel, s.p.task, () => o.release(c));
  assert.deepEqual(mapBits(table(host, 1)), [0]);
});

test('tce_iommu_release: disables (uncharging current->mm), then detaches the group', () => {
  const host = spaprHost();
  const o = ops(host);
  const s = session(host);
  const run = <T>(fn: () => T): T => runAs(host.kernel, s.p.task, fn);
  const c = run(() => o.open(BigInt(VFIO_SPAPR_TCE_IOMMU))) as TceContainerV41;
  assert.equal(
    run(() => o.attach_group(c, group(host, 1))),
    0,
  );
  assert.equal(
    run(() => o.ioctl(c, 0x3b73, 0n)),
    0,
  );
  assert.equal(s.p.lockedVm, 16384);
  const buf = userMem(s, 0x10000);
  const phys = physOf(s, buf);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), -22, 'no container is set on the fd');
  const log = logMark(host);
  run(() => o.release(c));
  assert.equal(s.p.lockedVm, 0);
  assert.ok(!log().some((l) => l.includes('forcing disable')), 'disabled before the detach');
  assert.deepEqual(mapBits(table(host, 1)), [0]);
  assert.equal(pins(host, phys), 0);
  assert.equal(host.liveObjects().tce_container, undefined);
});

test('tce_iommu_release from kernel context (no mm): the window is not uncharged', () => {
  const host = spaprHost();
  const o = ops(host);
  const s = session(host);
  const c = runAs(host.kernel, s.p.task, () => o.open(BigInt(VFIO_SPAPR_TCE_IOMMU))) as TceContainerV41;
  runAs(host.kernel, s.p.task, () => o.attach_group(c, group(host, 1)));
  runAs(host.kernel, s.p.task, () => o.ioctl(c, 0x3b73, 0n));
  assert.equal(s.p.lockedVm, 16384);
  host.inKernel(() => o.release(c));
  assert.equal(s.p.lockedVm, 16384, 'current->mm was NULL: nothing uncharged');
  assert.equal(c.enabled, false);
  assert.equal(c.tbl, undefined);
});

test("the group's PE: one PHB per PCI domain, a PE (and table) per group", () => {
  const host = spaprHost({
    devices: [
      { bdf: '0001:00:01.0', group: 1 },
      { bdf: '0001:00:02.0', group: 1 },
      { bdf: '0002:00:01.0', group: 2 },
    ],
  });
  const pe2 = host.inKernel(() => pnvPeOfGroup(group(host, 2)));
  assert.ok(pe2 !== undefined);
  const p1 = host.ppc64?.pe(group(host, 1));
  assert.equal(p1?.phb.global_number, 1);
  assert.equal(p1?.devices.length, 2);
  assert.equal(pe2.phb.global_number, 2);
  const t1 = table(host, 1) as IommuTable;
  assert.equal(t1.it_offset, 0);
  assert.equal(t1.it_size, 262144);
  assert.equal(t1.it_page_shift, 12);
  assert.equal(t1.it_index, (1 << 16) | p1!.pe_number);
  assert.throws(
    () => host.addPciDevice({ bdf: '0003:00:01.0', model: 'generic', iommuGroup: 1 }),
    /is a PE of PHB#1/,
  );
});
