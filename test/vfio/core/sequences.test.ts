import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host, type Process } from '../../../src/index.ts';
import {
  EBUSY,
  EINVAL,
  O_RDWR,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_SET_IOMMU,
} from '../../../src/uapi/index.ts';
import { containerOf, groupOf, Scratch, TEST_IOMMU, vfioHost } from '../../helpers/vfio_core.ts';

/* whole sequences: several processes, every close order, exit at every step */
const PROFILES = ['4.1', '6.12'] as const;
const BDF = '0000:00:03.0';

/** the setup of the seeds, one step at a time */
function steps(p: Process, s: Scratch): (() => number)[] {
  const fds = { c: -1, g: -1 };
  return [
    () => (p.mmap(0n, 4096, 3, 0x22, -1, 0n) > 0n ? 0 : -1),
    () => (fds.c = p.open('/dev/vfio/vfio', O_RDWR)),
    () => (fds.g = p.open('/dev/vfio/3', O_RDWR)),
    () => s.setContainer(fds.g, fds.c),
    () => p.ioctl(fds.c, VFIO_SET_IOMMU, TEST_IOMMU),
    () => s.deviceFd(fds.g, BDF),
    () => s.deviceFd(fds.g, BDF),
    () => p.eventfd(0, 0),
  ];
}

