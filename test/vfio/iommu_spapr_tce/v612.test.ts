import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  eehPeOfDevice,
  IommuTableGroup,
  mmIommuRegions,
  TCE_PCI_READ,
  TCE_PCI_WRITE,
} from '../../../src/iommu/index.ts';
import {
  EBUSY,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  ENOSPC,
  ENOTTY,
  ENXIO,
  EPERM,
  PROT_READ,
  VFIO_CHECK_EXTENSION,
  VFIO_EEH,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_SPAPR_INFO_DDW,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
  VFIO_IOMMU_SPAPR_TCE_CREATE,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU,
} from '../../../src/uapi/index.ts';
import { tceIommuDriverOps } from '../../../src/vfio/iommu_spapr_tce/index.ts';
import {
  addGroup,
  dirty,
  dmaRead,
  getInfo,
  group,
  logMark,
  mapDma,
  mm,
  pe,
  physOf,
  pins,
  ready,
  registerMemory,
  session,
  setIommu,
  spaprHost,
  table,
  tceCreate,
  tceRemove,
  unmapDma,
  unregisterMemory,
  unsetGroup,
  userMem,
} from './helpers.ts';

/*
 * The 6.12 profile: table groups, the v1 container that needs ENABLE, the
 * v2 container (several groups, preregistered memory, dynamic DMA
 * windows), and the 6.x quirks the kernel has.
 */
const RW = TCE_PCI_READ | TCE_PCI_WRITE;
const V2 = VFIO_SPAPR_TCE_v2_IOMMU;
const TWO = [
  { bdf: '0001:00:01.0', group: 1 },
  { bdf: '0001:00:02.0', group: 2 },
];

test('6.12 answers both sPAPR types and EEH; the iommudata is a table group', () => {
  const host = spaprHost({ kernel: '6.12' });
  const s = session(host);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU), 1);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, V2), 1);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_EEH), 1);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, 3), 0);
  assert.ok(group(host, 1).iommu_data instanceof IommuTableGroup);
  const ops = host.inKernel(() => tceIommuDriverOps());
  assert.ok(ops !== undefined);
  const log = logMark(host);
  assert.equal(
    host.inKernel(() => ops.open(1n)),
    -EINVAL,
  );
  assert.ok(log().includes('tce_vfio: Wrong IOMMU type'));
});

test('v1: MAP and UNMAP need ENABLE (-EPERM); ENABLE charges tce32_size >> PAGE_SHIFT', () => {
  const { host, s } = ready({ kernel: '6.12' });
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), -EPERM);
  assert.equal(unmapDma(s, { iova: 0n, size: 0x1000n }), -EPERM);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(s.p.lockedVm, 16384);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), -EBUSY);
  /* the first MAP creates the default window: a table of its own, charged for its memory */
  const hostTable = pe(host, 1).table_group.tables[0];
  assert.equal(hostTable, undefined, "taking the PE dropped the host's table");
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), 0);
  const t = table(host, 1);
  assert.equal(t.it_map, undefined, "VFIO's tables have no DMA-API bitmap");
  assert.equal(t.it_page_shift, 12);
  assert.equal(t.it_size, 262144);
  /* 2 MiB of TCEs and 2 MiB of userspace copy: 64 pages of 64 KiB */
  assert.equal(s.p.lockedVm, 16384 + 64);
  assert.equal(t.tceAt(0), BigInt(physOf(s, buf)) | BigInt(RW));
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_DISABLE), 0);
  assert.equal(s.p.lockedVm, 64);
  assert.equal(unsetGroup(s, 1), 0);
  assert.equal(s.p.lockedVm, 0, 'the table went with the container');
  assert.ok(pe(host, 1).table_group.tables[0] !== undefined, 'the host got a default window back');
});

test('v1: MAP onto a valid TCE replaces it and releases the old page (dirty)', () => {
  const { host, s } = ready({ kernel: '6.12' });
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const a = userMem(s, 0x10000);
  const b = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: a, iova: 0x1000n, size: 0x1000n }), 0);
  assert.equal(mapDma(s, { vaddr: b, iova: 0x1000n, size: 0x1000n, flags: 1 }), 0);
  const t = table(host, 1);
  assert.equal(t.tceAt(1), BigInt(physOf(s, b)) | BigInt(TCE_PCI_READ));
  assert.equal(pins(host, physOf(s, a)), 0);
  assert.equal(dirty(host, physOf(s, a)), true);
  assert.equal(pins(host, physOf(s, b)), 1);
});

