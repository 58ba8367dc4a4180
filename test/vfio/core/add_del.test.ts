import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../../src/index.ts';
import { type IommuGroup, iommuGroupGet } from '../../../src/iommu/index.ts';
import { Device, type File, Kernel, NSEC_PER_SEC } from '../../../src/kernel/index.ts';
import {
  EBUSY,
  EINVAL,
  ENODEV,
  ENOENT,
  MAJOR,
  O_RDWR,
  S_IFCHR,
  type StatResult,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_MINOR,
} from '../../../src/uapi/index.ts';
import { vfioCreateGroup, vfioGroupPut } from '../../../src/vfio/group.ts';
import {
  type VfioDeviceOps,
  type VfioGroup,
  vfioAddGroupDev,
  vfioGroupGetExternalUser,
  vfioGroupPutExternalUser,
  vfioModule,
  vfioOf,
} from '../../../src/vfio/index.ts';
import {
  type CallLog,
  groupOf,
  registerTestBusDriver,
  Scratch,
  TEST_IOMMU,
  vfioHost,
} from '../../helpers/vfio_core.ts';

/* vfio_init, vfio_add_group_dev / vfio_create_group, vfio_del_group_dev */
const PROFILES = ['4.1', '6.12'] as const;
const BDF = '0000:00:03.0';
const NOOPS: VfioDeviceOps = { name: 'noop', open: () => 0, release: () => {} };

function stat(p: ReturnType<Host['spawn']>, path: string): StatResult {
  const st = p.stat(path);
  if (typeof st === 'number') throw new Error(`stat ${path}: ${st}`);
  return st;
}

