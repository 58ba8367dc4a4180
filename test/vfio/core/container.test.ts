import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../../src/index.ts';
import { type File, Module } from '../../../src/kernel/index.ts';
import {
  EBADF,
  EBUSY,
  EINVAL,
  EIO,
  ENODEV,
  ENOMEM,
  EPERM,
  MAP_SHARED,
  O_RDONLY,
  O_RDWR,
  PROT_READ,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_IOMMU_GET_INFO,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
} from '../../../src/uapi/index.ts';
import { vfioOf } from '../../../src/vfio/index.ts';
import { userAlloc } from '../../helpers/user.ts';
import {
  type CallLog,
  containerOf,
  groupOf,
  registerIommu,
  Scratch,
  TEST_IOMMU,
  TestIommuData,
  testIommuOps,
  unregisterIommu,
  vfioHost,
} from '../../helpers/vfio_core.ts';

/* the container: /dev/vfio/vfio, the IOMMU driver registry, CHECK_EXTENSION and SET_IOMMU */
const PROFILES = ['4.1', '6.12'] as const;

function liveModule(name: string): Module {
  const m = new Module({ name, init: () => 0 });
  m.state = 'live';
  return m;
}

/** three groups, each with one vfio-pci device: 3, 5, 7 */
function threeGroups(kernel: '4.1' | '6.12') {
  return vfioHost(Host, kernel, [
    { bdf: '0000:00:03.0', group: 3 },
    { bdf: '0000:00:05.0', group: 5 },
    { bdf: '0000:00:07.0', group: 7 },
  ]);
}

