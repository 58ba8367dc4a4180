import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../../src/index.ts';
import {
  EBADF,
  EBADFD,
  EBUSY,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOENT,
  ENOTTY,
  MAJOR,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_SET_IOMMU,
  vfio_group_status,
} from '../../../src/uapi/index.ts';
import { vfioOf } from '../../../src/vfio/index.ts';
import { putS32 } from '../../helpers/user.ts';
import { containerOf, groupOf, Scratch, TEST_IOMMU, vfioHost } from '../../helpers/vfio_core.ts';

/* the group fd: open/release, GET_STATUS, SET_CONTAINER, UNSET_CONTAINER */
const PROFILES = ['4.1', '6.12'] as const;
const VIABLE = VFIO_GROUP_FLAGS_VIABLE;
const SET = VFIO_GROUP_FLAGS_CONTAINER_SET;

for (const kernel of PROFILES) {
  describe(`group open/release (${kernel})`, () => {
    it('a group opens once: the second open is -EBUSY, state is untouched', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(g, 0);
      const group = groupOf(host, 3);
      const kref = group?.kref.refcount;
      assert.equal(p.open('/dev/vfio/3', O_RDWR), -EBUSY);
      assert.equal(group?.kref.refcount, kref);
      if (kernel === '4.1') assert.equal(group?.opened.read(), 1);
      else assert.notEqual(group?.opened_file, undefined);
      assert.equal(p.close(g), 0);
      if (kernel === '4.1') assert.equal(group?.opened.read(), 0);
      else assert.equal(group?.opened_file, undefined);
      assert.equal(group?.kref.refcount, (kref ?? 0) - 1);
      assert.equal(p.open('/dev/vfio/3', O_RDWR), 0);
    });

    it('a group that does not exist: no node (-ENOENT); a node without a group minor (-ENODEV)', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      assert.equal(p.open('/dev/vfio/99', O_RDWR), -ENOENT);
      /* mknod /dev/vfio/stale c <vfio major> 77 */
      const major = MAJOR(vfioOf(host.kernel)?.group_devt ?? 0);
      host.kernel.vfs.add('/dev/vfio/stale', { kind: 'chr', major, minor: 77, mode: 0o600, uid: 0, gid: 0 });
      const before = host.liveObjects();
      assert.equal(p.open('/dev/vfio/stale', O_RDWR), -ENODEV);
      assert.deepEqual(host.liveObjects(), before);
      /* a failed open leaves the fd free */
      assert.equal(p.open('/dev/vfio/vfio', O_RDWR), 0);
    });

    it('an unknown group ioctl is -ENOTTY', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(p.ioctl(g, VFIO_SET_IOMMU, TEST_IOMMU), -ENOTTY);
      assert.equal(p.ioctl(g, 0x3b00 + 200, 0), -ENOTTY);
      assert.equal(p.ioctl(g, 0, 0), -ENOTTY);
    });
  });

  describe(`VFIO_GROUP_GET_STATUS (${kernel})`, () => {
    it('flags: VIABLE alone, then VIABLE|CONTAINER_SET, back to VIABLE', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.deepEqual(s.status(g), { ret: 0, argsz: 8, flags: VIABLE });
      assert.equal(s.setContainer(g, c), 0);
      assert.deepEqual(s.status(g), { ret: 0, argsz: 8, flags: VIABLE | SET });
      assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), 0);
      assert.deepEqual(s.status(g), { ret: 0, argsz: 8, flags: VIABLE });
    });

    it('argsz < 8 is -EINVAL and the struct is not written; a larger argsz is fine and kept', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      for (const argsz of [0, 1, 7]) {
        p.mem.write(s.addr, vfio_group_status.encode({ argsz, flags: 0xdead }));
        assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, s.addr), -EINVAL);
        assert.deepEqual(vfio_group_status.decode(p.mem.read(s.addr, 8)), { argsz, flags: 0xdead });
      }
      p.mem.write(s.addr, vfio_group_status.encode({ argsz: 0xffffffff, flags: 0xdead }));
      p.mem.write(s.addr + 8n, new Uint8Array([0xaa]));
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, s.addr), 0);
      assert.deepEqual(vfio_group_status.decode(p.mem.read(s.addr, 8)), { argsz: 0xffffffff, flags: VIABLE });
      /* only minsz bytes are written back */
      assert.deepEqual([...p.mem.read(s.addr + 8n, 1)], [0xaa]);
    });

    it('unreadable or unwritable argument: -EFAULT', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, 0), -EFAULT);
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, 0x10000n), -EFAULT);
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, 0xffff_ffff_ffff_fff0n), -EFAULT);
      /* the struct straddles the end of a mapping */
      const page = p.mmap(
        0x4000_0000n,
        4096,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0n,
      );
      p.mem.write(page + 4092n, new Uint8Array([8, 0, 0, 0]));
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, page + 4092n), -EFAULT);
      /* readable but not writable: the read succeeds, copy_to_user fails */
      p.mem.write(page, vfio_group_status.encode({ argsz: 8, flags: 0x55 }));
      assert.equal(p.mprotect(page, 4096, PROT_READ), 0);
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, page), -EFAULT);
      assert.deepEqual(vfio_group_status.decode(p.mem.read(page, 8)), { argsz: 8, flags: 0x55 });
    });
  });

  describe(`VFIO_GROUP_SET_CONTAINER (${kernel})`, () => {
    it('success: group->container, list, container kref and container_users', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, c), 0);
      const group = groupOf(host, 3);
      const container = containerOf(p, c);
      assert.equal(group?.container, container);
      assert.deepEqual(container.group_list, [group]);
      assert.equal(container.kref.refcount, 2);
      assert.equal(group?.container_users.read(), 1);
      if (kernel === '6.12') {
        assert.equal(group?.iommu_group?.owner_cnt, 1);
        assert.equal(group?.iommu_group?.owner, group);
      }
    });

    it('argument not readable: -EFAULT', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, 0), -EFAULT);
      assert.equal(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, 1n << 62n), -EFAULT);
    });

    it('negative fd: 4.1 -EINVAL (explicit check), 6.12 -EBADF (fdget)', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      const want = kernel === '4.1' ? -EINVAL : -EBADF;
      assert.equal(s.setContainer(g, -1), want);
      assert.equal(s.setContainer(g, -0x80000000), want);
    });

    it('a closed fd is -EBADF; a non-container fd is 4.1 -EINVAL, 6.12 -EBADFD', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, 17), -EBADF);
      const efd = p.eventfd(0, 0);
      const want = kernel === '4.1' ? -EINVAL : -EBADFD;
      assert.equal(s.setContainer(g, efd), want);
      assert.equal(s.setContainer(g, g), want);
      const sys = p.open('/sys/bus/pci/devices/0000:00:03.0/vendor', 0);
      assert.equal(s.setContainer(g, sys), want);
      assert.equal(groupOf(host, 3)?.container, undefined);
    });

    it('already attached: -EINVAL; check order differs (4.1 users first, 6.12 fdget first)', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const c2 = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.setContainer(g, c), 0);
      assert.equal(s.setContainer(g, c2), -EINVAL);
      assert.equal(s.setContainer(g, c), -EINVAL);
      /* attached and given a closed fd */
      assert.equal(s.setContainer(g, 40), kernel === '4.1' ? -EINVAL : -EBADF);
      /* attached and given a negative fd: both see the fd first, with their own errno */
      assert.equal(s.setContainer(g, -1), kernel === '4.1' ? -EINVAL : -EBADF);
      assert.equal(containerOf(p, c2).kref.refcount, 1);
      assert.equal(containerOf(p, c).kref.refcount, 2);
    });

    it('two groups in one container: list head is the newest', () => {
      const { host } = vfioHost(Host, kernel, [
        { bdf: '0000:00:03.0', group: 3 },
        { bdf: '0000:00:04.0', group: 4 },
      ]);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g3 = p.open('/dev/vfio/3', O_RDWR);
      const g4 = p.open('/dev/vfio/4', O_RDWR);
      assert.equal(s.setContainer(g3, c), 0);
      assert.equal(s.setContainer(g4, c), 0);
      assert.deepEqual(
        containerOf(p, c).group_list.map((g) => g.iommu_group?.id),
        [4, 3],
      );
      assert.equal(containerOf(p, c).kref.refcount, 3);
    });
  });

  describe(`VFIO_GROUP_UNSET_CONTAINER (${kernel})`, () => {
    it('not attached: -EINVAL', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), -EINVAL);
    });

    it('attached with a device fd open: -EBUSY, nothing changes', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      const d = s.deviceFd(g, '0000:00:03.0');
      assert.ok(d >= 0);
      assert.equal(groupOf(host, 3)?.container_users.read(), 2);
      assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), -EBUSY);
      assert.equal(groupOf(host, 3)?.container_users.read(), 2);
      assert.equal(groupOf(host, 3)?.container, containerOf(p, c));
      p.close(d);
      assert.equal(groupOf(host, 3)?.container_users.read(), 1);
      assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), 0);
    });

    it('the last group out deprivileges the container: detach, release, module put', () => {
      const { host, log } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
      log.calls.length = 0;
      assert.equal(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER), 0);
      assert.deepEqual(log.calls, ['test_iommu.detach(3)', 'test_iommu.release(32343)']);
      const container = containerOf(p, c);
      assert.equal(container.iommu_driver, undefined);
      assert.equal(container.group_list.length, 0);
      assert.equal(container.kref.refcount, 1);
      const group = groupOf(host, 3);
      assert.equal(group?.container, undefined);
      assert.equal(group?.container_users.read(), 0);
      if (kernel === '6.12') assert.equal(group?.iommu_group?.owner_cnt, 0);
      /* the container can be used again from scratch */
      assert.equal(s.setContainer(g, c), 0);
      assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
    });
  });

  describe(`group release (${kernel})`, () => {
    it('closing the group fd of an attached group detaches it and drops the container ref', () => {
      const { host, log } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU);
      log.calls.length = 0;
      assert.equal(p.close(g), 0);
      assert.deepEqual(log.calls, ['test_iommu.detach(3)', 'test_iommu.release(32343)']);
      assert.equal(containerOf(p, c).kref.refcount, 1);
      assert.equal(groupOf(host, 3)?.container, undefined);
    });

    it('closing the group while a device fd is open, then reopening it: -EBUSY until the device closes', () => {
      const { host, log } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      s.setContainer(g, c);
      p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU);
      const d = s.deviceFd(g, '0000:00:03.0');
      assert.ok(d >= 0);
      log.calls.length = 0;
      assert.equal(p.close(g), 0);
      const group = groupOf(host, 3);
      if (kernel === '4.1') {
        /* release ran: one container user dropped, opened cleared, still attached */
        assert.equal(group?.container_users.read(), 1);
        assert.equal(group?.opened.read(), 0);
      } else {
        /* the device fd holds the group file: release has not run */
        assert.equal(group?.container_users.read(), 2);
        assert.notEqual(group?.opened_file, undefined);
      }
      assert.notEqual(group?.container, undefined);
      assert.deepEqual(log.calls, []);
      assert.equal(p.open('/dev/vfio/3', O_RDWR), -EBUSY);
      assert.equal(p.close(d), 0);
      assert.equal(group?.container, undefined);
      assert.equal(group?.container_users.read(), 0);
      assert.deepEqual(log.calls, ['test_iommu.detach(3)', 'test_iommu.release(32343)']);
      const g2 = p.open('/dev/vfio/3', O_RDWR);
      assert.ok(g2 >= 0);
      assert.deepEqual(s.status(g2), { ret: 0, argsz: 8, flags: VIABLE });
    });
  });
}

describe('SET_CONTAINER reads a 32-bit fd', () => {
  it('the upper half of a 64-bit slot is ignored', () => {
    const { host } = vfioHost(Host, '4.1');
    const p = host.spawn();
    const s = new Scratch(p);
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    const g = p.open('/dev/vfio/3', O_RDWR);
    putS32(p, s.addr + 4n, -1);
    putS32(p, s.addr, c);
    assert.equal(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s.addr), 0);
  });
});
