import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as u from '../../src/uapi/index.ts';

describe('linux/vfio.h constants', () => {
  it('extensions and API version', () => {
    assert.deepEqual(
      [
        u.VFIO_API_VERSION,
        u.VFIO_TYPE1_IOMMU,
        u.VFIO_SPAPR_TCE_IOMMU,
        u.VFIO_TYPE1v2_IOMMU,
        u.VFIO_DMA_CC_IOMMU,
        u.VFIO_EEH,
        u.VFIO_TYPE1_NESTING_IOMMU,
        u.VFIO_SPAPR_TCE_v2_IOMMU,
        u.VFIO_NOIOMMU_IOMMU,
        u.VFIO_UNMAP_ALL,
        u.VFIO_UPDATE_VADDR,
      ],
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
  });

  it('flag bits', () => {
    assert.equal(u.VFIO_GROUP_FLAGS_CONTAINER_SET, 2);
    assert.equal(u.VFIO_DEVICE_FLAGS_CDX, 0x100);
    assert.equal(u.VFIO_REGION_INFO_FLAG_CAPS, 8);
    assert.equal(u.VFIO_IRQ_INFO_NORESIZE, 8);
    assert.equal(u.VFIO_IRQ_SET_DATA_TYPE_MASK, 0x7);
    assert.equal(u.VFIO_IRQ_SET_ACTION_TYPE_MASK, 0x38);
    assert.equal(u.VFIO_DMA_MAP_FLAG_VADDR, 4);
    assert.equal(u.VFIO_DMA_UNMAP_FLAG_ALL, 2);
    assert.equal(u.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, 4);
    assert.equal(u.VFIO_DEVICE_FEATURE_MASK, 0xffff);
    assert.equal(u.VFIO_DEVICE_FEATURE_PROBE, 0x40000);
    assert.equal(u.VFIO_REGION_TYPE_PCI_VENDOR_TYPE, 0x8000_0000);
  });

  it('vfio-pci indexes and EEH values', () => {
    assert.equal(u.VFIO_PCI_BAR5_REGION_INDEX, 5);
    assert.equal(u.VFIO_PCI_CONFIG_REGION_INDEX, 7);
    assert.equal(u.VFIO_PCI_NUM_REGIONS, 9);
    assert.equal(u.VFIO_PCI_REQ_IRQ_INDEX, 4);
    assert.equal(u.VFIO_PCI_NUM_IRQS, 5);
    assert.equal(u.VFIO_EEH_PE_STATE_STOPPED_DMA, 4);
    assert.equal(u.VFIO_EEH_PE_RESET_DEACTIVATE, 5);
    assert.equal(u.VFIO_EEH_PE_INJECT_ERR, 9);
    assert.equal(u.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 3);
  });

  it('region offset encoding (index << 40)', () => {
    assert.equal(u.VFIO_PCI_INDEX_TO_OFFSET(u.VFIO_PCI_CONFIG_REGION_INDEX), 0x700_0000_0000n);
    assert.equal(u.VFIO_PCI_OFFSET_TO_INDEX(0x700_0000_0004n), 7);
    assert.equal(u.VFIO_PCI_OFFSET_MASK, 0xff_ffff_ffffn);
    assert.equal(u.VFIO_PCI_OFFSET_TO_INDEX(u.VFIO_PCI_INDEX_TO_OFFSET(42) | u.VFIO_PCI_OFFSET_MASK), 42);
  });
});

describe('other Linux ABI constants', () => {
  it('x86_64 / generic values', () => {
    assert.equal(u.O_RDWR | u.O_CLOEXEC, 0o2000002);
    assert.equal(u.O_NONBLOCK, 0o4000);
    assert.equal(u.O_CREAT, 0o100);
    assert.equal(u.EFD_NONBLOCK, u.O_NONBLOCK);
    assert.equal(u.EFD_CLOEXEC, u.O_CLOEXEC);
    assert.equal(u.MAP_ANONYMOUS | u.MAP_PRIVATE, 0x22);
    assert.equal(u.MAP_POPULATE, 0x8000);
    assert.equal(u.MAP_FAILED, -1n);
    assert.equal(u.POLLNVAL, 0x20);
    assert.equal(u.RLIMIT_MEMLOCK, 8);
    assert.equal(u.RLIM_INFINITY, (1n << 64n) - 1n);
    assert.equal(u.CAP_IPC_LOCK, 14);
    assert.equal(u.CAP_SYS_RAWIO, 17);
    assert.equal(u.CAP_SYS_ADMIN, 21);
    assert.equal(u.CAP_SYS_RESOURCE, 24);
    assert.ok(u.S_ISCHR(u.S_IFCHR | 0o666));
    assert.ok(!u.S_ISCHR(u.S_IFREG | 0o666));
    assert.equal(u.MINORMASK, 0xfffff);
    const dev = u.MKDEV(u.MISC_MAJOR, u.VFIO_MINOR);
    assert.deepEqual([u.MAJOR(dev), u.MINOR(dev)], [10, 196]);
  });
});

describe('syscall helpers', () => {
  it('isErr is IS_ERR_VALUE', () => {
    assert.equal(u.isErr(-1), true);
    assert.equal(u.isErr(-4095), true);
    assert.equal(u.isErr(-4096), false);
    assert.equal(u.isErr(0), false);
    assert.equal(u.isErr(3), false);
    assert.equal(u.isErr(-12n), true);
    assert.equal(u.isErr(u.MAP_FAILED), true);
    assert.equal(u.isErr(0x7f00_0000_0000n), false);
    assert.equal(u.isErr(0xffff_ffff_ffff_fff4n), true);
    assert.equal(u.isErr(0xffff_ffff_ffff_f000n), false);
  });

  it('errnoOf extracts the errno', () => {
    assert.equal(u.errnoOf(-u.EINVAL), u.EINVAL);
    assert.equal(u.errnoOf(-12n), u.ENOMEM);
    assert.equal(u.errnoOf(0xffff_ffff_ffff_fff4n), u.ENOMEM);
    assert.equal(u.errnoOf(5), 0);
  });

  it('SegmentationFault carries the address', () => {
    const e = new u.SegmentationFault(0x1000n, 'write');
    assert.ok(e instanceof Error);
    assert.equal(e.addr, 0x1000n);
    assert.match(e.message, /write at 0x1000/);
  });
});
