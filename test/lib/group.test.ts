import assert from 'node:assert/strict';
import { test } from 'node:test';
import { iommuGroupOf, VfioContainer, VfioGroup } from '../../src/lib/index.ts';
import {
  EBADF,
  EBUSY,
  EINVAL,
  ENOENT,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
} from '../../src/uapi/index.ts';
import { assertBaseline, assertClosed, machine, throwsVfio } from './fixture.ts';

const A = { bdf: '0000:00:03.0', group: 3 };
const B_HOST = { bdf: '0000:00:04.0', group: 3, driver: 'e1000e' };
const C = { bdf: '0000:00:05.0', group: 5 };

test('the IOMMU group of a device from its sysfs link', () => {
  const m = machine([A, C]);
  assert.equal(iommuGroupOf(m.p, '0000:00:03.0'), 3);
  assert.equal(iommuGroupOf(m.p, '0000:00:05.0'), 5);
  throwsVfio(() => iommuGroupOf(m.p, '0000:00:1f.0'), {
    errno: ENOENT,
    code: 'ENOENT',
    syscall: 'readlink',
    message:
      /^readlink\("\/sys\/bus\/pci\/devices\/0000:00:1f.0\/iommu_group"\) failed: ENOENT \(No such file or directory\)/,
  });
  using g = VfioGroup.forDevice(m.p, '0000:00:05.0');
  assert.equal(g.id, 5);
  assert.deepEqual(g.status(), { flags: VFIO_GROUP_FLAGS_VIABLE, viable: true, containerSet: false });
});

test('status: not viable while a device of the group has a host driver', () => {
  const m = machine([A, B_HOST]);
  using g = VfioGroup.open(m.p, 3);
  assert.deepEqual(g.status(), { flags: 0, viable: false, containerSet: false });
});

test('a group opens once: EBUSY for the second open', () => {
  const m = machine([A]);
  using g = VfioGroup.open(m.p, 3);
  throwsVfio(() => VfioGroup.open(m.p, 3), {
    errno: EBUSY,
    code: 'EBUSY',
    syscall: 'open',
    message:
      'open("/dev/vfio/3", O_RDWR) failed: EBUSY (Device or resource busy): open /dev/vfio/3: the group is already open',
  });
  assert.equal(g.id, 3);
});

test('set and unset the container, with the kernel errors on the way', () => {
  const m = machine([A]);
  using c = VfioContainer.open(m.p);
  using g = VfioGroup.open(m.p, 3);
  throwsVfio(() => g.unsetContainer(), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_GROUP_UNSET_CONTAINER',
    fd: g.fd,
    message: `VFIO_GROUP_UNSET_CONTAINER() on fd ${g.fd} failed: EINVAL (Invalid argument): the group is not in a container`,
  });
  throwsVfio(() => g.setContainer(99), {
    errno: EBADF,
    code: 'EBADF',
    request: 'VFIO_GROUP_SET_CONTAINER',
    message: `VFIO_GROUP_SET_CONTAINER(99) on fd ${g.fd} failed: EBADF (Bad file descriptor): fd 99 is not open`,
  });
  throwsVfio(() => g.setContainer(g.fd), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_GROUP_SET_CONTAINER',
    message: `VFIO_GROUP_SET_CONTAINER(${g.fd}) on fd ${g.fd} failed: EINVAL (Invalid argument): fd ${g.fd} is not a VFIO container (/dev/vfio/vfio)`,
  });
  g.setContainer(c);
  assert.equal(g.container, c);
  assert.deepEqual(g.status(), {
    flags: VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET,
    viable: true,
    containerSet: true,
  });
  throwsVfio(() => g.setContainer(c), {
    errno: EINVAL,
    code: 'EINVAL',
    message: /: the group is already in a container$/,
  });
  g.unsetContainer();
  assert.equal(g.container, undefined);
  assert.equal(g.status().containerSet, false);
});

test('GET_DEVICE_FD before SET_IOMMU: EINVAL with the kernel reason', () => {
  const m = machine([A]);
  using c = VfioContainer.open(m.p);
  using g = VfioGroup.open(m.p, 3);
  g.setContainer(c);
  throwsVfio(() => g.device('0000:00:03.0'), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_GROUP_GET_DEVICE_FD',
    fd: g.fd,
    message: `VFIO_GROUP_GET_DEVICE_FD("0000:00:03.0") on fd ${g.fd} failed: EINVAL (Invalid argument): no IOMMU set on the container (VFIO_SET_IOMMU first)`,
  });
});

test('closing the group and the container leaves the host as before', () => {
  const m = machine([A]);
  const c = VfioContainer.open(m.p);
  const g = VfioGroup.open(m.p, 3);
  g.setContainer(c);
  g.close();
  c.close();
  assertClosed(m);
  /* the group can be opened again */
  VfioGroup.open(m.p, 3).close();
  assertClosed(m);
  assertBaseline(m);
});