test('v1: pages are always pinned for write (the direction comes from the bare vaddr)', () => {
  const { s } = ready({ kernel: '6.12' });
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const ro = userMem(s, 0x10000, PROT_READ);
  assert.equal(mapDma(s, { vaddr: ro, iova: 0n, size: 0x1000n, flags: 1 }), -EFAULT);
});

test('6.x check macros: a misaligned iova makes MAP and UNMAP return 1', () => {
  const { host, s } = ready({ kernel: '6.12' });
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x800n, size: 0x1000n }), 1);
  assert.equal(unmapDma(s, { iova: 0x800n, size: 0x1000n }), 1);
  assert.equal(table(host, 1).validEntries(), 0);
});

test('v1: MAP/UNMAP checks: no window at the iova is -ENXIO; UNMAP checks only its first page', () => {
  const { host, s } = ready({ kernel: '6.12', dma32WindowSize: 0x10_0000n });
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x10_0000n, size: 0x1000n }), -ENXIO);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n, flags: 0 }), -EINVAL);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n, flags: 8 }), -EINVAL);
  assert.equal(mapDma(s, { vaddr: buf + 0x100n, iova: 0n, size: 0x1000n }), -EINVAL);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0xff000n, size: 0x1000n }), 0);
  assert.equal(unmapDma(s, { iova: 0x10_0000n, size: 0x1000n }), -ENXIO);
  assert.equal(unmapDma(s, { iova: 0xff000n, size: 0x10000n }), 0, 'past the window end: not checked');
  assert.equal(table(host, 1).validEntries(), 0);
  assert.equal(unmapDma(s, { iova: 0n, size: 0x1000n, flags: 1 }), -EINVAL);
});

test('GET_INFO: tce32 window; v1 gets the ddw bytes zeroed, v2 the DDW flag and capabilities', () => {
  const v1 = ready({ kernel: '6.12' });
  let r = getInfo(v1.s, 32);
  assert.equal(r.ret, 0);
  assert.equal(r.info.flags, 0);
  assert.equal(r.info.dma32_window_size, 1 << 30);
  assert.equal(r.info.ddw_pgsizes, 0n);
  assert.ok(r.raw.subarray(16, 32).every((b) => b === 0));
  assert.ok(r.raw.subarray(32).every((b) => b === 0xa5));
  const v2 = ready({ kernel: '6.12', type: V2 });
  r = getInfo(v2.s, 32);
  assert.equal(r.info.flags, VFIO_IOMMU_SPAPR_INFO_DDW);
  assert.equal(r.info.ddw_pgsizes, 0x1011000n, '4K | 64K | 16M');
  assert.equal(r.info.ddw_max_dynamic_windows_supported, 2);
  assert.equal(r.info.ddw_levels, 5);
  r = getInfo(v2.s, 16);
  assert.equal(r.info.flags, VFIO_IOMMU_SPAPR_INFO_DDW);
  assert.ok(
    r.raw.subarray(16).every((b) => b === 0xa5),
    'argsz 16: the ddw part is not written',
  );
  assert.equal(getInfo(v2.s, 15).ret, -EINVAL);
});

test('the container binds to the first mm that uses it: others get -EPERM', () => {
  const { host, s } = ready({ kernel: '6.12' });
  const other = host.spawn();
  const fd = s.p.passFd(s.container, other);
  const arg = other.mmap(0n, other.pageSize, 3, 0x22, -1, 0n);
  assert.equal(
    other.ioctl(fd, 0x3b70, arg),
    -EINVAL,
    'not bound yet: the ioctl runs (and reads a zero argsz)',
  );
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(other.ioctl(fd, 0x3b70, arg), -EPERM);
  assert.equal(
    other.ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU),
    1,
    'CHECK_EXTENSION is always answered',
  );
});

test("v1 and v2 refuse each other's ioctls with -ENOTTY", () => {
  const v1 = ready({ kernel: '6.12' });
  assert.equal(registerMemory(v1.s, 0n, 0n), -ENOTTY);
  assert.equal(tceCreate(v1.s, { page_shift: 16, window_size: 1n << 32n, levels: 1 }).ret, -ENOTTY);
  assert.equal(tceRemove(v1.s, 0n), -ENOTTY);
  const v2 = ready({ kernel: '6.12', type: V2 });
  assert.equal(v2.s.p.ioctl(v2.s.container, VFIO_IOMMU_ENABLE), -ENOTTY);
  assert.equal(v2.s.p.ioctl(v2.s.container, VFIO_IOMMU_DISABLE), -ENOTTY);
});

