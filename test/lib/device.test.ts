import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  PCI_DEVICE_ID,
  PCI_VENDOR_ID,
  setBusMaster,
  VfioContainer,
  type VfioDevice,
  VfioGroup,
} from '../../src/lib/index.ts';
import {
  EINVAL,
  ENODEV,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../../src/uapi/index.ts';
import { assertBaseline, assertClosed, type Machine, machine, throwsVfio } from './fixture.ts';

/*
 * The device side of the library against the real vfio-pci and device
 * models (the scripted tests check the bytes; these check the meaning).
 */
const CE = { bdf: '0000:00:04.0', group: 4, model: 'copy-engine' };
const EDU = { bdf: '0000:00:03.0', group: 3, model: 'edu' };

interface Opened {
  readonly c: VfioContainer;
  readonly g: VfioGroup;
  readonly d: VfioDevice;
}

function openDevice(m: Machine, bdf: string, type = VFIO_TYPE1_IOMMU): Opened {
  const c = VfioContainer.open(m.p);
  const g = VfioGroup.forDevice(m.p, bdf);
  g.setContainer(c);
  c.setIommu(type);
  return { c, g, d: g.device(bdf) };
}

function closeAll(o: Opened): void {
  o.d.close();
  o.g.close();
  o.c.close();
}

for (const kernel of ['4.1', '6.12'] as const) {
  test(`copy engine (${kernel}): device info, regions, IRQ indexes as vfio-pci reports them`, () => {
    const m = machine([CE], { kernel });
    const o = openDevice(m, CE.bdf);
    const info = o.d.info();
    assert.deepEqual(
      [info.flags, info.numRegions, info.numIrqs, info.reset, info.pci],
      [3, 9, 5, true, true],
    );
    const regions = o.d.regions();
    assert.deepEqual(
      regions.map((r) => [r.index, r.info.flags, r.size]),
      [
        [0, kernel === '4.1' ? 7 : 15, 0x4000n],
        [1, 0, 0n],
        [2, 7, 0x10_0000n],
        [3, 0, 0n],
        [4, 0, 0n],
        [5, 0, 0n],
        [6, 1, 0x1_0000n],
        [7, 3, 0x1000n],
      ],
    );
    /* 6.12: BAR0 carries MSIX_MAPPABLE (the table may be mmapped) */
    assert.equal(o.d.bar(0).info.msixMappable, kernel === '6.12');
    assert.deepEqual(
      o.d.bar(0).info.raw.map((c) => c.id),
      kernel === '6.12' ? [3] : [],
    );
    assert.equal(o.d.region(6).info.offset, 6n << 40n);
    const irqs = o.d.irqs();
    assert.deepEqual(
      irqs.map((i) => [i.index, i.count]),
      [
        [0, 1],
        [1, 0],
        [2, 4],
        [3, 1],
        [4, 1],
      ],
    );
    assert.deepEqual(irqs[0], {
      index: 0,
      flags: 7,
      count: 1,
      eventfd: true,
      maskable: true,
      automasked: true,
      noresize: false,
    });
    closeAll(o);
    assertClosed(m);
    assertBaseline(m);
  });

  test(`copy engine (${kernel}): config space, BAR registers by pread and by mmap, reset`, () => {
    const m = machine([CE], { kernel });
    const o = openDevice(m, CE.bdf);
    assert.equal(o.d.config.read16(PCI_VENDOR_ID), 0x1234);
    assert.equal(o.d.config.read16(PCI_DEVICE_ID), 0x11ce);
    const bar0 = o.d.bar(0);
    assert.equal(bar0.read32(0), 0x4345_0100);
    const regs = bar0.mmap({ size: 0x1000n });
    assert.equal(regs.read32(0), 0x4345_0100);
    regs.write32(0x48, 64); /* RING_SIZE */
    assert.equal(bar0.read32(0x48), 64, 'the mmap and pwrite/pread reach the same register');
    bar0.write32(0x48, 16);
    assert.equal(regs.read32(0x48), 16);
    if (kernel === '4.1')
      throwsVfio(() => bar0.mmap(), {
        errno: EINVAL,
        code: 'EINVAL',
        syscall: 'mmap',
        fd: o.d.fd,
        message: `mmap(NULL, 0x4000, 3, MAP_SHARED, ${o.d.fd}, 0x0) on fd ${o.d.fd} failed: EINVAL (Invalid argument): the range overlaps the MSI-X table of BAR0`,
      });
    else assert.equal(bar0.mmap().read32(0), 0x4345_0100, '6.12 maps the whole BAR, MSI-X table included');
    o.d.reset();
    assert.equal(bar0.read32(0x48), 0, 'the function reset cleared the ring size');
    /* closing the device unmaps what it mapped */
    closeAll(o);
    assertClosed(m);
  });
}

test('hot reset: the dependent devices behind a root port, then a reset proving both groups', () => {
  const m = machine([
    { bdf: '0000:00:1c.0', group: 1, model: 'pcie-root-port', driver: 'pcieport' },
    { bdf: '0000:01:00.0', group: 5, model: 'copy-engine', parent: '0000:00:1c.0' },
    { bdf: '0000:01:00.1', group: 6, model: 'copy-engine', parent: '0000:00:1c.0' },
  ]);
  const c = VfioContainer.open(m.p);
  const g5 = VfioGroup.open(m.p, 5);
  const g6 = VfioGroup.open(m.p, 6);
  g5.setContainer(c);
  g6.setContainer(c);
  c.setIommu(VFIO_TYPE1_IOMMU);
  const d = g5.device('0000:01:00.0');
  assert.deepEqual(d.hotResetInfo(), {
    flags: 0,
    devices: [
      { groupId: 5, segment: 0, bus: 1, devfn: 0, bdf: '0000:01:00.0' },
      { groupId: 6, segment: 0, bus: 1, devfn: 1, bdf: '0000:01:00.1' },
    ],
  });
  throwsVfio(() => d.hotReset([g5]), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_DEVICE_PCI_HOT_RESET',
    message: `VFIO_DEVICE_PCI_HOT_RESET(group fds [${g5.fd}]) on fd ${d.fd} failed: EINVAL (Invalid argument): the group of 0000:01:00.1 (6) was not supplied`,
  });
  d.hotReset([g5, g6]);
  d.close();
  g6.close();
  g5.close();
  c.close();
  assertClosed(m);
});

