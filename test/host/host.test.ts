import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import { ENODEV, O_RDWR, VFIO_SET_IOMMU } from '../../src/uapi/index.ts';
import { userAlloc } from '../helpers/user.ts';
import { type CallLog, registerTestBusDriver, Scratch, TEST_IOMMU, vfioHost } from '../helpers/vfio_core.ts';

/* the machine: construction, binding, and host.liveObjects() accounting of every object kind */
const PROFILES = ['4.1', '6.12'] as const;
const BDF = '0000:00:03.0';

/** the difference between two snapshots, kinds with a zero delta left out */
function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

describe('Host', () => {
  it('rejects unknown architectures and profiles', () => {
    assert.throws(() => new Host({ arch: 'arm64' as 'x86_64' }), /unknown arch/);
    assert.throws(() => new Host({ kernel: '5.4' as '4.1' }), /unknown kernel profile/);
    assert.equal(new Host().version, '4.1');
    assert.equal(new Host({ arch: 'ppc64' }).pageSize, 65536);
    assert.equal(new Host({ arch: 'ppc64', pageSize: 4096 }).pageSize, 4096);
  });

  it('bind/unbind of unknown devices and drivers', () => {
    const host = new Host();
    host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
    assert.equal(host.bind('0000:00:09.0', 'vfio-pci'), -ENODEV);
    assert.equal(host.bind(BDF, 'no-such-driver'), -ENODEV);
    assert.equal(host.device(BDF)?.driver, undefined);
    assert.equal(host.bind(BDF, 'vfio-pci'), 0);
    assert.equal(host.bind(BDF, 'vfio-pci'), 0);
    assert.throws(() => host.unbind('0000:00:09.0'), /no device/);
    assert.throws(() => host.addPciDevice({ bdf: BDF }), /already exists/);
    assert.throws(() => host.addPciDevice({ bdf: 'zz' }), /bad PCI address/);
    assert.throws(() => host.addPciDevice({ bdf: '0000:00:05.0', model: 'nope' }), /unknown device model/);
  });

  it('rebinding moves a device from one driver to another', () => {
    const host = new Host();
    host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3, driver: 'e1000e' });
    assert.equal(host.device(BDF)?.driver?.name, 'e1000e');
    assert.equal(host.bind(BDF, 'vfio-pci'), 0);
    assert.equal(host.device(BDF)?.driver?.name, 'vfio-pci');
    assert.equal(host.bind(BDF, 'pci-stub'), 0);
    assert.equal(host.device(BDF)?.driver?.name, 'pci-stub');
  });

  it('dmesg: reasons shown by default, hidden on request; debug lines only on request', () => {
    const host = new Host();
    const p = host.spawn();
    p.open('/dev/vfio/42', O_RDWR);
    const all = host.dmesg();
    assert.ok(all.some((l) => l.startsWith('vfio-ts: -ENOENT')));
    assert.ok(!host.dmesg({ reasons: false }).some((l) => l.startsWith('vfio-ts:')));
  });
});

for (const kernel of PROFILES) {
  describe(`liveObjects (${kernel})`, () => {
    it('counts every kind the setup allocates and gives each back', () => {
      const { host } = vfioHost(Host, kernel, []);
      const log: CallLog = { calls: [] };
      registerTestBusDriver(host, log);
      const boot = host.liveObjects();
      host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
      assert.equal(host.bind(BDF, 'test-vfio'), 0);
      const bound = host.liveObjects();
      assert.deepEqual(delta(boot, bound), { vfio_device: 1, vfio_group: 1 });
      const p = host.spawn();
      assert.deepEqual(delta(bound, host.liveObjects()), { mm_struct: 1, task_struct: 1 });
      const s = new Scratch(p);
      assert.deepEqual(delta(bound, host.liveObjects()), {
        mm_struct: 1,
        phys_pages: 1,
        task_struct: 1,
        vm_area_struct: 1,
      });
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      const d = s.deviceFd(g, BDF);
      p.eventfd(0, 0);
      assert.deepEqual(delta(bound, host.liveObjects()), {
        eventfd_ctx: 1,
        file: 4,
        mm_struct: 1,
        phys_pages: 1,
        task_struct: 1,
        vfio_container: 1,
        vm_area_struct: 1,
      });
      /* an unbind waiting for the device fd: the unbound entry is an object too (4.1) */
      const kt = host.unbind(BDF);
      assert.equal(kt.state, 'sleeping');
      if (kernel === '4.1') assert.equal(host.liveObjects().vfio_unbound_dev, 1);
      p.close(d);
      assert.equal(kt.state, 'done');
      assert.equal(host.liveObjects().vfio_unbound_dev, undefined);
      p.exit();
      assert.deepEqual(host.liveObjects(), boot);
    });

    it('pages pinned past munmap stay counted until unpinned', () => {
      const host = new Host({ kernel });
      const base = host.liveObjects();
      const p = host.spawn();
      const a = userAlloc(p, 8192);
      const mm = p.task.mm;
      assert.ok(mm !== null);
      const phys = host.inKernel(() => mm.pinPage(Number(a), true));
      assert.ok(phys > 0);
      p.munmap(a, 8192);
      assert.equal(host.liveObjects().phys_pages, 1);
      mm.unpinPage(phys, true);
      assert.equal(host.liveObjects().phys_pages, undefined);
      p.exit();
      assert.deepEqual(host.liveObjects(), base);
    });
  });
}