test('v2: several groups share the windows; MAP needs preregistered memory and pins nothing more', () => {
  const { host, s } = ready({ kernel: '6.12', type: V2, devices: TWO });
  const buf = userMem(s, 0x40000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), -EPERM, 'nothing registered: not enabled');
  assert.equal(registerMemory(s, buf, 0x20000n), 0);
  assert.equal(s.p.lockedVm, 2, 'one page of locked_vm per registered host page');
  assert.equal(pins(host, physOf(s, buf)), 1);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x10000n, size: 0x20000n }), 0);
  assert.equal(pins(host, physOf(s, buf)), 1, 'no pin per TCE');
  assert.equal(
    mapDma(s, { vaddr: buf + 0x20000n, iova: 0x40000n, size: 0x1000n }),
    -EINVAL,
    'not registered',
  );
  assert.equal(table(host, 1), table(host, 2), 'one table, programmed into both PEs');
  s.p.mem.write(buf + 0x1_0010n, new TextEncoder().encode('shared'));
  assert.deepEqual(dmaRead(host, '0001:00:01.0', 0x2_0010n, 6), new TextEncoder().encode('shared'));
  assert.deepEqual(dmaRead(host, '0001:00:02.0', 0x2_0010n, 6), new TextEncoder().encode('shared'));
  assert.equal(unmapDma(s, { iova: 0x10000n, size: 0x20000n }), 0);
  assert.equal(unregisterMemory(s, buf, 0x20000n), 0);
  assert.equal(s.p.lockedVm, 64, "only the default window's table is left charged");
  assert.equal(pins(host, physOf(s, buf)), 0);
  assert.deepEqual(mmIommuRegions(mm(s)), []);
});

test('REGISTER_MEMORY checks and errors', () => {
  const { host, s } = ready({ kernel: '6.12', type: V2 });
  const buf = userMem(s, 0x40000);
  assert.equal(registerMemory(s, buf + 0x1000n, 0x10000n), -EINVAL, 'not page aligned');
  assert.equal(registerMemory(s, buf, 0x1000n), -EINVAL);
  assert.equal(registerMemory(s, 0xffff_ffff_ffff_0000n, 0x20000n), -EINVAL, 'wraps');
  assert.equal(registerMemory(s, buf, 0x10000n, { flags: 1 }), -EINVAL);
  assert.equal(registerMemory(s, buf, 0x10000n, { argsz: 23 }), -EINVAL);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, 0x10n), -EFAULT);
  assert.equal(registerMemory(s, buf, 0x20000n), 0);
  assert.equal(registerMemory(s, buf, 0x20000n), -EBUSY, 'the same region again');
  assert.equal(registerMemory(s, buf + 0x10000n, 0x20000n), -EINVAL, 'overlapping');
  assert.equal(s.p.lockedVm, 2);
  assert.equal(pins(host, physOf(s, buf + 0x10000n)), 1);
  assert.equal(pins(host, physOf(s, buf + 0x20000n)), 0, 'the refused registration unpinned');
  assert.equal(unregisterMemory(s, buf, 0x10000n), -ENOENT, 'only the exact region');
  assert.equal(unregisterMemory(s, buf, 0x20000n, { flags: 2 }), -EINVAL);
  assert.equal(unregisterMemory(s, buf + 1n, 0x20000n), -EINVAL);
});

test('REGISTER_MEMORY: over RLIMIT_MEMLOCK -ENOMEM; a hole returns how many pages were pinned', () => {
  const host = spaprHost({ kernel: '6.12' });
  const s = session(host, { memlock: 0x20000n });
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s, V2), 0);
  const buf = userMem(s, 0x40000);
  assert.equal(registerMemory(s, buf, 0x30000n), -ENOMEM);
  assert.equal(s.p.lockedVm, 0);
  assert.equal(s.p.munmap(buf + 0x10000n, 0x10000), 0);
  assert.equal(registerMemory(s, buf, 0x20000n), 1, 'pin_user_pages pinned one page before the hole');
  assert.equal(s.p.lockedVm, 0);
  assert.equal(pins(host, physOf(s, buf)), 0);
  assert.equal(registerMemory(s, buf + 0x10000n, 0x10000n), -EFAULT);
});

