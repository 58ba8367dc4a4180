import assert from 'node:assert/strict';
import { test } from 'node:test';
import { check, checkAddr, errorFor, VfioContainer, VfioError, VfioGroup } from '../../src/lib/index.ts';
import { EBADF, EINVAL, ENOMEM, ENOTTY, type Syscalls } from '../../src/uapi/index.ts';
import { machine, throwsVfio } from './fixture.ts';

test('VfioError: fields and message, strerror when no reason is given', () => {
  const e = new VfioError({
    errno: EINVAL,
    syscall: 'ioctl',
    request: 'VFIO_IOMMU_MAP_DMA',
    fd: 3,
    arg: 'iova 0x0',
  });
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'VfioError');
  assert.equal(e.errno, 22);
  assert.equal(e.code, 'EINVAL');
  assert.equal(e.syscall, 'ioctl');
  assert.equal(e.request, 'VFIO_IOMMU_MAP_DMA');
  assert.equal(e.fd, 3);
  assert.equal(e.reason, 'Invalid argument');
  assert.equal(
    e.message,
    'VFIO_IOMMU_MAP_DMA(iova 0x0) on fd 3 failed: EINVAL (Invalid argument): Invalid argument',
  );
  const o = new VfioError({ errno: ENOMEM, syscall: 'mmap', reason: 'no room' });
  assert.equal(o.request, undefined);
  assert.equal(o.fd, undefined);
  assert.equal(o.message, 'mmap() failed: ENOMEM (Cannot allocate memory): no room');
});

test('check/checkAddr: results pass through, -errno throws', () => {
  const m = machine([]);
  assert.equal(check(m.p, 5, { syscall: 'x' }), 5);
  assert.equal(checkAddr(m.p, 0x7000n, { syscall: 'mmap' }), 0x7000n);
  throwsVfio(() => checkAddr(m.p, -BigInt(ENOMEM), { syscall: 'mmap', arg: 'NULL, 1' }), {
    errno: ENOMEM,
    code: 'ENOMEM',
    message: 'mmap(NULL, 1) failed: ENOMEM (Cannot allocate memory): Cannot allocate memory',
  });
  /* the u64 view of -errno, as a raw register holds it */
  assert.equal(errorFor(m.p, (1n << 64n) - 22n, { syscall: 'mmap' }).errno, EINVAL);
});

test('the reason comes from the failing call only, never from an earlier one', () => {
  const m = machine([{ bdf: '0000:00:03.0', group: 3 }]);
  const c = VfioContainer.open(m.p);
  throwsVfio(() => c.setIommu(1), { errno: EINVAL, code: 'EINVAL', message: /the container has no groups/ });
  /* the fd goes away behind the library's back: EBADF comes from the syscall layer, without a reason */
  assert.equal(m.p.close(c.fd), 0);
  const e = throwsVfio(() => c.apiVersion(), {
    errno: EBADF,
    code: 'EBADF',
    message: `VFIO_GET_API_VERSION() on fd ${c.fd} failed: EBADF (Bad file descriptor): Bad file descriptor`,
  });
  assert.equal(e.reason, 'Bad file descriptor');
  assert.equal(m.p.lastError(), undefined);
  /* and closing it again says so */
  throwsVfio(() => c.close(), {
    errno: EBADF,
    code: 'EBADF',
    syscall: 'close',
    message: 'close(0) failed: EBADF (Bad file descriptor): Bad file descriptor',
  });
});

test('without Syscalls.lastError the message falls back to strerror', () => {
  const m = machine([{ bdf: '0000:00:03.0', group: 3 }]);
  /* the same process seen through a surface that cannot report reasons */
  const bare = Object.assign(Object.create(m.p) as Syscalls, { lastError: undefined });
  using c = VfioContainer.open(bare);
  throwsVfio(() => c.setIommu(1), {
    errno: EINVAL,
    code: 'EINVAL',
    message: `VFIO_SET_IOMMU(1) on fd ${c.fd} failed: EINVAL (Invalid argument): Invalid argument`,
  });
});

test('a reason that does not start with the request name is kept whole', () => {
  const m = machine([{ bdf: '0000:00:03.0', group: 3 }]);
  using g = VfioGroup.open(m.p, 3);
  /* an unknown ioctl on a group: the kernel's reason names the command in hex */
  assert.equal(m.p.ioctl(g.fd, 0x3b99), -ENOTTY);
  const e = errorFor(m.p, -ENOTTY, { syscall: 'ioctl', request: 'X', fd: g.fd });
  assert.equal(e.reason, 'group ioctl 0x3b99: not a group ioctl');
});
