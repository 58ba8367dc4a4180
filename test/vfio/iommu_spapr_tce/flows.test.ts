import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Host } from '../../../src/index.ts';
import {
  EBUSY,
  ENOMEM,
  EPERM,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_SPAPR_TCE_IOMMU,
  vfio_group_status,
} from '../../../src/uapi/index.ts';
import {
  addGroup,
  dmaRead,
  dmaWrite,
  getInfo,
  mapBits,
  mapDma,
  physOf,
  pins,
  ready,
  type Session,
  session,
  setIommu,
  spaprHost,
  table,
  unmapDma,
  userMem,
} from './helpers.ts';

/*
 * Whole flows: the sPAPR variant of the canonical sequence of the
 * kernel's VFIO documentation, a second group refused, ENABLE over the
 * memlock limit, and processes that go away while they hold a container.
 */
const BDF = '0001:00:01.0';

function canonical(host: Host, s: Session, kernel: '4.1' | '6.12'): void {
  const p = s.p;
  /* 1-3: the container, its API, the extension */
  assert.equal(p.ioctl(s.container, VFIO_GET_API_VERSION), VFIO_API_VERSION);
  assert.equal(p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU), 1);
  /* 4-6: the group: viable, into the container */
  const g = p.open('/dev/vfio/1', 2);
  assert.ok(g >= 0);
  s.groups.set(1, g);
  p.mem.write(s.arg, vfio_group_status.encode({ argsz: 8 }));
  assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, s.arg), 0);
  assert.equal(vfio_group_status.decode(p.mem.read(s.arg, 8)).flags, VFIO_GROUP_FLAGS_VIABLE);
  p.mem.write(s.arg, new Uint8Array(new Int32Array([s.container]).buffer));
  assert.equal(p.ioctl(g, 0x3b68 /* VFIO_GROUP_SET_CONTAINER */, s.arg), 0);
  p.mem.write(s.arg, vfio_group_status.encode({ argsz: 8 }));
  assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, s.arg), 0);
  assert.equal(
    vfio_group_status.decode(p.mem.read(s.arg, 8)).flags,
    VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET,
  );
  /* 7: the sPAPR IOMMU */
  assert.equal(setIommu(s, VFIO_SPAPR_TCE_IOMMU), 0);
  /* 8: where the DMA window is */
  const info = getInfo(s);
  assert.equal(info.ret, 0);
  assert.equal(info.info.dma32_window_start, 0);
  assert.equal(info.info.dma32_window_size, 1 << 30);
  /* ENABLE before mapping: the window is charged to locked_vm */
  assert.equal(p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  assert.equal(p.lockedVm, 16384);
  /* 9: 1 MiB of anonymous memory, mapped inside the window */
  const buf = userMem(s, 1 << 20);
  const iova = 0x10_0000n;
  assert.equal(mapDma(s, { vaddr: buf, iova, size: 1n << 20n }), 0);
  const t = table(host, 1);
  assert.equal(t.validEntries(), 256);
  /* 10: the device fd */
  p.mem.write(s.arg, new TextEncoder().encode(`${BDF}\0`));
  const dev = p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, s.arg);
  assert.ok(dev >= 0, `GET_DEVICE_FD: ${dev}`);
  /* the device DMAs through the TCE table: reads what the process wrote, writes what it reads */
  p.mem.write(buf + 0x1_2340n, new TextEncoder().encode('from the cpu'));
  assert.deepEqual(dmaRead(host, BDF, iova + 0x1_2340n, 12), new TextEncoder().encode('from the cpu'));
  assert.equal(dmaWrite(host, BDF, iova + 0xf_fff0n, new TextEncoder().encode('from the device.')), true);
  assert.deepEqual(p.mem.read(buf + 0xf_fff0n, 16), new TextEncoder().encode('from the device.'));
  /* a DMA across the end of the mapping faults at the first unmapped byte */
  assert.equal(dmaRead(host, BDF, iova + 0xf_fff0n, 32), undefined);
  assert.equal(host.iommu.faults.at(-1)?.iova, iova + (1n << 20n));
  /* unmap and disable */
  assert.equal(unmapDma(s, { iova, size: 1n << 20n }), 0);
  assert.equal(t.validEntries(), 0);
  assert.equal(pins(host, physOf(s, buf)), 0);
  assert.equal(p.ioctl(s.container, VFIO_IOMMU_DISABLE), 0);
  assert.equal(p.lockedVm, kernel === '4.1' ? 0 : 64, "6.12 charged the default window's table too");
  assert.equal(p.close(dev), 0);
}

