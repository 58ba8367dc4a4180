import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Host,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '../../../src/index.ts';
import { putS32, putStruct, userAlloc } from '../../helpers/user.ts';

/*
 * Until v4.7 ("vfio: fix ioctl error handling") type1's GET_INFO and
 * UNMAP_DMA ended in `return copy_to_user(...)`: when the result cannot be
 * written back, the ioctl returns the number of bytes not copied. 6.12
 * returns -EFAULT.
 */
function setup(kernel: '4.1' | '6.12') {
  const host = new Host({ kernel });
  host.addPciDevice({ bdf: '0000:00:03.0', model: 'generic', iommuGroup: 3 });
  assert.equal(host.bind('0000:00:03.0', 'vfio-pci'), 0);
  const p = host.spawn({ rlimitMemlock: 1n << 30n });
  const c = p.open('/dev/vfio/vfio', O_RDWR);
  const g = p.open('/dev/vfio/3', O_RDWR);
  const scratch = userAlloc(p, 4096);
  assert.equal(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, putS32(p, scratch, c)), 0);
  assert.equal(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  /* a read-only page holding the arguments: copy_from_user works, copy_to_user faults */
  const ro = userAlloc(p, 4096);
  return { host, p, c, ro };
}

for (const [kernel, infoRet, unmapRet] of [
  ['4.1', 16, 24],
  ['6.12', -14, -14],
] as const) {
  test(`GET_INFO and UNMAP_DMA into a read-only argument (${kernel})`, () => {
    const { p, c, ro } = setup(kernel);
    putStruct(p, ro, vfio_iommu_type1_info, { argsz: 16 });
    assert.equal(p.mprotect(ro, 4096, PROT_READ), 0);
    assert.equal(p.ioctl(c, VFIO_IOMMU_GET_INFO, ro), infoRet);
    const buf = userAlloc(p, 4096);
    const m = userAlloc(p, 4096);
    putStruct(p, m, vfio_iommu_type1_dma_map, {
      argsz: 32,
      flags: 3,
      vaddr: buf,
      iova: 0x10000n,
      size: 4096n,
    });
    assert.equal(p.ioctl(c, VFIO_IOMMU_MAP_DMA, m), 0);
    assert.equal(p.mprotect(ro, 4096, PROT_READ | PROT_WRITE), 0);
    putStruct(p, ro, vfio_iommu_type1_dma_unmap, { argsz: 24, flags: 0, iova: 0x10000n, size: 4096n });
    assert.equal(p.mprotect(ro, 4096, PROT_READ), 0);
    /* the unmap itself happened either way; only the write-back faulted */
    assert.equal(p.ioctl(c, VFIO_IOMMU_UNMAP_DMA, ro), unmapRet);
    assert.equal(p.ioctl(c, VFIO_IOMMU_MAP_DMA, m), 0);
  });
}