for (const kernel of PROFILES) {
  describe(`vfio_init (${kernel})`, () => {
    it('/dev/vfio/vfio is the misc device 10:196, mode 0666; /sys/class/vfio exists', () => {
      const host = new Host({ kernel });
      const p = host.spawn();
      const st = stat(p, '/dev/vfio/vfio');
      assert.equal(st.mode, S_IFCHR | 0o666);
      assert.equal(st.rdevMajor, 10);
      assert.equal(st.rdevMinor, VFIO_MINOR);
      assert.equal(VFIO_MINOR, 196);
      assert.deepEqual(p.readdir('/sys/class/vfio'), []);
      assert.equal(p.readlink('/sys/class/misc/vfio'), '../../devices/virtual/misc/vfio');
      assert.equal(p.readText('/sys/class/misc/vfio/dev'), '10:196\n');
      assert.ok(host.dmesg().includes('VFIO - User Level meta-driver version: 0.3'));
      /* an unprivileged user may open the container */
      const u = host.spawn({ uid: 1000, gid: 1000 });
      assert.ok(u.open('/dev/vfio/vfio', O_RDWR) >= 0);
    });

    it('request_module of a backend that is not installed is silent', () => {
      const host = new Host({ kernel });
      assert.ok(!host.dmesg().some((l) => l.includes('request_module') && l.includes('failed')));
    });
  });

  describe(`vfio_add_group_dev / vfio_create_group (${kernel})`, () => {
    it('the first device of a group creates /dev/vfio/<id>: vfio major, minor from the idr, mode 0600', () => {
      const { host } = vfioHost(Host, kernel, [
        { bdf: BDF, group: 3 },
        { bdf: '0000:00:07.0', group: 7 },
      ]);
      const v = vfioOf(host.kernel);
      const major = MAJOR(v?.group_devt ?? 0);
      assert.ok(major >= 234 && major <= 254, `dynamic major ${major}`);
      const p = host.spawn();
      const s3 = stat(p, '/dev/vfio/3');
      const s7 = stat(p, '/dev/vfio/7');
      assert.equal(s3.mode, S_IFCHR | 0o600);
      assert.deepEqual([s3.rdevMajor, s3.rdevMinor], [major, 0]);
      assert.deepEqual([s7.rdevMajor, s7.rdevMinor], [major, 1]);
      assert.equal(groupOf(host, 3)?.minor, 0);
      assert.deepEqual(p.readdir('/sys/class/vfio'), ['3', '7']);
      assert.equal(p.readText('/sys/class/vfio/7/dev'), `${major}:1\n`);
      /* an unprivileged user may not open a group node */
      const u = host.spawn({ uid: 1000, gid: 1000 });
      assert.ok(u.open('/dev/vfio/3', O_RDWR) < 0);
    });

    it('a second device of the same group joins the existing vfio_group', () => {
      const { host } = vfioHost(Host, kernel, [
        { bdf: BDF, group: 3 },
        { bdf: '0000:00:03.1', group: 3 },
      ]);
      const g = groupOf(host, 3);
      assert.deepEqual(
        g?.device_list.map((d) => d.dev.name),
        ['0000:00:03.1', BDF],
      );
      assert.equal(host.liveObjects().vfio_group, 1);
      assert.equal(host.liveObjects().vfio_device, 2);
      /* each vfio_device holds a group reference */
      assert.equal(g?.kref.refcount, 2);
      if (kernel === '6.12') assert.equal(g?.drivers, 2);
    });

    it('minors are reused lowest first; the node goes with the group', () => {
      const { host } = vfioHost(Host, kernel, [
        { bdf: BDF, group: 3 },
        { bdf: '0000:00:07.0', group: 7 },
      ]);
      const p = host.spawn();
      assert.equal(host.unbind(BDF).state, 'done');
      assert.equal(p.stat('/dev/vfio/3'), -ENOENT);
      assert.equal(groupOf(host, 3), undefined);
      assert.deepEqual(p.readdir('/sys/class/vfio'), ['7']);
      host.addPciDevice({ bdf: '0000:00:09.0', model: 'generic', iommuGroup: 9 });
      assert.equal(host.bind('0000:00:09.0', 'vfio-pci'), 0);
      assert.equal(stat(p, '/dev/vfio/9').rdevMinor, 0);
      assert.equal(groupOf(host, 9)?.minor, 0);
    });

    it('a device without an IOMMU group: -EINVAL', () => {
      const { host } = vfioHost(Host, kernel, []);
      const before = host.liveObjects();
      const dev = new Device('platform-thing', host.pci.bus, undefined);
      assert.equal(
        host.inKernel(() => vfioAddGroupDev(dev, NOOPS, {})),
        -EINVAL,
      );
      assert.deepEqual(host.liveObjects(), before);
    });

    it('adding the same device twice: 4.1 WARN + -EBUSY, 6.12 WARN_ON + -EINVAL', () => {
      const { host } = vfioHost(Host, kernel);
      const pdev = host.device(BDF);
      assert.ok(pdev !== undefined);
      const g = groupOf(host, 3);
      const kref = g?.kref.refcount;
      const iref = (pdev.iommu_group as IommuGroup).kref.refcount;
      const before = host.liveObjects();
      const r = host.inKernel(() => vfioAddGroupDev(pdev, NOOPS, {}));
      assert.equal(r, kernel === '4.1' ? -EBUSY : -EINVAL);
      assert.deepEqual(host.liveObjects(), before);
      assert.equal(g?.kref.refcount, kref);
      assert.equal((pdev.iommu_group as IommuGroup).kref.refcount, iref);
      assert.equal(g?.device_list.length, 1);
      if (kernel === '4.1')
        assert.ok(host.dmesg().some((l) => l.includes(`Device ${BDF} already exists on group 3`)));
      else assert.ok(host.dmesg().some((l) => l.startsWith('WARNING')));
      if (kernel === '6.12') assert.equal(g?.drivers, 1);
    });

    it('vfio_create_group re-checks the list: a racing creator gets the existing group', () => {
      const { host } = vfioHost(Host, kernel);
      const g = groupOf(host, 3);
      const kref = g?.kref.refcount ?? 0;
      const before = host.liveObjects();
      const pdev = host.device(BDF);
      assert.ok(pdev !== undefined);
      const got = host.inKernel(() => {
        const ig = iommuGroupGet(pdev) as IommuGroup;
        const r = vfioCreateGroup(ig);
        return r;
      });
      assert.equal(got, g);
      assert.equal(g?.kref.refcount, kref + 1);
      assert.deepEqual(host.liveObjects(), before);
      assert.equal(vfioOf(host.kernel)?.group_idr.size, 1);
      assert.equal(g?.iommu_group?.notifier.length, kernel === '4.1' ? 1 : 0);
      host.inKernel(() => {
        if (g !== undefined) vfioGroupPut(g);
      });
    });
  });

  describe(`vfio_del_group_dev (${kernel})`, () => {
    it('no user: unbind completes at once, no request; device, group and node go', () => {
      const { host } = vfioHost(Host, kernel, []);
      const log: CallLog = { calls: [] };
      registerTestBusDriver(host, log, { request: true });
      const base = host.liveObjects();
      host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
      assert.equal(host.bind(BDF, 'test-vfio'), 0);
      const kt = host.unbind(BDF);
      assert.equal(kt.state, 'done');
      assert.ok(!log.calls.some((x) => x.startsWith('request')));
      assert.equal(host.device(BDF)?.driver, undefined);
      assert.equal(groupOf(host, 3), undefined);
      assert.equal(host.spawn().stat('/dev/vfio/3'), -ENOENT);
      const now = host.liveObjects();
      assert.equal(now.vfio_device, base.vfio_device);
      assert.equal(now.vfio_group, base.vfio_group);
      assert.equal(now.vfio_unbound_dev, undefined);
    });

    it('a device fd open: unbind sleeps, REQ at once and every 10 s, the last close completes it', () => {
      const { host } = vfioHost(Host, kernel, []);
      const log: CallLog = { calls: [] };
      const datas = registerTestBusDriver(host, log, { request: true });
      host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
      assert.equal(host.bind(BDF, 'test-vfio'), 0);
      const td = datas.get(BDF);
      assert.ok(td !== undefined);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      assert.equal(p.ioctl(c, 0x3b66, TEST_IOMMU), 0);
      const d = s.deviceFd(g, BDF);
      assert.ok(d >= 0);
      const clock = host.kernel.clock;
      const t0 = clock.now;
      const kt = host.unbind(BDF);
      assert.equal(kt.state, 'sleeping');
      assert.deepEqual(td.requests, [{ count: 0, timeNs: t0 }]);
      assert.equal(host.device(BDF)?.driver?.name, 'test-vfio');
      /* the group stays viable while the device is on its way out */
      assert.equal(s.status(g).flags, 3);
      assert.equal(host.bind(BDF, 'vfio-pci'), -EBUSY);
      clock.advance(10 * NSEC_PER_SEC - 1);
      assert.equal(td.requests.length, 1);
      clock.advance(1);
      assert.deepEqual(td.requests[1], { count: 1, timeNs: t0 + 10 * NSEC_PER_SEC });
      clock.advance(25 * NSEC_PER_SEC);
      assert.deepEqual(
        td.requests.map((r) => [r.count, r.timeNs - t0]),
        [
          [0, 0],
          [1, 10 * NSEC_PER_SEC],
          [2, 20 * NSEC_PER_SEC],
          [3, 30 * NSEC_PER_SEC],
        ],
      );
      const group = groupOf(host, 3);
      let d2 = -1;
      if (kernel === '4.1') {
        /* still on the device list: it can even be opened again */
        assert.equal(group?.device_list.length, 1);
        assert.equal(group?.unbound_list.length, 1);
        assert.equal(host.liveObjects().vfio_unbound_dev, 1);
        d2 = s.deviceFd(g, BDF);
        assert.ok(d2 >= 0);
      } else {
        /* left the group first */
        assert.equal(group?.device_list.length, 0);
        assert.equal(s.deviceFd(g, BDF), -ENODEV);
      }
      assert.equal(p.close(d), 0);
      if (d2 >= 0) {
        assert.equal(kt.state, 'sleeping');
        assert.equal(p.close(d2), 0);
      }
      assert.equal(kt.state, 'done');
      assert.equal(host.device(BDF)?.driver, undefined);
      assert.equal(host.liveObjects().vfio_device, undefined);
      assert.equal(host.liveObjects().vfio_unbound_dev, undefined);
      const n = td.requests.length;
      clock.advance(60 * NSEC_PER_SEC);
      assert.equal(td.requests.length, n);
      if (kernel === '4.1') {
        /* the open group fd keeps the group and its node */
        assert.equal(stat(p, '/dev/vfio/3').rdevMinor, 0);
        assert.equal(s.status(g).flags, 3);
      } else {
        /* the last device took the node and the container with it */
        assert.equal(p.stat('/dev/vfio/3'), -ENOENT);
        assert.equal(s.status(g).ret, -ENODEV);
        assert.equal(s.setContainer(g, c), -ENODEV);
        assert.equal(group?.container, undefined);
      }
      p.close(g);
      assert.equal(p.stat('/dev/vfio/3'), -ENOENT);
      assert.equal(host.liveObjects().vfio_group, undefined);
      p.exit();
    });

    it('the process exiting while an unbind waits completes the unbind', () => {
      const { host } = vfioHost(Host, kernel, []);
      const log: CallLog = { calls: [] };
      registerTestBusDriver(host, log, { request: true });
      const base = host.liveObjects();
      host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
      host.bind(BDF, 'test-vfio');
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      p.ioctl(c, 0x3b66, TEST_IOMMU);
      assert.ok(s.deviceFd(g, BDF) >= 0);
      const kt = host.unbind(BDF);
      assert.equal(kt.state, 'sleeping');
      p.exit();
      assert.equal(kt.state, 'done');
      assert.deepEqual(host.liveObjects(), base);
    });
  });
}