for (const kernel of PROFILES) {
  describe(`sequences (${kernel})`, () => {
    it('process exit after every step of the setup leaves the host at its baseline', () => {
      for (let n = 0; n <= 8; n++) {
        const { host, log } = vfioHost(Host, kernel);
        const base = host.liveObjects();
        const p = host.spawn();
        const s = new Scratch(p);
        const all = steps(p, s);
        for (const step of all.slice(0, n)) assert.ok(step() >= 0, `step ${n}`);
        p.exit();
        assert.deepEqual(host.liveObjects(), base, `exit after ${n} steps`);
        const g = groupOf(host, 3);
        assert.equal(g?.container, undefined);
        assert.equal(g?.container_users.read(), 0);
        if (kernel === '4.1') assert.equal(g?.opened.read(), 0);
        else assert.equal(g?.opened_file, undefined);
        /* every open had its release */
        const opens = log.calls.filter((x) => x.endsWith('.open(32343)')).length;
        const releases = log.calls.filter((x) => x.endsWith('.release(32343)')).length;
        assert.equal(opens, releases);
        /* the group can be used again by someone else */
        const q = host.spawn();
        const t = new Scratch(q);
        const r = steps(q, t).map((f) => f());
        assert.ok(
          r.every((x) => x >= 0),
          `reuse after ${n}: ${r}`,
        );
        q.exit();
        assert.deepEqual(host.liveObjects(), base);
      }
    });

    it('two processes competing for one group: the second open is -EBUSY until the first closes', () => {
      const { host } = vfioHost(Host, kernel);
      const p1 = host.spawn();
      const p2 = host.spawn();
      const g1 = p1.open('/dev/vfio/3', O_RDWR);
      assert.ok(g1 >= 0);
      assert.equal(p2.open('/dev/vfio/3', O_RDWR), -EBUSY);
      /* p2 may have its own container meanwhile */
      const c2 = p2.open('/dev/vfio/vfio', O_RDWR);
      assert.equal(p2.ioctl(c2, VFIO_GET_API_VERSION), 0);
      p1.exit();
      const g2 = p2.open('/dev/vfio/3', O_RDWR);
      assert.ok(g2 >= 0);
      const s2 = new Scratch(p2);
      assert.equal(s2.setContainer(g2, c2), 0);
      assert.equal(p2.ioctl(c2, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.ok(s2.deviceFd(g2, BDF) >= 0);
    });

    it('a group handed over with SCM_RIGHTS stays open while either process holds it', () => {
      const { host } = vfioHost(Host, kernel);
      const base = host.liveObjects();
      const p1 = host.spawn();
      const p2 = host.spawn();
      const s1 = new Scratch(p1);
      const c1 = p1.open('/dev/vfio/vfio', O_RDWR);
      const g1 = p1.open('/dev/vfio/3', O_RDWR);
      assert.equal(s1.setContainer(g1, c1), 0);
      const g2 = p1.passFd(g1, p2);
      const c2 = p1.passFd(c1, p2);
      assert.ok(g2 >= 0 && c2 >= 0);
      p1.exit();
      const group = groupOf(host, 3);
      assert.equal(group?.container_users.read(), 1);
      const s2 = new Scratch(p2);
      assert.equal(s2.status(g2).flags, 3);
      assert.equal(p2.ioctl(c2, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.ok(s2.deviceFd(g2, BDF) >= 0);
      p2.exit();
      assert.deepEqual(host.liveObjects(), base);
    });

    it('two groups of two processes in one shared container', () => {
      const { host, log } = vfioHost(Host, kernel, [
        { bdf: BDF, group: 3 },
        { bdf: '0000:00:04.0', group: 4 },
      ]);
      const base = host.liveObjects();
      const p1 = host.spawn();
      const p2 = host.spawn();
      const s1 = new Scratch(p1);
      const s2 = new Scratch(p2);
      const c1 = p1.open('/dev/vfio/vfio', O_RDWR);
      const c2 = p1.passFd(c1, p2);
      const g1 = p1.open('/dev/vfio/3', O_RDWR);
      const g2 = p2.open('/dev/vfio/4', O_RDWR);
      assert.equal(s1.setContainer(g1, c1), 0);
      assert.equal(s2.setContainer(g2, c2), 0);
      assert.equal(p2.ioctl(c2, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      assert.deepEqual(log.calls.slice(-2), ['test_iommu.attach(4)', 'test_iommu.attach(3)']);
      const container = containerOf(p1, c1);
      assert.equal(container.kref.refcount, 3);
      p1.exit();
      /* p1's group left; the driver stays for p2's */
      assert.deepEqual(log.calls.slice(-1), ['test_iommu.detach(3)']);
      assert.notEqual(container.iommu_driver, undefined);
      assert.ok(s2.deviceFd(g2, '0000:00:04.0') >= 0);
      p2.exit();
      assert.deepEqual(log.calls.slice(-2), ['test_iommu.detach(4)', 'test_iommu.release(32343)']);
      assert.deepEqual(host.liveObjects(), base);
    });

    it('closing in every order: container, group, device', () => {
      const orders = [
        ['c', 'g', 'd'],
        ['c', 'd', 'g'],
        ['g', 'c', 'd'],
        ['g', 'd', 'c'],
        ['d', 'c', 'g'],
        ['d', 'g', 'c'],
      ] as const;
      for (const order of orders) {
        const { host, log } = vfioHost(Host, kernel);
        const base = host.liveObjects();
        const p = host.spawn();
        const s = new Scratch(p);
        const fds = {
          c: p.open('/dev/vfio/vfio', O_RDWR),
          g: p.open('/dev/vfio/3', O_RDWR),
          d: -1,
        };
        s.setContainer(fds.g, fds.c);
        p.ioctl(fds.c, VFIO_SET_IOMMU, TEST_IOMMU);
        fds.d = s.deviceFd(fds.g, BDF);
        for (const k of order) assert.equal(p.close(fds[k]), 0, order.join());
        assert.deepEqual(
          log.calls.slice(-2),
          ['test_iommu.detach(3)', 'test_iommu.release(32343)'],
          order.join(),
        );
        assert.equal(groupOf(host, 3)?.container, undefined);
        p.exit();
        assert.deepEqual(host.liveObjects(), base, order.join());
      }
    });

    it('UNSET_CONTAINER and SET_CONTAINER again, to another container', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c1 = p.open('/dev/vfio/vfio', O_RDWR);
      const c2 = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, c1), 0);
      assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), 0);
      assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), -EINVAL);
      assert.equal(s.setContainer(g, c2), 0);
      assert.equal(containerOf(p, c1).kref.refcount, 1);
      assert.equal(containerOf(p, c2).kref.refcount, 2);
      assert.equal(p.ioctl(c1, VFIO_SET_IOMMU, TEST_IOMMU), -EINVAL);
      assert.equal(p.ioctl(c2, VFIO_SET_IOMMU, TEST_IOMMU), 0);
    });
  });
}