test('hot reset of a device on the root bus: ENODEV with the kernel reason', () => {
  const m = machine([CE]);
  const o = openDevice(m, CE.bdf);
  throwsVfio(() => o.d.hotResetInfo(), {
    errno: ENODEV,
    code: 'ENODEV',
    message: `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO() on fd ${o.d.fd} failed: ENODEV (No such device): 0000:00:04.0 is on a root bus (no slot or bus reset)`,
  });
  closeAll(o);
});

test('a group with a device on a host driver: GET_DEVICE_FD names the culprit', () => {
  const m = machine([EDU, { bdf: '0000:00:05.0', group: 3, driver: 'e1000e' }]);
  const c = VfioContainer.open(m.p);
  const g = VfioGroup.open(m.p, 3);
  assert.equal(g.status().viable, false);
  g.setContainer(c); /* 4.1 does not check viability here */
  c.setIommu(VFIO_TYPE1_IOMMU);
  throwsVfio(() => g.device(EDU.bdf), {
    errno: EINVAL,
    code: 'EINVAL',
    syscall: 'ioctl',
    request: 'VFIO_GROUP_GET_DEVICE_FD',
    fd: g.fd,
    message: `VFIO_GROUP_GET_DEVICE_FD("0000:00:03.0") on fd ${g.fd} failed: EINVAL (Invalid argument): group is not viable: 0000:00:05.0 (bound to e1000e)`,
  });
  throwsVfio(() => g.device('0000:00:09.0'), {
    errno: EINVAL,
    code: 'EINVAL',
    message: /group is not viable/,
  });
  g.close();
  c.close();
  assertClosed(m);
});

test('UNSET_CONTAINER while a device fd is open: EBUSY; after the device closes it works', () => {
  const m = machine([EDU]);
  const o = openDevice(m, EDU.bdf);
  throwsVfio(() => o.g.unsetContainer(), {
    errno: 16,
    code: 'EBUSY',
    request: 'VFIO_GROUP_UNSET_CONTAINER',
    message: `VFIO_GROUP_UNSET_CONTAINER() on fd ${o.g.fd} failed: EBUSY (Device or resource busy): 1 other users (device fds) still hold the container`,
  });
  o.d.close();
  o.g.unsetContainer();
  assert.equal(o.g.status().containerSet, false);
  closeAll(o);
  assertClosed(m);
});