describe('vfio_init error paths', () => {
  const boot = (squat: (k: Kernel) => void) => {
    const k = new Kernel('4.1', { name: 'x86_64', pageSize: 4096, pageShift: 12 });
    const r = k.inKernel(() => {
      squat(k);
      k.modules.install(vfioModule);
      return k.modules.requestModule('vfio');
    });
    return { k, r };
  };

  it('misc minor 196 taken: pr_err, the error, nothing left behind', () => {
    const { k, r } = boot((k) =>
      k.chrdev.miscRegister({ minor: VFIO_MINOR, name: 'squatter', fops: { name: 'x' } }),
    );
    assert.equal(r, -EBUSY);
    assert.ok(k.log.lines().some((l) => l.endsWith('vfio: misc device register failed')));
    assert.equal(vfioOf(k), undefined);
    assert.equal(k.modules.find('vfio'), undefined);
    assert.equal(k.vfs.lookup('/sys/class/vfio'), -ENOENT);
  });

  it('no dynamic major left: the class and the misc device are undone', () => {
    const { k, r } = boot((k) => {
      for (let i = 0; i < 21; i++) k.chrdev.allocChrdevRegion(0, 1, `hog${i}`);
    });
    assert.equal(r, -EBUSY);
    assert.equal(vfioOf(k), undefined);
    assert.equal(k.vfs.lookup('/dev/vfio/vfio'), -ENOENT);
    assert.equal(k.vfs.lookup('/sys/class/vfio'), -ENOENT);
    assert.equal(k.chrdev.lookup(10, VFIO_MINOR), undefined);
  });
});

