import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  O_RDWR,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  vfio_group_status,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_info,
} from '../../../src/index.ts';
import { type1Debug } from '../../../src/vfio/iommu_type1/index.ts';
import { getStruct, putCString, putS32, putStruct, userAlloc } from '../../helpers/user.ts';
import { anon, MiB, makeHost, PROFILES, RW, vmLckKb } from './helpers.ts';

/*
 * Documentation/vfio.txt's example, step by step, on an x86 host: open
 * the container and the group, check the group, attach it, pick type1,
 * ask for its info, map 1 MiB at IOVA 0 and get the device fd.
 */
for (const kernel of PROFILES) {
  describe(`canonical container sequence (${kernel})`, () => {
    it('works with exact results at every step', () => {
      const host = makeHost(kernel, [26]);
      const base = host.liveObjects();
      const p = host.spawn({ rlimitMemlock: 64n << 20n });
      const arg = userAlloc(p, 4096);
      const container = p.open('/dev/vfio/vfio', O_RDWR);
      assert.ok(container >= 0);
      assert.equal(p.ioctl(container, VFIO_GET_API_VERSION), VFIO_API_VERSION);
      assert.equal(p.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU), 1);

      const group = p.open('/dev/vfio/26', O_RDWR);
      assert.ok(group >= 0);
      putStruct(p, arg, vfio_group_status, { argsz: vfio_group_status.size, flags: 0 });
      assert.equal(p.ioctl(group, VFIO_GROUP_GET_STATUS, arg), 0);
      assert.equal(getStruct(p, arg, vfio_group_status).flags, VFIO_GROUP_FLAGS_VIABLE);

      assert.equal(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, putS32(p, arg, container)), 0);
      assert.equal(p.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), 0);

      putStruct(p, arg, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size });
      assert.equal(p.ioctl(container, VFIO_IOMMU_GET_INFO, arg), 0);
      const info = getStruct(p, arg, vfio_iommu_type1_info);
      if (kernel === '4.1') {
        /* 4.1 leaves flags 0; intel-iommu advertises every size from 4 KiB (~0xfff) */
        assert.deepEqual(info, {
          argsz: 24,
          flags: 0,
          iova_pgsizes: 0xffff_ffff_ffff_f000n,
          cap_offset: 0,
          pad: 0,
        });
      } else {
        /* the caps do not fit 24 bytes: argsz says how much they need */
        assert.equal(info.flags, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
        assert.equal(info.iova_pgsizes, 0x40201000n);
        assert.equal(info.argsz, 24 + 32 + 16 + 16 + 2 * 16);
        assert.equal(info.cap_offset, 0);
      }

      const mem = anon(p, MiB);
      putStruct(p, arg, vfio_iommu_type1_dma_map, { argsz: 32, flags: RW, vaddr: mem, iova: 0n, size: MiB });
      assert.equal(p.ioctl(container, VFIO_IOMMU_MAP_DMA, arg), 0);
      assert.equal(p.lockedVm, 256);
      assert.equal(vmLckKb(p), 1024);
      assert.deepEqual(
        type1Debug(p, container)?.mappings.map((m) => [m.iova, m.size, m.vaddr]),
        [[0n, MiB, mem]],
      );

      const device = p.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, putCString(p, arg, '0000:00:1a.0'));
      assert.ok(device >= 0, `GET_DEVICE_FD: ${device}`);
      putStruct(p, arg, vfio_group_status, { argsz: vfio_group_status.size, flags: 0 });
      assert.equal(p.ioctl(group, VFIO_GROUP_GET_STATUS, arg), 0);
      assert.equal(
        getStruct(p, arg, vfio_group_status).flags,
        VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET,
      );

      /* the device sees the buffer at IOVA 0 */
      const dev = host.device('0000:00:1a.0');
      assert.equal(dev?.dmaPort?.dmaWrite(0x100n, new Uint8Array([0xde, 0xad])), true);
      assert.deepEqual([...p.mem.read(mem + 0x100n, 2)], [0xde, 0xad]);

      p.exit();
      assert.deepEqual(host.liveObjects(), base);
    });
  });
}
