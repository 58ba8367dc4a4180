import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runAs } from '../../../src/kernel/index.ts';
import {
  CAP_IPC_LOCK,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOMEM,
  ENOTTY,
  ENXIO,
  ESRCH,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_SPAPR_TCE_IOMMU,
} from '../../../src/uapi/index.ts';
import { type TceContainerV41, tceIommuDriverOps } from '../../../src/vfio/iommu_spapr_tce/index.ts';
import { addGroup, getInfo, logMark, ready, session, setIommu, spaprHost } from './helpers.ts';

/*
 * VFIO_IOMMU_ENABLE / DISABLE (tce_iommu_enable, tce_iommu_disable) and
 * VFIO_IOMMU_SPAPR_TCE_GET_INFO, 4.1: the whole window charged to the
 * caller's locked_vm at once.
 */

test('ENABLE charges (it_size << it_page_shift) >> PAGE_SHIFT pages: 64 KiB pages', () => {
  const { s } = ready();
  assert.equal(s.p.lockedVm, 0);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  /* 1 GiB of 4 KiB TCEs = 262144 entries; (262144 << 12) >> 16 */
  assert.equal(s.p.lockedVm, 16384);
});

test('ENABLE on a 4 KiB-page host charges one page per TCE', () => {
  const { s } = ready({ pageSize: 4096 });
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(s.p.lockedVm, 262144);
});

test('ENABLE with a configured window charges that window', () => {
  const { s } = ready({ dma32WindowStart: 0x8000_0000n, dma32WindowSize: 0x1000_0000n });
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(s.p.lockedVm, 0x1000_0000 / 0x1_0000);
});

test('ENABLE twice is -EBUSY and charges once', () => {
  const { s } = ready();
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), -EBUSY);
  assert.equal(s.p.lockedVm, 16384);
});

test("ENABLE over RLIMIT_MEMLOCK is -ENOMEM with the kernel's warning, and charges nothing", () => {
  const host = spaprHost();
  const s = session(host, { memlock: 64n * 1024n });
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s), 0);
  const log = logMark(host);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), -ENOMEM);
  assert.ok(log().includes('RLIMIT_MEMLOCK (65536) exceeded'), log().join('\n'));
  assert.equal(s.p.lockedVm, 0);
});

test('ENABLE exactly at the limit succeeds; one page more is refused', () => {
  const host = spaprHost();
  const s = session(host, { memlock: 1n << 30n });
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s), 0);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const host2 = spaprHost();
  const s2 = session(host2, { memlock: (1n << 30n) - 0x1_0000n });
  assert.equal(addGroup(s2, 1), 0);
  assert.equal(setIommu(s2), 0);
  assert.equal(s2.p.ioctl(s2.container, VFIO_IOMMU_ENABLE), -ENOMEM);
});

test('ENABLE counts what is locked already (locked_vm + npages)', () => {
  const host = spaprHost();
  const s = session(host, { memlock: 1n << 30n });
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s), 0);
  const mmS = s.p.task.mm;
  assert.ok(mmS !== null);
  mmS.locked_vm = 1;
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), -ENOMEM);
  assert.equal(mmS.locked_vm, 1);
});

test('CAP_IPC_LOCK lifts the memlock check', () => {
  const host = spaprHost();
  const s = session(host, { memlock: 0n, capabilities: [CAP_IPC_LOCK] });
  assert.equal(addGroup(s, 1), 0);
  assert.equal(setIommu(s), 0);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(s.p.lockedVm, 16384);
});

test('ENABLE: -ENXIO without a table, -ESRCH without an mm (the only ways to get there are from inside)', () => {
  const host = spaprHost();
  const ops = host.inKernel(() => tceIommuDriverOps());
  assert.ok(ops !== undefined);
  const s = session(host);
  const c = runAs(host.kernel, s.p.task, () => ops.open(BigInt(VFIO_SPAPR_TCE_IOMMU))) as TceContainerV41;
  assert.equal(
    runAs(host.kernel, s.p.task, () => ops.ioctl(c, VFIO_IOMMU_ENABLE, 0n)),
    -ENXIO,
  );
  const g = host.iommu.groups.get(1);
  assert.ok(g !== undefined);
  assert.equal(
    runAs(host.kernel, s.p.task, () => ops.attach_group(c, g)),
    0,
  );
  /* kthreadd has no mm */
  assert.equal(
    host.inKernel(() => ops.ioctl(c, VFIO_IOMMU_ENABLE, 0n)),
    -ESRCH,
  );
  assert.equal(c.enabled, false);
  runAs(host.kernel, s.p.task, () => ops.release(c));
});

