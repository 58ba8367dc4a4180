import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as uapi from '../../src/uapi/index.ts';
import {
  _IO,
  _IOC_DIR,
  _IOC_NR,
  _IOC_SIZE,
  _IOC_TYPE,
  _IOR,
  _IOW,
  _IOWR,
  vfioIoctlName,
} from '../../src/uapi/index.ts';

// name -> VFIO_BASE + n, from include/uapi/linux/vfio.h
const VFIO_IOCTLS: Record<string, number> = {
  VFIO_GET_API_VERSION: 0,
  VFIO_CHECK_EXTENSION: 1,
  VFIO_SET_IOMMU: 2,
  VFIO_GROUP_GET_STATUS: 3,
  VFIO_GROUP_SET_CONTAINER: 4,
  VFIO_GROUP_UNSET_CONTAINER: 5,
  VFIO_GROUP_GET_DEVICE_FD: 6,
  VFIO_DEVICE_GET_INFO: 7,
  VFIO_DEVICE_GET_REGION_INFO: 8,
  VFIO_DEVICE_GET_IRQ_INFO: 9,
  VFIO_DEVICE_SET_IRQS: 10,
  VFIO_DEVICE_RESET: 11,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: 12,
  VFIO_DEVICE_PCI_HOT_RESET: 13,
  VFIO_DEVICE_QUERY_GFX_PLANE: 14,
  VFIO_DEVICE_GET_GFX_DMABUF: 15,
  VFIO_DEVICE_IOEVENTFD: 16,
  VFIO_DEVICE_FEATURE: 17,
  VFIO_DEVICE_BIND_IOMMUFD: 18,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: 19,
  VFIO_DEVICE_DETACH_IOMMUFD_PT: 20,
  VFIO_IOMMU_GET_INFO: 12,
  VFIO_IOMMU_MAP_DMA: 13,
  VFIO_IOMMU_UNMAP_DMA: 14,
  VFIO_IOMMU_ENABLE: 15,
  VFIO_IOMMU_DISABLE: 16,
  VFIO_IOMMU_DIRTY_PAGES: 17,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO: 12,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY: 17,
  VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: 18,
  VFIO_IOMMU_SPAPR_TCE_CREATE: 19,
  VFIO_IOMMU_SPAPR_TCE_REMOVE: 20,
  VFIO_EEH_PE_OP: 21,
  VFIO_MIG_GET_PRECOPY_INFO: 21,
};

const exported = uapi as unknown as Record<string, unknown>;

describe('ioctl encoding', () => {
  it('_IO/_IOR/_IOW/_IOWR use the generic layout', () => {
    assert.equal(_IO(0x3b, 100), 0x3b64);
    assert.equal(_IOR(0x54, 0x1b, 4), 0x8004541b);
    assert.equal(_IOW(0x3b, 1, 4), 0x40043b01);
    assert.equal(_IOWR(0xff, 0xff, 0x3fff), 0xffffffff);
    const r = _IOWR(0x3b, 0x70, 24);
    assert.deepEqual([_IOC_DIR(r), _IOC_TYPE(r), _IOC_NR(r), _IOC_SIZE(r)], [3, 0x3b, 0x70, 24]);
    assert.throws(() => _IO(0x100, 0), RangeError);
    assert.throws(() => _IOR(1, 1, 1 << 14), RangeError);
  });

  it('VFIO_TYPE is ";" and VFIO_BASE 100', () => {
    assert.equal(uapi.VFIO_TYPE, ';'.charCodeAt(0));
    assert.equal(uapi.VFIO_BASE, 100);
  });

  it('every VFIO ioctl is _IO(";", 100 + n) = 0x3b64 + n', () => {
    for (const [name, n] of Object.entries(VFIO_IOCTLS)) assert.equal(exported[name], 0x3b64 + n, name);
  });

  it('known numbers', () => {
    assert.equal(uapi.VFIO_GET_API_VERSION, 0x3b64);
    assert.equal(uapi.VFIO_CHECK_EXTENSION, 0x3b65);
    assert.equal(uapi.VFIO_SET_IOMMU, 0x3b66);
    assert.equal(uapi.VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
    assert.equal(uapi.VFIO_DEVICE_RESET, 0x3b6f);
    assert.equal(uapi.VFIO_IOMMU_GET_INFO, 0x3b70);
    assert.equal(uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x3b70);
    assert.equal(uapi.VFIO_IOMMU_SPAPR_TCE_GET_INFO, 0x3b70);
    assert.equal(uapi.VFIO_IOMMU_MAP_DMA, 0x3b71);
    assert.equal(uapi.VFIO_IOMMU_UNMAP_DMA, 0x3b72);
    assert.equal(uapi.VFIO_IOMMU_ENABLE, 0x3b73);
    assert.equal(uapi.VFIO_IOMMU_DISABLE, 0x3b74);
    assert.equal(uapi.VFIO_EEH_PE_OP, 0x3b79);
    assert.equal(uapi.FIONREAD, 0x541b);
  });
});

describe('vfioIoctlName', () => {
  it('disambiguates by fd kind', () => {
    assert.equal(vfioIoctlName(0x3b64), 'VFIO_GET_API_VERSION');
    assert.equal(vfioIoctlName(0x3b70, 'device'), 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO');
    assert.equal(vfioIoctlName(0x3b70, 'container'), 'VFIO_IOMMU_GET_INFO/VFIO_IOMMU_SPAPR_TCE_GET_INFO');
    assert.equal(vfioIoctlName(0x3b71, 'device'), 'VFIO_DEVICE_PCI_HOT_RESET');
    assert.equal(vfioIoctlName(0x3b71, 'container'), 'VFIO_IOMMU_MAP_DMA');
    assert.equal(vfioIoctlName(0x3b79, 'container'), 'VFIO_EEH_PE_OP');
    assert.equal(vfioIoctlName(0x3b79, 'migration'), 'VFIO_MIG_GET_PRECOPY_INFO');
  });

  it('without a kind lists every candidate', () => {
    assert.equal(
      vfioIoctlName(0x3b70),
      'VFIO_IOMMU_GET_INFO/VFIO_IOMMU_SPAPR_TCE_GET_INFO/VFIO_DEVICE_GET_PCI_HOT_RESET_INFO',
    );
    assert.equal(vfioIoctlName(0x3b79), 'VFIO_EEH_PE_OP/VFIO_MIG_GET_PRECOPY_INFO');
  });

  it('unknown numbers and kinds give hex; FIONREAD everywhere', () => {
    assert.equal(vfioIoctlName(0x3b7a), '0x3b7a');
    assert.equal(vfioIoctlName(0x3b64, 'device'), '0x3b64');
    assert.equal(vfioIoctlName(0x541b, 'device'), 'FIONREAD');
  });

  it('names every VFIO ioctl somewhere', () => {
    for (const [name, n] of Object.entries(VFIO_IOCTLS))
      assert.ok(
        vfioIoctlName(0x3b64 + n)
          .split('/')
          .includes(name),
      );
  });
});