for (const kernel of PROFILES) {
  describe(`container fd (${kernel})`, () => {
    it('open creates a container with kref 1 and no driver; close frees it', () => {
      const { host } = vfioHost(Host, kernel);
      const base = host.liveObjects();
      const p = host.spawn();
      const fd = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(fd, 0);
      const c = containerOf(p, fd);
      assert.equal(c.kref.refcount, 1);
      assert.equal(c.iommu_driver, undefined);
      assert.equal(c.group_list.length, 0);
      assert.equal(host.liveObjects().vfio_container, 1);
      assert.equal(p.close(fd), 0);
      assert.equal(host.liveObjects().vfio_container, undefined);
      p.exit();
      assert.deepEqual(host.liveObjects(), base);
    });

    it('GET_API_VERSION returns VFIO_API_VERSION (0) whatever the argument', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const fd = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(VFIO_API_VERSION, 0);
      assert.equal(p.ioctl(fd, VFIO_GET_API_VERSION), 0);
      assert.equal(p.ioctl(fd, VFIO_GET_API_VERSION, 0xdeadbeefn), 0);
      assert.equal(p.ioctl(fd, VFIO_GET_API_VERSION, -1), 0);
    });

    it('an unknown ioctl without an IOMMU driver is -EINVAL (not -ENOTTY)', () => {
      const { host, log } = vfioHost(Host, kernel);
      const p = host.spawn();
      const fd = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(p.ioctl(fd, VFIO_IOMMU_GET_INFO, 0), -EINVAL);
      assert.equal(p.ioctl(fd, 0x1234, 0), -EINVAL);
      assert.deepEqual(log.calls, []);
    });

    it('an unknown ioctl with a driver set is passed through with iommu_data', () => {
      const log: CallLog = { calls: [] };
      const seen: (object | null)[] = [];
      const { host } = vfioHost(Host, kernel);
      const ops = testIommuOps(log, {
        name: 'pass',
        ioctl: (data, cmd, arg) => {
          seen.push(data);
          return cmd === VFIO_IOMMU_GET_INFO ? Number(arg) + 1 : -EIO;
        },
      });
      registerIommu(host, ops);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, c), 0);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.equal(p.ioctl(c, VFIO_IOMMU_GET_INFO, 41), 42);
      assert.equal(p.ioctl(c, 0x1234, 0), -EIO);
      assert.ok(seen[0] instanceof TestIommuData);
      assert.equal(seen[0], containerOf(p, c).iommu_data);
      assert.ok(log.calls.includes(`pass.ioctl(0x${VFIO_IOMMU_GET_INFO.toString(16)},41)`));
    });

    it('read/write/mmap without an IOMMU driver', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const buf = userAlloc(p, 4096);
      const fd = p.open('/dev/vfio/vfio', O_RDWR);
      /* 4.1: the fops exist and answer -EINVAL; 6.12: no fops, the VFS says -EINVAL / -ENODEV */
      assert.equal(p.read(fd, buf, 8), -EINVAL);
      assert.equal(p.write(fd, buf, 8), -EINVAL);
      assert.equal(
        p.mmap(0n, 4096, PROT_READ, MAP_SHARED, fd, 0n),
        BigInt(kernel === '4.1' ? -EINVAL : -ENODEV),
      );
      /* opened read-only: the VFS refuses a write before the driver is asked */
      const ro = p.open('/dev/vfio/vfio', O_RDONLY);
      assert.equal(p.write(ro, buf, 8), -EBADF);
    });

    it('read/write/mmap with a driver: 4.1 passes them to the driver ops, 6.12 has none', () => {
      const log: CallLog = { calls: [] };
      const { host } = vfioHost(Host, kernel);
      const ops = testIommuOps(log, {
        name: 'rw',
        read: (_d, _b, count) => count + 100,
        write: (_d, _b, count) => count + 200,
        mmap: () => -EPERM,
      });
      registerIommu(host, ops);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      if (kernel === '4.1') {
        assert.equal(p.read(c, s.addr, 8), 108);
        assert.equal(p.write(c, s.addr, 8), 208);
        assert.equal(p.mmap(0n, 4096, PROT_READ, MAP_SHARED, c, 0n), BigInt(-EPERM));
      } else {
        assert.equal(p.read(c, s.addr, 8), -EINVAL);
        assert.equal(p.write(c, s.addr, 8), -EINVAL);
        assert.equal(p.mmap(0n, 4096, PROT_READ, MAP_SHARED, c, 0n), BigInt(-ENODEV));
      }
    });

    it('read with a driver that has no read op is -EINVAL', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.equal(p.read(c, s.addr, 8), -EINVAL);
      assert.equal(p.write(c, s.addr, 8), -EINVAL);
    });

    it('closing the container before the group keeps it alive through the group', () => {
      const { host, log } = vfioHost(Host, kernel);
      const base = host.liveObjects();
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, c), 0);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      const container = containerOf(p, c);
      assert.equal(container.kref.refcount, 2);
      assert.equal(p.close(c), 0);
      assert.equal(container.kref.refcount, 1);
      assert.equal(host.liveObjects().vfio_container, 1);
      assert.notEqual(container.iommu_driver, undefined);
      assert.equal(s.status(g).flags, VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
      /* the device is still reachable: the container lives on */
      const dev = s.deviceFd(g, '0000:00:03.0');
      assert.ok(dev >= 0);
      assert.equal(p.close(dev), 0);
      assert.equal(p.close(g), 0);
      assert.equal(container.kref.refcount, 0);
      assert.equal(container.iommu_driver, undefined);
      assert.deepEqual(log.calls.slice(-2), ['test_iommu.detach(3)', 'test_iommu.release(32343)']);
      p.exit();
      assert.deepEqual(host.liveObjects(), base);
    });
  });

  describe(`vfio_register_iommu_driver (${kernel})`, () => {
    it('registering the same ops twice is -EINVAL and leaves the list alone', () => {
      const { host, ops } = vfioHost(Host, kernel);
      const v = vfioOf(host.kernel);
      assert.equal(v?.iommu_drivers_list.length, 1);
      const before = host.liveObjects();
      assert.equal(registerIommu(host, ops), -EINVAL);
      assert.equal(v?.iommu_drivers_list.length, 1);
      assert.deepEqual(host.liveObjects(), before);
      assert.ok(host.dmesg().some((l) => l.includes('-EINVAL') && l.includes('already registered')));
    });

    it('list_add puts the newest driver first; unregister removes it, twice is harmless', () => {
      const { host, ops } = vfioHost(Host, kernel);
      const log: CallLog = { calls: [] };
      const b = testIommuOps(log, { name: 'b' });
      assert.equal(registerIommu(host, b), 0);
      const v = vfioOf(host.kernel);
      assert.deepEqual(
        v?.iommu_drivers_list.map((d) => d.ops.name),
        ['b', 'test_iommu'],
      );
      assert.equal(host.liveObjects().vfio_iommu_driver, 2);
      unregisterIommu(host, b);
      unregisterIommu(host, b);
      assert.deepEqual(
        v?.iommu_drivers_list.map((d) => d.ops),
        [ops],
      );
      assert.equal(host.liveObjects().vfio_iommu_driver, 1);
    });
  });

  describe(`VFIO_CHECK_EXTENSION (${kernel})`, () => {
    it('no driver registered: 0', () => {
      const { host, ops } = vfioHost(Host, kernel);
      unregisterIommu(host, ops);
      const p = host.spawn();
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, TEST_IOMMU), 0);
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU), 0);
    });

    it('polls drivers newest first with NULL data and stops at the first positive answer', () => {
      const log: CallLog = { calls: [] };
      const { host, ops } = vfioHost(Host, kernel);
      unregisterIommu(host, ops);
      registerIommu(host, testIommuOps(log, { name: 'a', types: [1n, 2n] }));
      registerIommu(host, testIommuOps(log, { name: 'b', types: [2n, 3n] }));
      const p = host.spawn();
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, 2), 1);
      assert.deepEqual(log.calls, ['b.check(null,2)']);
      log.calls.length = 0;
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, 1), 1);
      assert.deepEqual(log.calls, ['b.check(null,1)', 'a.check(null,1)']);
      log.calls.length = 0;
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, 9), 0);
      assert.deepEqual(log.calls, ['b.check(null,9)', 'a.check(null,9)']);
    });

    it('returns the last answer when none is positive (a negative one included)', () => {
      const { host, ops } = vfioHost(Host, kernel);
      unregisterIommu(host, ops);
      const log: CallLog = { calls: [] };
      const neg = testIommuOps(log, { name: 'neg' });
      registerIommu(host, { ...neg, ioctl: () => -ENOMEM });
      registerIommu(host, testIommuOps(log, { name: 'zero', types: [] }));
      const p = host.spawn();
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, 5), -ENOMEM);
    });

    it('skips a driver whose module is going away (try_module_get fails), keeps refcounts', () => {
      const { host, ops } = vfioHost(Host, kernel);
      unregisterIommu(host, ops);
      const log: CallLog = { calls: [] };
      const going = liveModule('going_iommu');
      going.state = 'going';
      const live = liveModule('live_iommu');
      registerIommu(host, testIommuOps(log, { name: 'live', owner: live }));
      registerIommu(host, testIommuOps(log, { name: 'going', owner: going }));
      const p = host.spawn();
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, TEST_IOMMU), 1);
      assert.deepEqual(log.calls, ['live.check(null,32343)']);
      assert.equal(live.refcnt, 0);
      assert.equal(going.refcnt, 0);
    });

    it('once a driver is set only that driver is asked, with its iommu_data', () => {
      const log: CallLog = { calls: [] };
      const { host } = vfioHost(Host, kernel);
      registerIommu(host, testIommuOps(log, { name: 'other', types: [TEST_IOMMU, 77n] }));
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      /* 'other' is newest: it claims TEST_IOMMU */
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      log.calls.length = 0;
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, 77), 1);
      assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, 78), 0);
      assert.deepEqual(log.calls, ['other.check(data,77)', 'other.check(data,78)']);
    });
  });

  describe(`VFIO_SET_IOMMU (${kernel})`, () => {
    it('-EINVAL on a container without groups; -EINVAL once a driver is set', () => {
      const { host, log } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), -EINVAL);
      assert.equal(log.calls.length, 0);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, c), 0);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), -EINVAL);
      assert.equal(log.calls.filter((x) => x.endsWith('.open(32343)')).length, 1);
    });

    it('-ENODEV when no driver claims the type; nothing opened', () => {
      const { host, log } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, 12345), -ENODEV);
      assert.deepEqual(log.calls, ['test_iommu.check(null,12345)']);
      assert.equal(containerOf(p, c).iommu_driver, undefined);
    });

    it('success: open, attach every group, keep the module reference until the last group leaves', () => {
      const log: CallLog = { calls: [] };
      const { host, ops } = threeGroups(kernel);
      unregisterIommu(host, ops);
      const mod = liveModule('mod_iommu');
      const drv = testIommuOps(log, { name: 'm', owner: mod });
      registerIommu(host, drv);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const gs = [3, 5, 7].map((id) => p.open(`/dev/vfio/${id}`, O_RDWR));
      for (const g of gs) assert.equal(s.setContainer(g, c), 0);
      const container = containerOf(p, c);
      /* list_add: the group attached last is first */
      assert.deepEqual(
        container.group_list.map((g) => g.iommu_group?.id),
        [7, 5, 3],
      );
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.deepEqual(log.calls, [
        'm.check(null,32343)',
        'm.open(32343)',
        'm.attach(7)',
        'm.attach(5)',
        'm.attach(3)',
      ]);
      assert.equal(container.iommu_driver?.ops, drv);
      assert.deepEqual(
        (container.iommu_data as TestIommuData).groups.map((g) => g.id),
        [7, 5, 3],
      );
      assert.equal(mod.refcnt, 1);
      log.calls.length = 0;
      for (const g of gs) p.close(g);
      assert.deepEqual(log.calls, ['m.detach(3)', 'm.detach(5)', 'm.detach(7)', 'm.release(32343)']);
      assert.equal(mod.refcnt, 0);
      assert.equal(container.iommu_driver, undefined);
      assert.equal(container.iommu_data, undefined);
    });

    it('attach failing on the 2nd group detaches the 1st in reverse, releases, drops the module', () => {
      const log: CallLog = { calls: [] };
      const { host, ops } = threeGroups(kernel);
      unregisterIommu(host, ops);
      const mod = liveModule('fail_iommu');
      registerIommu(host, testIommuOps(log, { name: 'f', owner: mod, attachFailAt: 3, attachErr: -EBUSY }));
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      for (const id of [3, 5, 7]) s.setContainer(p.open(`/dev/vfio/${id}`, O_RDWR), c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), -EBUSY);
      assert.deepEqual(log.calls, [
        'f.check(null,32343)',
        'f.open(32343)',
        'f.attach(7)',
        'f.attach(5)',
        'f.attach(3)',
        'f.detach(5)',
        'f.detach(7)',
        'f.release(32343)',
      ]);
      assert.equal(mod.refcnt, 0);
      assert.equal(containerOf(p, c).iommu_driver, undefined);
    });

    it('open failing: 4.1 stops at the first claiming driver, 6.12 tries the next one', () => {
      const log: CallLog = { calls: [] };
      const { host, ops } = vfioHost(Host, kernel);
      unregisterIommu(host, ops);
      const good = testIommuOps(log, { name: 'good' });
      registerIommu(host, good);
      registerIommu(host, testIommuOps(log, { name: 'bad', openErr: -ENOMEM }));
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      s.setContainer(p.open('/dev/vfio/3', O_RDWR), c);
      const r = p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU);
      if (kernel === '4.1') {
        assert.equal(r, -ENOMEM);
        assert.deepEqual(log.calls, ['bad.check(null,32343)', 'bad.open(32343)']);
        assert.equal(containerOf(p, c).iommu_driver, undefined);
      } else {
        assert.equal(r, 0);
        assert.deepEqual(log.calls, [
          'bad.check(null,32343)',
          'bad.open(32343)',
          'good.check(null,32343)',
          'good.open(32343)',
          'good.attach(3)',
        ]);
        assert.equal(containerOf(p, c).iommu_driver?.ops, good);
      }
    });

    it('attach failing: 4.1 returns that error, 6.12 continues and returns the last error', () => {
      const log: CallLog = { calls: [] };
      const { host, ops } = vfioHost(Host, kernel);
      unregisterIommu(host, ops);
      registerIommu(host, testIommuOps(log, { name: 'x', attachFailAt: 1, attachErr: -EPERM }));
      registerIommu(host, testIommuOps(log, { name: 'y', attachFailAt: 1, attachErr: -EBUSY }));
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      s.setContainer(p.open('/dev/vfio/3', O_RDWR), c);
      const r = p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU);
      if (kernel === '4.1') {
        assert.equal(r, -EBUSY);
        assert.deepEqual(log.calls, [
          'y.check(null,32343)',
          'y.open(32343)',
          'y.attach(3)',
          'y.release(32343)',
        ]);
      } else {
        assert.equal(r, -EPERM);
        assert.deepEqual(log.calls, [
          'y.check(null,32343)',
          'y.open(32343)',
          'y.attach(3)',
          'y.release(32343)',
          'x.check(null,32343)',
          'x.open(32343)',
          'x.attach(3)',
          'x.release(32343)',
        ]);
      }
      assert.equal(containerOf(p, c).iommu_driver, undefined);
    });

    it('a driver whose module is going away is skipped', () => {
      const log: CallLog = { calls: [] };
      const { host, ops } = vfioHost(Host, kernel);
      const going = liveModule('going');
      going.state = 'going';
      registerIommu(host, testIommuOps(log, { name: 'going', owner: going }));
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      s.setContainer(p.open('/dev/vfio/3', O_RDWR), c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.equal(containerOf(p, c).iommu_driver?.ops, ops);
      assert.ok(!log.calls.some((x) => x.startsWith('going.')));
    });

    it('SET_CONTAINER on a container with a driver attaches the new group at once', () => {
      const { host, log } = threeGroups(kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      s.setContainer(p.open('/dev/vfio/3', O_RDWR), c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      log.calls.length = 0;
      const g5 = p.open('/dev/vfio/5', O_RDWR);
      assert.equal(s.setContainer(g5, c), 0);
      assert.deepEqual(log.calls, ['test_iommu.attach(5)']);
      assert.equal(groupOf(host, 5)?.container, containerOf(p, c));
      assert.equal(containerOf(p, c).kref.refcount, 3);
    });

    it('SET_CONTAINER whose attach_group fails leaves the group out of the container', () => {
      const log: CallLog = { calls: [] };
      const { host, ops } = threeGroups(kernel);
      unregisterIommu(host, ops);
      registerIommu(host, testIommuOps(log, { name: 'two', attachFailAt: 2, attachErr: -EBUSY }));
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      s.setContainer(p.open('/dev/vfio/3', O_RDWR), c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      const g5 = p.open('/dev/vfio/5', O_RDWR);
      assert.equal(s.setContainer(g5, c), -EBUSY);
      const g = groupOf(host, 5);
      assert.equal(g?.container, undefined);
      assert.equal(g?.container_users.read(), 0);
      assert.equal(containerOf(p, c).kref.refcount, 2);
      assert.equal(containerOf(p, c).group_list.length, 1);
      assert.equal(s.status(g5).flags, VFIO_GROUP_FLAGS_VIABLE);
      if (kernel === '6.12') assert.equal(g?.iommu_group?.owner_cnt, 0);
    });
  });
}

describe('f_op identity', () => {
  it('the container file carries vfio_fops of its kernel', () => {
    const { host } = vfioHost(Host, '4.1');
    const p = host.spawn();
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    const f = p.task.files.get(c) as File;
    assert.equal(f.f_op, vfioOf(host.kernel)?.fops);
  });
});
