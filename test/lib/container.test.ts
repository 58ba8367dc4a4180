import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VfioContainer, VfioGroup } from '../../src/lib/index.ts';
import {
  EBADF,
  EINVAL,
  ENODEV,
  ENOENT,
  VFIO_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_NOIOMMU_IOMMU,
} from '../../src/uapi/index.ts';
import { assertBaseline, assertClosed, machine, throwsVfio } from './fixture.ts';

const DEV = { bdf: '0000:00:03.0', group: 3 };

test('open, API version, an extension nobody claims, close', () => {
  const m = machine([DEV]);
  const c = VfioContainer.open(m.p);
  assert.equal(c.fd, 0);
  assert.equal(c.apiVersion(), VFIO_API_VERSION);
  assert.equal(c.checkExtension(VFIO_NOIOMMU_IOMMU), 0);
  assert.equal(c.checkExtension(0x7fff), 0);
  c.close();
  assert.equal(c.closed, true);
  assert.equal(m.p.close(c.fd), -EBADF, 'the fd is really closed');
  c.close(); /* idempotent */
  assert.throws(() => c.apiVersion(), /VFIO_GET_API_VERSION: fd 0 was closed by this library/);
  assertClosed(m);
  assertBaseline(m);
});

test('open of a missing node: ENOENT from open(2), no fd', () => {
  const m = machine([DEV]);
  throwsVfio(() => VfioContainer.open(m.p, '/dev/vfio/nope'), {
    errno: ENOENT,
    code: 'ENOENT',
    syscall: 'open',
    message:
      'open("/dev/vfio/nope", O_RDWR) failed: ENOENT (No such file or directory): open /dev/vfio/nope: no such file',
  });
  assertClosed(m);
});

test('SET_IOMMU without a group: EINVAL naming the request, the fd and the reason', () => {
  const m = machine([DEV]);
  using c = VfioContainer.open(m.p);
  const e = throwsVfio(() => c.setIommu(1), {
    errno: EINVAL,
    code: 'EINVAL',
    syscall: 'ioctl',
    request: 'VFIO_SET_IOMMU',
    fd: c.fd,
    message: `VFIO_SET_IOMMU(1) on fd ${c.fd} failed: EINVAL (Invalid argument): the container has no groups (VFIO_GROUP_SET_CONTAINER first)`,
  });
  assert.equal(e.reason, 'the container has no groups (VFIO_GROUP_SET_CONTAINER first)');
  assert.equal(c.iommuType, undefined);
});

test('SET_IOMMU of a type no driver claims: ENODEV', () => {
  const m = machine([DEV]);
  using c = VfioContainer.open(m.p);
  using g = VfioGroup.open(m.p, 3);
  g.setContainer(c);
  throwsVfio(() => c.setIommu(0x7e57), {
    errno: ENODEV,
    code: 'ENODEV',
    request: 'VFIO_SET_IOMMU',
    message: `VFIO_SET_IOMMU(32343) on fd ${c.fd} failed: ENODEV (No such device): no IOMMU driver supports type 32343`,
  });
});

test('IOMMU ioctls before SET_IOMMU: EINVAL from the container, each under its own name', () => {
  const m = machine([DEV]);
  using c = VfioContainer.open(m.p);
  const reason = `container ioctl 0x${VFIO_IOMMU_GET_INFO.toString(16)}: no IOMMU driver set (VFIO_SET_IOMMU first)`;
  throwsVfio(() => c.iommuInfo(), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_IOMMU_GET_INFO',
    message: new RegExp(`: ${reason.replace(/[()]/g, '\\$&')}$`),
  });
  throwsVfio(() => c.spaprInfo(), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_IOMMU_SPAPR_TCE_GET_INFO',
  });
  throwsVfio(() => c.mapDma({ iova: 0n, size: 4096n, vaddr: 0x1000n }), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_IOMMU_MAP_DMA',
    message: /^VFIO_IOMMU_MAP_DMA\(iova 0x0, size 0x1000, vaddr 0x1000, READ\|WRITE\) on fd 0 failed: EINVAL/,
  });
  throwsVfio(() => c.unmapDma(0n, 4096n), { errno: EINVAL, code: 'EINVAL', request: 'VFIO_IOMMU_UNMAP_DMA' });
  throwsVfio(() => c.enable(), { errno: EINVAL, code: 'EINVAL', request: 'VFIO_IOMMU_ENABLE' });
  throwsVfio(() => c.disable(), { errno: EINVAL, code: 'EINVAL', request: 'VFIO_IOMMU_DISABLE' });
  throwsVfio(() => c.startDirtyTracking(), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_IOMMU_DIRTY_PAGES',
  });
  throwsVfio(() => c.eehPeOp(0), { errno: EINVAL, code: 'EINVAL', request: 'VFIO_EEH_PE_OP' });
  throwsVfio(() => c.iovas(), { errno: EINVAL, code: 'EINVAL', request: 'VFIO_IOMMU_GET_INFO' });
});

test('using: the container fd is closed at the end of the block', () => {
  const m = machine([DEV]);
  let fd = -1;
  {
    using c = VfioContainer.open(m.p);
    fd = c.fd;
    assert.equal(c.apiVersion(), 0);
  }
  assert.equal(m.p.close(fd), -EBADF);
  assertClosed(m);
});
