import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CopyEngineModel, EduModel } from '../../../src/devices/index.ts';
import type { PciDev } from '../../../src/pci/index.ts';
import {
  EAGAIN,
  EBADF,
  EINVAL,
  ENODEV,
  ENOSPC,
  EPERM,
  O_RDWR,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset_info,
} from '../../../src/uapi/index.ts';
import { putCString, putS32 } from '../../helpers/user.ts';
import { type Bench, bench, wr } from './helpers.ts';

/*
 * VFIO_DEVICE_RESET (function reset) and the hot reset of a bus: which
 * devices can be reset and how, who is affected, and what the user must
 * prove it owns.
 */
const PORT = { bdf: '0000:00:1c.0', model: 'pcie-root-port', iommuGroup: 1 };
const EDU_BDF = '0000:01:00.0';
const CE_BDF = '0000:01:00.1';

function pdev(b: Bench, bdf = b.bdf): PciDev {
  const d = b.host.device(bdf);
  assert.ok(d !== undefined);
  return d;
}

/** edu (group 3) and a copy engine (group 4) below one root port; the process has edu open */
function twoOnABus(kernel: '4.1' | '6.12'): { b: Bench; ceGroup: number } {
  const b = bench({
    kernel,
    bdf: EDU_BDF,
    before: [PORT, { bdf: CE_BDF, model: 'copy-engine', iommuGroup: 4, parent: PORT.bdf }],
    device: { parent: PORT.bdf },
  });
  assert.equal(b.host.bind(CE_BDF, 'vfio-pci'), 0);
  const ceGroup = b.p.open('/dev/vfio/4', O_RDWR);
  assert.equal(b.p.ioctl(ceGroup, VFIO_GROUP_SET_CONTAINER, putS32(b.p, b.arg, b.container)), 0);
  return { b, ceGroup };
}

function hotResetInfo(b: Bench, argsz: number) {
  b.p.mem.write(b.arg, new Uint8Array(64));
  b.p.mem.write(b.arg, vfio_pci_hot_reset_info.encode({ argsz, flags: 0xff, count: 0 }));
  const r = b.p.ioctl(b.device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, b.arg);
  const raw = b.p.mem.read(b.arg, 64);
  const hdr = vfio_pci_hot_reset_info.decode(raw);
  const devs = Array.from({ length: r === 0 ? hdr.count : 0 }, (_, i) =>
    vfio_pci_dependent_device.decode(raw, 12 + 8 * i),
  );
  return { r, hdr, devs };
}

function hotReset(
  b: Bench,
  fds: number[],
  o: { count?: number; flags?: number; argsz?: number } = {},
): number {
  const buf = new Uint8Array(12 + 4 * fds.length);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, o.argsz ?? buf.length, true);
  dv.setUint32(4, o.flags ?? 0, true);
  dv.setUint32(8, o.count ?? fds.length, true);
  fds.forEach((fd, i) => {
    dv.setInt32(12 + 4 * i, fd, true);
  });
  b.p.mem.write(b.arg, buf);
  return b.p.ioctl(b.device, VFIO_DEVICE_PCI_HOT_RESET, b.arg);
}

