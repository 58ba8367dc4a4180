import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CE_DESC_INTERRUPT, CE_INT_COMPLETION, CE_OP_MEMCPY } from '../../../src/devices/index.ts';
import { PCI_COMMAND, type PciDev } from '../../../src/pci/index.ts';
import {
  EINVAL,
  ENODEV,
  ENOTTY,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  SegmentationFault,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
  vfio_device_info,
} from '../../../src/uapi/index.ts';
import { ceInit, submit } from '../../devices/ce_driver.ts';
import { putCString, userAlloc } from '../../helpers/user.ts';
import {
  type Bench,
  bench,
  dmaWindow,
  efdCount,
  mapDma,
  s32s,
  setIrqs,
  triggerEventfds,
  wr,
} from './helpers.ts';

/*
 * The device's life with a user: open enables it, the last close disables
 * and resets it; an unbind while it is open asks the user to let go (the
 * REQ eventfd) and waits; a process that dies with interrupts on and DMA
 * in flight leaves nothing behind.
 */
function pdev(b: Bench): PciDev {
  const d = b.host.device(b.bdf);
  assert.ok(d !== undefined);
  return d;
}

function feature(
  b: Bench,
  flags: number,
  data: Uint8Array = new Uint8Array(0),
  argsz = 8 + data.length,
): number {
  const buf = new Uint8Array(8 + data.length);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, argsz, true);
  dv.setUint32(4, flags, true);
  buf.set(data, 8);
  b.p.mem.write(b.arg, buf);
  return b.p.ioctl(b.device, VFIO_DEVICE_FEATURE, b.arg);
}