test('the canonical sPAPR sequence (4.1)', () => {
  const host = spaprHost();
  canonical(host, session(host), '4.1');
});

test('the canonical sPAPR sequence (6.12, v1: MAP needs ENABLE)', () => {
  const host = spaprHost({ kernel: '6.12' });
  canonical(host, session(host), '6.12');
});

for (const kernel of ['4.1', '6.12'] as const) {
  test(`a second group is refused by a v1 container, the first keeps working (${kernel})`, () => {
    const { host, s } = ready({
      kernel,
      devices: [
        { bdf: '0001:00:01.0', group: 1 },
        { bdf: '0002:00:01.0', group: 2 },
      ],
      groups: [1],
    });
    assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
    assert.equal(addGroup(s, 2), -EBUSY);
    const buf = userMem(s, 0x10000);
    assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x10000n }), 0);
    assert.ok(dmaRead(host, BDF, 0n, 8) !== undefined);
    assert.equal(dmaRead(host, '0002:00:01.0', 0n, 8), undefined, 'group 2 is not in the container');
  });

  test(`ENABLE over the memlock limit is -ENOMEM and maps stay possible only in 4.1 (${kernel})`, () => {
    const host = spaprHost({ kernel });
    const s = session(host, { memlock: 64n * 1024n });
    assert.equal(addGroup(s, 1), 0);
    assert.equal(setIommu(s), 0);
    assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), -ENOMEM);
    assert.equal(s.p.lockedVm, 0);
    const buf = userMem(s, 0x10000);
    assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), kernel === '4.1' ? 0 : -EPERM);
  });

  test(`a process that exits while enabled leaves locked_vm and every table as before (${kernel})`, () => {
    const host = spaprHost({
      kernel,
      devices: [
        { bdf: '0001:00:01.0', group: 1 },
        { bdf: '0001:00:02.0', group: 2 },
      ],
    });
    const bystander = host.spawn({ rlimitMemlock: 1n << 40n });
    const objects = host.liveObjects();
    const physObjects = host.kernel.phys.liveObjects;
    const t2 = table(host, 2);
    const s = session(host);
    assert.equal(addGroup(s, 1), 0);
    assert.equal(setIommu(s), 0);
    assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
    const buf = userMem(s, 0x40000);
    assert.equal(mapDma(s, { vaddr: buf, iova: 0x10000n, size: 0x40000n }), 0);
    const phys = physOf(s, buf);
    assert.ok(pins(host, phys) > 0);
    s.p.exit();
    assert.equal(bystander.lockedVm, 0);
    assert.deepEqual(mapBits(table(host, 1)), [0], 'back to the host, entry 0 reserved');
    assert.equal(table(host, 1).validEntries(), 0);
    assert.equal(table(host, 2), t2);
    assert.deepEqual(mapBits(t2), [0]);
    assert.equal(pins(host, phys), 0);
    assert.equal(host.kernel.phys.liveObjects, physObjects, 'the pinned memory was freed');
    assert.deepEqual(host.liveObjects(), objects);
    /* and the group can be used again */
    const again = session(host);
    assert.equal(addGroup(again, 1), 0);
    assert.equal(setIommu(again), 0);
  });
}

test('4.1: the last close by another process (a passed fd) uncharges that process, not the enabler', () => {
  const { host, s } = ready();
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const b = host.spawn();
  const gfd = s.groups.get(1);
  assert.ok(gfd !== undefined);
  const bg = s.p.passFd(gfd, b);
  assert.ok(bg >= 0);
  s.p.exit();
  assert.equal(b.lockedVm, 0);
  /* the group fd's release detaches the group, forcing disable on current->mm: b's */
  assert.equal(b.close(bg), 0);
  assert.equal(b.lockedVm, -16384);
  assert.deepEqual(mapBits(table(host, 1)), [0]);
});

test("6.12: the charge follows the container's mm, whoever closes it last", () => {
  const { host, s } = ready({ kernel: '6.12' });
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_ENABLE), 0);
  const b = host.spawn();
  const fd = s.p.passFd(s.container, b);
  assert.equal(b.ioctl(fd, VFIO_IOMMU_DISABLE), -EPERM, 'another mm may not touch the container');
  const gfd = s.groups.get(1);
  assert.ok(gfd !== undefined);
  const bg = s.p.passFd(gfd, b);
  assert.equal(s.p.close(gfd), 0);
  assert.equal(s.p.close(s.container), 0);
  assert.equal(b.close(bg), 0);
  assert.equal(b.lockedVm, 0);
  assert.equal(s.p.lockedVm, 0, 'the container uncharged its own mm');
});