test('v2: UNREGISTER while TCEs point into the region returns 0 but the region stays pinned (as in 6.x)', () => {
  const { host, s } = ready({ kernel: '6.12', type: V2 });
  const buf = userMem(s, 0x10000);
  assert.equal(registerMemory(s, buf, 0x10000n), 0);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), 0);
  assert.equal(unregisterMemory(s, buf, 0x10000n), 0);
  assert.equal(mmIommuRegions(mm(s)).length, 1);
  assert.equal(pins(host, physOf(s, buf)), 1);
  assert.equal(unregisterMemory(s, buf, 0x10000n), -ENOENT, "no longer this container's");
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x1000n, size: 0x1000n }), 0, 'still enabled, still registered');
});

test('TCE_CREATE: a 64-bit window at 1 << 59, programmed into every group; TCE_REMOVE takes it down', () => {
  const { host, s } = ready({ kernel: '6.12', type: V2, devices: TWO });
  const buf = userMem(s, 0x20000);
  assert.equal(registerMemory(s, buf, 0x20000n), 0);
  const before = s.p.lockedVm;
  const c = tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 1 });
  assert.equal(c.ret, 0);
  assert.equal(c.start, 1n << 59n);
  const w = table(host, 1, 1);
  assert.equal(table(host, 2, 1), w);
  assert.equal(w.it_page_shift, 16);
  assert.equal(w.it_size, 65536);
  /* the default window came first (64 pages), then 512 KiB of TCEs twice: 16 pages */
  assert.equal(s.p.lockedVm, before + 64 + 16);
  const iova = (1n << 59n) + 0x30000n;
  assert.equal(mapDma(s, { vaddr: buf, iova, size: 0x20000n }), 0);
  assert.equal(w.tceAt(w.it_offset + 3), BigInt(physOf(s, buf)) | BigInt(RW));
  s.p.mem.write(buf + 0x1_fff0n, new TextEncoder().encode('high'));
  assert.deepEqual(dmaRead(host, '0001:00:02.0', iova + 0x1_fff0n, 4), new TextEncoder().encode('high'));
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 1 }).ret, -ENOSPC);
  assert.equal(tceRemove(s, 1n << 60n), -EINVAL);
  assert.equal(tceRemove(s, iova), 0);
  assert.equal(pe(host, 1).table_group.tables[1], undefined);
  assert.equal(s.p.lockedVm, before + 64);
  assert.equal(dmaRead(host, '0001:00:01.0', iova, 4), undefined);
});

test('TCE_CREATE argument checks', () => {
  const { s } = ready({ kernel: '6.12', type: V2 });
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 1, argsz: 39 }).ret, -EINVAL);
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 1, flags: 1 }).ret, -EINVAL);
  assert.equal(tceCreate(s, { page_shift: 13, window_size: 1n << 32n, levels: 1 }).ret, -EINVAL, 'page size');
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 3n << 30n, levels: 1 }).ret, -EINVAL, 'not 2^n');
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 0 }).ret, -EINVAL);
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 6 }).ret, -EINVAL);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_SPAPR_TCE_CREATE, 0x10n), -EFAULT);
  assert.equal(tceRemove(s, 0n, { argsz: 15 }), -EINVAL);
  assert.equal(tceRemove(s, 0n, { flags: 1 }), -EINVAL);
});

test('TCE_CREATE: a table the platform then refuses leaves its locked_vm charge behind (as in 6.x)', () => {
  const { s } = ready({ kernel: '6.12', type: V2 });
  /* the default window first, so only the refused table is measured */
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 1 }).ret, 0);
  const before = s.p.lockedVm;
  /* 4 levels of at least 64 KiB each exceed the PHB's 55 bits: pnv_pci_ioda2_table_alloc_pages says no */
  assert.equal(tceCreate(s, { page_shift: 24, window_size: 1n << 40n, levels: 4 }).ret, -ENOSPC);
  assert.equal(tceRemove(s, 1n << 59n), 0);
  assert.equal(tceCreate(s, { page_shift: 24, window_size: 1n << 40n, levels: 4 }).ret, -EINVAL);
  /* pnv_pci_ioda2_get_table_size: 512 KiB + 3 x 64 KiB of levels, twice: 22 pages stay charged */
  assert.equal(s.p.lockedVm, before - 16 + 22);
});