for (const kernel of ['4.1', '6.12'] as const) {
  const k41 = kernel === '4.1';
  describe(`open and release (${kernel})`, () => {
    test('the first open enables, more fds share it, the last close disables', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const d = pdev(b);
      assert.equal(d.enable_cnt, 1);
      const second = b.p.ioctl(b.group, VFIO_GROUP_GET_DEVICE_FD, putCString(b.p, b.arg, b.bdf));
      assert.ok(second >= 0);
      assert.equal(d.enable_cnt, 1);
      assert.equal(b.p.close(b.device), 0);
      assert.equal(d.enable_cnt, 1);
      assert.equal(b.p.close(second), 0);
      assert.equal(d.enable_cnt, 0);
      assert.equal(b.host.liveObjects().vfio_pci_vconfig, undefined);
    });

    test('after the last close: bus mastering off, the BARs kept, the command register per profile', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const d = pdev(b);
      const bars = [0x10, 0x18, 0x1c, 0x30].map((o) => d.cfg.read(o, 4));
      wr(b, 7, PCI_COMMAND, 2, 0x0006);
      assert.equal(d.cfg.read(PCI_COMMAND, 2), 0x0006);
      b.p.close(b.device);
      assert.deepEqual(
        [0x10, 0x18, 0x1c, 0x30].map((o) => d.cfg.read(o, 4)),
        bars,
      );
      /*
       * 4.1 resets with the "try" interface, which saves and restores the
       * INTx-disabled command it was given; 6.12 restores the state saved
       * at open after a locked reset.
       */
      assert.equal(d.cfg.read(PCI_COMMAND, 2), k41 ? 0x0400 : 0x0002);
      /* idle in D3hot */
      assert.equal(d.current_state, 3);
    });

    test('a second open sees the device reset and its virtual config rebuilt', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      wr(b, 7, 0x3c, 1, 0x55);
      b.p.close(b.device);
      const fd = b.p.ioctl(b.group, VFIO_GROUP_GET_DEVICE_FD, putCString(b.p, b.arg, b.bdf));
      assert.ok(fd >= 0);
      const buf = userAlloc(b.p, 4);
      assert.equal(b.p.pread(fd, buf, 1, (7n << 40n) + 0x3cn), 1);
      assert.notEqual(b.p.mem.read(buf, 1)[0], 0x55);
      /* 4.1 left DisINTx set at the last close and builds vconfig before clearing it */
      assert.equal(b.p.pread(fd, buf, 2, (7n << 40n) + 4n), 2);
      const cmd = new DataView(b.p.mem.read(buf, 2).buffer).getUint16(0, true);
      assert.equal(cmd & 0x400, k41 ? 0x400 : 0);
      assert.equal(pdev(b).cfg.read(PCI_COMMAND, 2) & 0x400, 0);
    });
  });

  describe(`unbind while the device is open (${kernel})`, () => {
    test('REQ: the user is asked at once and every 10 s; the unbind completes when the fd closes', () => {
      const b = bench({ kernel });
      const req = b.p.eventfd(0, 0x800);
      assert.equal(
        setIrqs(b, {
          flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
          index: VFIO_PCI_REQ_IRQ_INDEX,
          count: 1,
          data: s32s(req),
        }),
        0,
      );
      const kt = b.host.unbind(b.bdf);
      assert.equal(kt.state, 'sleeping');
      assert.equal(efdCount(b, req), 1n);
      const all = b.host.dmesg({ debug: true }).join('\n');
      if (k41) assert.ok(all.includes('vfio-pci 0000:00:03.0: Requesting device from user'));
      else assert.ok(all.includes('vfio-pci 0000:00:03.0: Relaying device request to user (#0)'));
      b.host.kernel.clock.advance(10_000_000_000);
      assert.equal(efdCount(b, req), 1n);
      b.host.kernel.clock.advance(25_000_000_000);
      assert.equal(efdCount(b, req), 2n);
      /* 4.1 keeps the device in its group meanwhile; 6.12 took it out first */
      const again = b.p.ioctl(b.group, VFIO_GROUP_GET_DEVICE_FD, putCString(b.p, b.arg, b.bdf));
      if (k41) {
        assert.ok(again >= 0);
        b.p.close(again);
      } else assert.equal(again, -ENODEV);
      /* the device still works for its user */
      b.p.mem.write(b.arg, vfio_device_info.encode({ argsz: 16 }));
      assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_GET_INFO, b.arg), 0);
      assert.equal(kt.state, 'sleeping');
      assert.equal(b.p.close(b.device), 0);
      assert.equal(kt.state, 'done');
      assert.equal(pdev(b).driver, undefined);
      assert.equal(b.host.liveObjects().vfio_pci_device, undefined);
      /* 4.1 never dropped the REQ eventfd (a leak fixed in 5.6); 6.12 did at close */
      b.p.exit();
      assert.equal(b.host.liveObjects().eventfd_ctx, k41 ? 1 : undefined);
    });

    test('without a REQ eventfd: 6.12 warns that it waits for the user', () => {
      const b = bench({ kernel });
      const kt = b.host.unbind(b.bdf);
      const msg =
        'vfio-pci 0000:00:03.0: No device request channel registered, blocked until released by user';
      assert.equal(b.host.dmesg().includes(msg), !k41);
      b.p.exit();
      assert.equal(kt.state, 'done');
    });
  });

  describe(`process exit (${kernel})`, () => {
    test('interrupts on and a DMA in flight: the host goes back to its baseline', () => {
      for (const arch of ['x86_64', 'ppc64'] as const) {
        const b = bench({ kernel, arch, model: 'copy-engine', realIommu: true });
        const win = dmaWindow(b);
        const len = 8 << 20;
        const src = userAlloc(b.p, len);
        const dst = userAlloc(b.p, len);
        const d = ceInit(b, (va, iova, n) => assert.equal(mapDma(b, va, win.start + iova, n), 0), {
          intCtrl: CE_INT_COMPLETION,
        });
        assert.equal(mapDma(b, src, win.start + 0x1000000n, len), 0);
        assert.equal(mapDma(b, dst, win.start + 0x2000000n, len), 0);
        assert.equal(triggerEventfds(b, VFIO_PCI_MSIX_IRQ_INDEX, 2).ret, 0);
        const desc = { src: win.start + 0x1000000n, dst: win.start + 0x2000000n, len: BigInt(len) };
        submit(d, { opcode: CE_OP_MEMCPY, flags: CE_DESC_INTERRUPT, ...desc });
        assert.equal(b.host.kernel.clock.pending(), 1, `${arch}: the copy is in flight`);
        b.p.exit();
        b.host.kernel.clock.advance(1_000_000_000);
        assert.deepEqual(b.host.liveObjects(), b.baseline, `${arch}`);
        assert.equal(b.host.pci.msiVectorsInUse, 0);
      }
    });

    test('edu with no reset method: the pending DMA fires after exit and goes nowhere', () => {
      const b = bench({ kernel, realIommu: true });
      const buf = userAlloc(b.p, 4096);
      assert.equal(mapDma(b, buf, 0x10000n, 4096), 0);
      wr(b, 7, PCI_COMMAND, 2, 0x6);
      wr(b, 0, 0x80, 4, 0x40000);
      wr(b, 0, 0x88, 4, 0x10000);
      wr(b, 0, 0x90, 4, 64);
      wr(b, 0, 0x98, 4, 0x7);
      triggerEventfds(b, 1, 1);
      b.p.exit();
      const faults = b.host.iommu.faults.length;
      b.host.kernel.clock.advance(1_000_000_000);
      assert.equal(b.host.iommu.faults.length, faults);
      assert.deepEqual(b.host.liveObjects(), b.baseline);
    });
  });
}