test('an unknown device name: ENODEV', () => {
  const m = machine([EDU]);
  const c = VfioContainer.open(m.p);
  const g = VfioGroup.open(m.p, 3);
  g.setContainer(c);
  c.setIommu(VFIO_TYPE1_IOMMU);
  throwsVfio(() => g.device('0000:00:09.0'), {
    errno: ENODEV,
    code: 'ENODEV',
    message: `VFIO_GROUP_GET_DEVICE_FD("0000:00:09.0") on fd ${g.fd} failed: ENODEV (No such device): no device "0000:00:09.0" in this group`,
  });
  g.close();
  c.close();
});

test('edu INTx: the device raises, the eventfd fires once (automasked) until unmasked', () => {
  const m = machine([EDU]);
  const o = openDevice(m, EDU.bdf);
  const regs = o.d.bar(0).mmap();
  const intx = o.d.enableIntx();
  regs.write32(0x60, 0x1); /* raise */
  assert.equal(intx.next(0), 1n);
  regs.write32(0x60, 0x2); /* the line is masked: no new event */
  assert.equal(intx.next(0), 0n);
  regs.write32(0x64, 0x3); /* acknowledge: the line drops */
  o.d.unmaskIntx();
  assert.equal(intx.next(0), 0n);
  regs.write32(0x60, 0x4);
  assert.equal(intx.next(0), 1n);
  regs.write32(0x64, 0x4);
  o.d.maskIntx();
  o.d.unmaskIntx();
  o.d.trigger(VFIO_PCI_INTX_IRQ_INDEX); /* loopback from userspace */
  assert.equal(intx.next(0), 1n);
  o.d.disableInterrupts(VFIO_PCI_INTX_IRQ_INDEX);
  assert.equal(intx.isClosed, true);
  closeAll(o);
  assertClosed(m);
});

test('edu MSI: factorial done raises MSI on the eventfd, on the virtual clock', () => {
  const m = machine([EDU]);
  const o = openDevice(m, EDU.bdf);
  const regs = o.d.bar(0).mmap();
  setBusMaster(o.d.config);
  const [msi] = o.d.enableMsi(1);
  assert.ok(msi !== undefined);
  regs.write32(0x20, 0x80);
  regs.write32(0x08, 12);
  assert.equal(msi.next(1), 1n);
  assert.equal(regs.read32(0x08), 479001600);
  assert.equal(regs.read32(0x24), 1);
  regs.write32(0x64, 1);
  closeAll(o);
  assertClosed(m);
});

test('copy engine MSI-X: loopback triggers land on their own vectors', () => {
  const m = machine([CE]);
  const o = openDevice(m, CE.bdf, VFIO_TYPE1v2_IOMMU);
  const v = o.d.enableMsix(4);
  assert.deepEqual(
    o.d.interrupts(VFIO_PCI_MSIX_IRQ_INDEX).map((i) => i.vector),
    [0, 1, 2, 3],
  );
  o.d.trigger(VFIO_PCI_MSIX_IRQ_INDEX, 1, 2);
  assert.deepEqual(
    v.map((i) => i.count()),
    [0n, 1n, 1n, 0n],
  );
  throwsVfio(() => o.d.trigger(VFIO_PCI_MSIX_IRQ_INDEX, 3, 2), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_DEVICE_SET_IRQS',
    message: new RegExp(
      `^VFIO_DEVICE_SET_IRQS\\(index 2, start 3, count 2, DATA_NONE\\|ACTION_TRIGGER\\) on fd ${o.d.fd} failed: EINVAL`,
    ),
  });
  /* MSI and MSI-X are exclusive with INTx */
  throwsVfio(() => o.d.enableIntx(), { errno: EINVAL, code: 'EINVAL', request: 'VFIO_DEVICE_SET_IRQS' });
  o.d.disableInterrupts(VFIO_PCI_MSIX_IRQ_INDEX);
  o.d.enableIntx();
  closeAll(o);
  assertClosed(m);
  assertBaseline(m);
});

test('using: device, group and container close at the end of the block, interrupts and mappings with them', () => {
  const m = machine([CE]);
  {
    using c = VfioContainer.open(m.p);
    using g = VfioGroup.open(m.p, CE.group);
    g.setContainer(c);
    c.setIommu(VFIO_TYPE1_IOMMU);
    using d = g.device(CE.bdf);
    d.enableMsix(2);
    d.bar(2).mmap();
    d.bar(0).mmap({ size: 0x1000n });
  }
  assertClosed(m);
  assertBaseline(m);
});
