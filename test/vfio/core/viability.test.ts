import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host, KernelBug } from '../../../src/index.ts';
import { EBUSY, EPERM, O_RDWR, VFIO_GET_API_VERSION } from '../../../src/uapi/index.ts';
import { groupOf, Scratch, vfioHost } from '../../helpers/vfio_core.ts';

/*
 * Isolation: which groups are viable, and what happens when a host driver
 * binds into a group a VFIO user holds (4.1: the notifier's BUG_ON; 6.12:
 * DMA ownership refuses the binding).
 */
const PROFILES = ['4.1', '6.12'] as const;
const A = '0000:00:03.0';
const B = '0000:00:03.1';

/** group 3: A on vfio-pci, B added with the given driver (or none) */
function twoDeviceGroup(kernel: '4.1' | '6.12', bDriver?: string) {
  const { host } = vfioHost(Host, kernel, [{ bdf: A, group: 3 }]);
  host.addPciDevice({
    bdf: B,
    model: 'generic',
    iommuGroup: 3,
    ...(bDriver !== undefined ? { driver: bDriver } : {}),
  });
  return host;
}

for (const kernel of PROFILES) {
  describe(`viability (${kernel})`, () => {
    it('a device without a driver keeps the group viable', () => {
      const host = twoDeviceGroup(kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      assert.equal(s.status(p.open('/dev/vfio/3', O_RDWR)).flags, 1);
    });

    it('pci-stub keeps the group viable; SET_CONTAINER works', () => {
      const host = twoDeviceGroup(kernel, 'pci-stub');
      assert.equal(host.device(B)?.driver?.name, 'pci-stub');
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.status(g).flags, 1);
      assert.equal(s.setContainer(g, p.open('/dev/vfio/vfio', O_RDWR)), 0);
      assert.equal(s.status(g).flags, 3);
    });

    it('a device bound to a DMA driver makes the group non-viable', () => {
      const host = twoDeviceGroup(kernel, 'e1000e');
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(s.status(g).flags, 0);
      if (kernel === '4.1') {
        /* 4.1 does not check at SET_CONTAINER: attached, not viable */
        assert.equal(s.setContainer(g, c), 0);
        assert.equal(s.status(g).flags, 2);
      } else {
        /* 6.12: the DMA ownership claim fails */
        assert.equal(s.setContainer(g, c), -EPERM);
        assert.equal(groupOf(host, 3)?.container, undefined);
        assert.equal(groupOf(host, 3)?.iommu_group?.owner, undefined);
        assert.equal(s.status(g).flags, 0);
      }
    });

    it('unbinding the DMA driver makes the group viable again', () => {
      const host = twoDeviceGroup(kernel, 'e1000e');
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.status(g).flags, 0);
      assert.equal(host.unbind(B).state, 'done');
      assert.equal(s.status(g).flags, 1);
      assert.equal(s.setContainer(g, p.open('/dev/vfio/vfio', O_RDWR)), 0);
      if (kernel === '6.12') assert.equal(groupOf(host, 3)?.iommu_group?.owner_cnt, 1);
    });
  });

  describe(`a host driver binding into a group in use (${kernel})`, () => {
    it(
      kernel === '4.1' ? 'hits BUG_ON: KernelBug, the host halts' : 'is refused with -EBUSY before probe',
      () => {
        const host = twoDeviceGroup(kernel, 'e1000e');
        assert.equal(host.unbind(B).state, 'done');
        const p = host.spawn();
        const s = new Scratch(p);
        const c = p.open('/dev/vfio/vfio', O_RDWR);
        const g = p.open('/dev/vfio/3', O_RDWR);
        assert.equal(s.setContainer(g, c), 0);
        if (kernel === '4.1') {
          assert.throws(() => host.bind(B, 'e1000e'), KernelBug);
          assert.equal(host.halted, true);
          assert.ok(
            host.dmesg().some((l) => l.startsWith('kernel BUG') && l.includes('drivers/vfio/vfio.c')),
          );
          /* the driver is bound when the BUG fires */
          assert.equal(host.device(B)?.driver?.name, 'e1000e');
          /* a halted machine runs no more syscalls */
          assert.throws(() => p.ioctl(c, VFIO_GET_API_VERSION), KernelBug);
        } else {
          const n = host.dmesg().length;
          assert.equal(host.bind(B, 'e1000e'), -EBUSY);
          assert.equal(host.halted, false);
          assert.equal(host.device(B)?.driver, undefined);
          /* dma_configure failed: no "probe failed" message */
          assert.deepEqual(host.dmesg().slice(n), []);
          assert.equal(s.status(g).flags, 3);
          assert.equal(groupOf(host, 3)?.iommu_group?.owner_cnt, 1);
        }
      },
    );

    it('binding into an idle group is fine; the group just stops being viable', () => {
      const host = twoDeviceGroup(kernel, 'e1000e');
      assert.equal(host.unbind(B).state, 'done');
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(host.bind(B, 'e1000e'), 0);
      assert.equal(host.halted, false);
      assert.equal(s.status(g).flags, 0);
    });

    it('pci-stub may bind into a group in use', () => {
      const host = twoDeviceGroup(kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, p.open('/dev/vfio/vfio', O_RDWR)), 0);
      assert.equal(host.bind(B, 'pci-stub'), 0);
      assert.equal(host.halted, false);
      assert.equal(s.status(g).flags, 3);
    });
  });
}

describe('4.1: a device added to a live group', () => {
  it('WARNs with the device name (the WARN lost its condition argument)', () => {
    const { host } = vfioHost(Host, '4.1', [{ bdf: A, group: 3 }]);
    const p = host.spawn();
    const s = new Scratch(p);
    const g = p.open('/dev/vfio/3', O_RDWR);
    assert.equal(s.setContainer(g, p.open('/dev/vfio/vfio', O_RDWR)), 0);
    host.addPciDevice({ bdf: '0000:00:03.2', model: 'generic', iommuGroup: 3 });
    assert.ok(host.dmesg().includes('WARNING: 0000:00:03.2'));
    assert.equal(host.halted, false);
  });

  it('an idle group takes new devices silently', () => {
    const { host } = vfioHost(Host, '4.1', [{ bdf: A, group: 3 }]);
    const n = host.dmesg().length;
    host.addPciDevice({ bdf: '0000:00:03.2', model: 'generic', iommuGroup: 3 });
    assert.deepEqual(host.dmesg().slice(n), []);
  });
});