describe('VFIO_DEVICE_FEATURE (6.12)', () => {
  test('the core checks: argsz, unknown flags, GET with SET, PROBE', () => {
    const b = bench({ kernel: '6.12' });
    const P = VFIO_DEVICE_FEATURE_PROBE;
    assert.equal(
      feature(b, P | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, undefined, 7),
      -EINVAL,
    );
    assert.equal(feature(b, 1 << 19), -EINVAL);
    assert.equal(feature(b, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | 3), -EINVAL);
    assert.equal(feature(b, P | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), 0);
    assert.equal(feature(b, P | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), -EINVAL);
    assert.equal(feature(b, P | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT), 0);
    assert.equal(feature(b, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), -EINVAL);
    assert.equal(feature(b, P | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION), -ENOTTY);
    assert.equal(feature(b, P | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN), -ENOTTY);
    assert.equal(feature(b, P | VFIO_DEVICE_FEATURE_GET | 10), -ENOTTY);
  });

  test('low power: mmaps fault until exit; a wakeup eventfd ends it on the next access', () => {
    const b = bench({ kernel: '6.12' });
    const at = b.p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, 0n);
    assert.equal(feature(b, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), 0);
    assert.equal(feature(b, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), -EINVAL);
    assert.throws(() => b.p.mem.read(at, 4), SegmentationFault);
    assert.equal(feature(b, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT), 0);
    assert.deepEqual([...b.p.mem.read(at, 4)], [0xed, 0, 0, 1]);
    const wake = b.p.eventfd(0, 0x800);
    const entry = new Uint8Array(8);
    new DataView(entry.buffer).setInt32(0, -1, true);
    assert.equal(
      feature(b, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, entry),
      -EINVAL,
    );
    new DataView(entry.buffer).setInt32(0, wake, true);
    assert.equal(
      feature(b, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, entry),
      0,
    );
    assert.throws(() => b.p.mem.read(at, 4), SegmentationFault);
    b.p.mem.write(b.arg + 512n, vfio_device_info.encode({ argsz: 16 }));
    assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_GET_INFO, b.arg + 512n), 0);
    assert.equal(efdCount(b, wake), 1n);
    assert.deepEqual([...b.p.mem.read(at, 4)], [0xed, 0, 0, 1]);
  });
});