describe('the 4.1 external user API (KVM, hot reset)', () => {
  it('takes a container user and a group reference; puts them back in 4.1-rc1 order', () => {
    const { host, log } = vfioHost(Host, '4.1');
    const p = host.spawn();
    const s = new Scratch(p);
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    const g = p.open('/dev/vfio/3', O_RDWR);
    const e = p.eventfd(0, 0);
    const asP = <T>(fn: () => T): T => {
      const prev = host.kernel.enter(p.task);
      try {
        return fn();
      } finally {
        host.kernel.leave(prev);
      }
    };
    const file = (fd: number) => p.task.files.get(fd) as File;
    const group = groupOf(host, 3) as VfioGroup;
    assert.equal(
      asP(() => vfioGroupGetExternalUser(file(e))),
      -EINVAL,
    );
    assert.equal(
      asP(() => vfioGroupGetExternalUser(file(g))),
      -EINVAL,
    );
    assert.equal(group.container_users.read(), 0);
    s.setContainer(g, c);
    assert.equal(
      asP(() => vfioGroupGetExternalUser(file(g))),
      -EINVAL,
    );
    assert.equal(group.container_users.read(), 1);
    assert.equal(p.ioctl(c, 0x3b66, TEST_IOMMU), 0);
    const kref = group.kref.refcount;
    const ext = asP(() => vfioGroupGetExternalUser(file(g)));
    assert.equal(ext, group);
    assert.equal(group.container_users.read(), 2);
    assert.equal(group.kref.refcount, kref + 1);
    assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), -EBUSY);
    p.close(g);
    assert.notEqual(group.container, undefined);
    log.calls.length = 0;
    asP(() => vfioGroupPutExternalUser(group));
    assert.equal(group.container, undefined);
    assert.deepEqual(log.calls, ['test_iommu.detach(3)', 'test_iommu.release(32343)']);
    assert.equal(group.kref.refcount, kref - 1);
  });
});