test('TCE_REMOVE of the pending default window cancels it', () => {
  const { s } = ready({ kernel: '6.12', type: V2 });
  const buf = userMem(s, 0x10000);
  assert.equal(registerMemory(s, buf, 0x10000n), 0);
  assert.equal(tceRemove(s, 0n), 0);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), -ENXIO, 'no window at all');
  const c = tceCreate(s, { page_shift: 12, window_size: 1n << 30n, levels: 1 });
  assert.equal(c.ret, 0);
  assert.equal(c.start, 0n, 'window #0 is free: bus offset tce32_start');
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), 0);
});

test('v2: detaching one group clears the shared tables; the group goes back to the host', () => {
  const { host, s } = ready({ kernel: '6.12', type: V2, devices: TWO });
  const buf = userMem(s, 0x10000);
  assert.equal(registerMemory(s, buf, 0x10000n), 0);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), 0);
  const shared = table(host, 1);
  assert.equal(unsetGroup(s, 2), 0);
  assert.equal(shared.validEntries(), 0, 'tce_iommu_release_ownership cleared every table');
  assert.ok(table(host, 2).it_map !== undefined, 'group 2 has a host DMA table again');
  assert.equal(dmaRead(host, '0001:00:01.0', 0n, 4), undefined);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), 0, 'group 1 can map again');
});

test('v2: a process that exits with registered memory and windows leaves nothing behind', () => {
  const host = spaprHost({ kernel: '6.12', devices: TWO });
  const objects = host.liveObjects();
  const phys = host.kernel.phys.liveObjects;
  const s = session(host);
  assert.equal(addGroup(s, 1), 0);
  assert.equal(addGroup(s, 2), 0);
  assert.equal(setIommu(s, V2), 0);
  const buf = userMem(s, 0x40000);
  assert.equal(registerMemory(s, buf, 0x40000n), 0);
  assert.equal(tceCreate(s, { page_shift: 16, window_size: 1n << 32n, levels: 2 }).ret, 0);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x40000n }), 0);
  assert.equal(mapDma(s, { vaddr: buf, iova: 1n << 59n, size: 0x40000n }), 0);
  s.p.exit();
  assert.deepEqual(host.liveObjects(), objects);
  assert.equal(host.kernel.phys.liveObjects, phys);
  for (const id of [1, 2]) {
    assert.ok(table(host, id).it_map !== undefined);
    assert.equal(pe(host, id).table_group.tables[1], undefined);
  }
});

test('v2: attaching a group without dynamic windows is -EINVAL (4.1-style table groups)', () => {
  const host = spaprHost({ kernel: '6.12' });
  const tg = group(host, 1).iommu_data as IommuTableGroup;
  /* a PE whose platform cannot create windows (pseries-style) */
  const narrow = new IommuTableGroup(tg.ops, tg.tce32_start, tg.tce32_size, 0x1000, 0, 1);
  narrow.tables[0] = tg.tables[0];
  narrow.group = tg.group;
  group(host, 1).iommu_data = narrow;
  const s = session(host);
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s, V2), -EINVAL);
  assert.equal(setIommu(s, VFIO_SPAPR_TCE_IOMMU), 0, 'v1 does not need them');
});

test('6.12: a group with a DMA-API driver bound cannot be claimed (-EPERM); its table is left alone', () => {
  const host = spaprHost({
    kernel: '6.12',
    devices: [
      { bdf: '0001:00:01.0', group: 1 },
      { bdf: '0001:00:02.0', group: 1, driver: 'e1000e' },
    ],
  });
  const t = table(host, 1);
  const used = t.validEntries();
  assert.equal(used, 16, "the driver's coherent ring");
  const s = session(host);
  assert.equal(addGroup(s, 1), -EPERM);
  assert.equal(table(host, 1), t);
  assert.equal(t.validEntries(), used);
});

test('eehPeOfDevice: the PE vfio-pci opens and releases for EEH', () => {
  const host = spaprHost();
  const dev = host.device('0001:00:01.0');
  assert.ok(dev !== undefined);
  assert.equal(
    host.inKernel(() => eehPeOfDevice(dev)),
    pe(host, 1).eeh,
  );
});