test('DISABLE uncharges the caller and always returns 0', () => {
  const { s } = ready();
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_DISABLE), 0, 'not enabled: nothing to do');
  assert.equal(s.p.lockedVm, 0);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_DISABLE), 0);
  assert.equal(s.p.lockedVm, 0);
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_DISABLE), 0);
  assert.equal(s.p.lockedVm, 0);
  /* and it can be enabled again */
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(s.p.lockedVm, 16384);
});

test('DISABLE through a passed container fd uncharges the process that calls it', () => {
  const { host, s } = ready();
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const other = host.spawn();
  const fd = s.p.passFd(s.container, other);
  assert.equal(other.ioctl(fd, VFIO_IOMMU_DISABLE), 0);
  assert.equal(s.p.lockedVm, 16384, 'the enabler keeps its charge');
  assert.equal(other.lockedVm, -16384, 'current->mm->locked_vm -= npages (an unsigned wrap in the kernel)');
});

test('ENABLE through a passed fd charges the caller', () => {
  const { host, s } = ready();
  const other = host.spawn({ rlimitMemlock: 1n << 40n });
  const fd = s.p.passFd(s.container, other);
  assert.equal(other.ioctl(fd, VFIO_IOMMU_ENABLE), 0);
  assert.equal(other.lockedVm, 16384);
  assert.equal(s.p.lockedVm, 0);
});

test('GET_INFO: window start and size from it_offset/it_size, flags 0, only 16 bytes written', () => {
  const { s } = ready({ dma32WindowStart: 0x4000_0000n, dma32WindowSize: 0x2000_0000n });
  const r = getInfo(s, 48);
  assert.equal(r.ret, 0);
  assert.equal(r.info.argsz, 48, 'argsz is left as the user set it');
  assert.equal(r.info.flags, 0);
  assert.equal(r.info.dma32_window_start, 0x4000_0000);
  assert.equal(r.info.dma32_window_size, 0x2000_0000);
  assert.ok(
    r.raw.subarray(16).every((b) => b === 0xa5),
    'the seed knows no ddw: nothing past 16 bytes',
  );
});

test('GET_INFO: argsz < 16 is -EINVAL, a bad pointer -EFAULT', () => {
  const { s } = ready();
  assert.equal(getInfo(s, 15).ret, -EINVAL);
  assert.equal(getInfo(s, 16).ret, 0);
  assert.equal(s.p.ioctl(s.container, 0x3b70, 0x10n), -EFAULT);
});

test('GET_INFO without a table is -ENXIO (and WARNs)', () => {
  const host = spaprHost();
  const ops = host.inKernel(() => tceIommuDriverOps());
  assert.ok(ops !== undefined);
  const s = session(host);
  const c = runAs(host.kernel, s.p.task, () => ops.open(BigInt(VFIO_SPAPR_TCE_IOMMU)));
  assert.ok(typeof c !== 'number');
  const log = logMark(host);
  assert.equal(
    runAs(host.kernel, s.p.task, () => ops.ioctl(c, 0x3b70, s.arg)),
    -ENXIO,
  );
  assert.ok(log().some((l) => l.startsWith('WARNING:')));
});

test('an unknown container ioctl reaches the driver and is -ENOTTY', () => {
  const { s } = ready();
  assert.equal(s.p.ioctl(s.container, 0x3b75 /* REGISTER_MEMORY: not in 4.1 */), -ENOTTY);
  assert.equal(s.p.ioctl(s.container, 0x3b77 /* TCE_CREATE */), -ENOTTY);
});