for (const kernel of ['4.1', '6.12'] as const) {
  const k41 = kernel === '4.1';
  describe(`VFIO_DEVICE_RESET (${kernel})`, () => {
    test('no reset method: -EINVAL; FLR: the function resets and keeps its config', () => {
      const edu = bench({ kernel });
      assert.equal(edu.p.ioctl(edu.device, VFIO_DEVICE_RESET), -EINVAL);
      const ce = bench({ kernel, model: 'copy-engine' });
      const m = pdev(ce).model as CopyEngineModel;
      m.ringSize = 64;
      const bar0 = pdev(ce).cfg.read(0x10, 4);
      assert.equal(ce.p.ioctl(ce.device, VFIO_DEVICE_RESET), 0);
      assert.equal(m.ringSize, 0);
      assert.equal(pdev(ce).cfg.read(0x10, 4), bar0);
    });

    test('a function alone below a bridge is reset with its bus', () => {
      const b = bench({ kernel, bdf: EDU_BDF, before: [PORT], device: { parent: PORT.bdf } });
      const m = pdev(b).model as EduModel;
      wr(b, 0, 0x60, 4, 1);
      assert.equal(pdev(b).intxLevel, true);
      assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_RESET), 0);
      /* the bus reset dropped INTx; edu keeps its registers, as QEMU's does */
      assert.equal(pdev(b).intxLevel, false);
      assert.equal(m.irqStatus, 1);
      /* with a second function on the bus, no function reset method is left */
      const { b: two } = twoOnABus(kernel);
      assert.equal(two.p.ioctl(two.device, VFIO_DEVICE_RESET), -EINVAL);
    });
  });

  describe(`hot reset (${kernel})`, () => {
    test('GET_PCI_HOT_RESET_INFO: -ENODEV on a root bus; -ENOSPC with the count; then the list', () => {
      const root = bench({ kernel });
      assert.equal(hotResetInfo(root, 12).r, -ENODEV);
      const { b } = twoOnABus(kernel);
      assert.equal(hotResetInfo(b, 11).r, -EINVAL);
      let { r, hdr } = hotResetInfo(b, 12);
      assert.deepEqual([r, hdr.count, hdr.flags], [-ENOSPC, 2, 0]);
      ({ r, hdr } = hotResetInfo(b, 27));
      assert.deepEqual([r, hdr.count], [-ENOSPC, 2]);
      const ok = hotResetInfo(b, 28);
      assert.deepEqual([ok.r, ok.hdr.count, ok.hdr.flags], [0, 2, 0]);
      assert.deepEqual(
        ok.devs.map((d) => [d.group_id, d.segment, d.bus, d.devfn]),
        [
          [3, 0, 1, 0],
          [4, 0, 1, 1],
        ],
      );
    });

    test('GET_PCI_HOT_RESET_INFO: a function without an IOMMU group is -EPERM; 4.1 still writes the header', () => {
      const { b } = twoOnABus(kernel);
      const ce = pdev(b, CE_BDF);
      const group = ce.iommu_group;
      ce.iommu_group = undefined;
      const { r, hdr } = hotResetInfo(b, 28);
      ce.iommu_group = group;
      /* the helper leaves flags 0xff and count 0 in the user's header */
      assert.deepEqual([r, hdr.flags, hdr.count], [-EPERM, k41 ? 0 : 0xff, 0]);
    });

    test('PCI_HOT_RESET: argument checks, group ownership, then the bus is reset', () => {
      const { b, ceGroup } = twoOnABus(kernel);
      const ce = pdev(b, CE_BDF).model as CopyEngineModel;
      ce.ringSize = 8;
      assert.equal(hotReset(b, [b.group], { flags: 1 }), -EINVAL);
      assert.equal(hotReset(b, [b.group], { argsz: 11 }), -EINVAL);
      assert.equal(hotReset(b, [], { count: 0 }), -EINVAL);
      assert.equal(hotReset(b, [b.group, ceGroup, b.group]), -EINVAL);
      assert.equal(hotReset(b, [b.group, 77]), -EBADF);
      assert.equal(hotReset(b, [b.group, b.container]), -EINVAL);
      /* the copy engine's group is not supplied */
      assert.equal(hotReset(b, [b.group]), -EINVAL);
      assert.equal(ce.ringSize, 8);
      assert.equal(hotReset(b, [b.group, ceGroup]), 0);
      assert.equal(ce.ringSize, 0);
      /* both functions have their config back */
      assert.notEqual(pdev(b, CE_BDF).cfg.read(0x10, 4), 0);
      assert.notEqual(pdev(b).cfg.read(0x10, 4), 0);
      const root = bench({ kernel });
      assert.equal(hotReset(root, [root.group]), -ENODEV);
    });

    test('PCI_HOT_RESET over a function parked on pci-stub: 4.1 resets it, 6.12 wants every function in vfio-pci', () => {
      const { b, ceGroup } = twoOnABus(kernel);
      assert.equal(b.host.unbind(CE_BDF).state, 'done');
      assert.equal(b.host.bind(CE_BDF, 'pci-stub'), 0);
      const ce = pdev(b, CE_BDF).model as CopyEngineModel;
      ce.ringSize = 8;
      assert.equal(hotReset(b, [b.group, ceGroup]), k41 ? 0 : -EINVAL);
      assert.equal(ce.ringSize, k41 ? 0 : 8);
    });

    test('a reset while an unbind holds the device lock: -EAGAIN', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const kt = b.host.unbind(b.bdf);
      assert.equal(kt.state, 'sleeping');
      assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_RESET), -EAGAIN);
      assert.equal(b.p.close(b.device), 0);
      assert.equal(kt.state, 'done');
      void putCString;
      void VFIO_GROUP_GET_DEVICE_FD;
    });
  });
}
