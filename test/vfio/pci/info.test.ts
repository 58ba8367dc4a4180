import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeCapChain,
  EFAULT,
  EINVAL,
  ENOTTY,
  PROT_READ,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_IOEVENTFD,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_PCI_INDEX_TO_OFFSET,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_device_info,
  vfio_irq_info,
} from '../../../src/uapi/index.ts';
import { userAlloc } from '../../helpers/user.ts';
import { type Bench, bench, regionInfo } from './helpers.ts';

/*
 * The info ioctls of the device fd: GET_INFO, GET_REGION_INFO and
 * GET_IRQ_INFO, byte by byte, for each device model and both profiles.
 */
const RW = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
const ROOT_PORT = { bdf: '0000:00:1c.0', model: 'pcie-root-port', iommuGroup: 1 };

function deviceInfo(b: Bench, argsz: number): { r: number; bytes: Uint8Array } {
  b.p.mem.write(b.arg, new Uint8Array(32).fill(0xff));
  b.p.mem.write(b.arg, vfio_device_info.encode({ argsz }).subarray(0, 4));
  return { r: b.p.ioctl(b.device, VFIO_DEVICE_GET_INFO, b.arg), bytes: b.p.mem.read(b.arg, 32) };
}

function irqInfo(b: Bench, index: number, argsz = 16) {
  b.p.mem.write(b.arg, vfio_irq_info.encode({ argsz, index }));
  const r = b.p.ioctl(b.device, VFIO_DEVICE_GET_IRQ_INFO, b.arg);
  return { r, info: vfio_irq_info.decode(b.p.mem.read(b.arg, 16)) };
}

for (const kernel of ['4.1', '6.12'] as const) {
  describe(`device info ioctls (${kernel})`, () => {
    test('GET_INFO: flags, 9 regions, 5 interrupt indexes; RESET only with a reset method', () => {
      const edu = bench({ kernel });
      let { r, bytes } = deviceInfo(edu, 24);
      assert.equal(r, 0);
      const info = vfio_device_info.decode(bytes);
      assert.deepEqual(
        [info.argsz, info.flags, info.num_regions, info.num_irqs],
        [24, VFIO_DEVICE_FLAGS_PCI, 9, 5],
      );
      /* 4.1 writes back minsz (16) bytes; 6.12 min(argsz, sizeof) = 24, zeroing cap_offset and pad */
      assert.deepEqual(
        [...bytes.subarray(16, 24)],
        kernel === '4.1' ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : [0, 0, 0, 0, 0, 0, 0, 0],
      );
      ({ r, bytes } = deviceInfo(edu, 20));
      assert.equal(r, 0);
      assert.deepEqual(
        [...bytes.subarray(16, 24)],
        kernel === '4.1' ? Array(8).fill(0xff) : [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
      );
      assert.equal(deviceInfo(edu, 15).r, -EINVAL);
      assert.equal(edu.p.ioctl(edu.device, VFIO_DEVICE_GET_INFO, 0n), -EFAULT);
      /* an FLR-capable function, and edu alone behind a root port (bus reset) can be reset */
      const ce = bench({ kernel, model: 'copy-engine' });
      assert.equal(
        vfio_device_info.decode(deviceInfo(ce, 16).bytes).flags,
        VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      );
      const behind = bench({
        kernel,
        bdf: '0000:01:00.0',
        before: [ROOT_PORT],
        device: { parent: '0000:00:1c.0' },
      });
      assert.equal(
        vfio_device_info.decode(deviceInfo(behind, 16).bytes).flags,
        VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      );
    });

    test('GET_INFO into a read-only page: 4.1 returns the bytes not copied, 6.12 -EFAULT', () => {
      const b = bench({ kernel });
      const ro = userAlloc(b.p, 4096);
      b.p.mem.write(ro, vfio_device_info.encode({ argsz: 16 }));
      assert.equal(b.p.mprotect(ro, 4096, PROT_READ), 0);
      assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_GET_INFO, ro), kernel === '4.1' ? 16 : -EFAULT);
    });

    test('GET_REGION_INFO for edu: BAR0, unimplemented BARs, no ROM, config, no VGA', () => {
      const b = bench({ kernel });
      let ri = regionInfo(b, 0);
      assert.equal(ri.r, 0);
      assert.deepEqual(
        [ri.info.argsz, ri.info.flags, ri.info.index, ri.info.size, ri.info.offset],
        [32, RW | VFIO_REGION_INFO_FLAG_MMAP, 0, 1n << 20n, 0n],
      );
      for (const i of [1, 2, 3, 4, 5, 6]) {
        ri = regionInfo(b, i);
        assert.equal(ri.r, 0);
        assert.deepEqual([ri.info.flags, ri.info.size, ri.info.offset], [0, 0n, VFIO_PCI_INDEX_TO_OFFSET(i)]);
      }
      ri = regionInfo(b, 7);
      assert.deepEqual([ri.r, ri.info.flags, ri.info.size, ri.info.offset], [0, RW, 256n, 7n << 40n]);
      assert.equal(regionInfo(b, 8).r, -EINVAL);
      assert.equal(regionInfo(b, 9).r, -EINVAL);
      assert.equal(regionInfo(b, 0, 31).r, -EINVAL);
    });

    test("GET_REGION_INFO keeps the caller's cap_offset when there is no capability", () => {
      const b = bench({ kernel });
      b.p.mem.write(b.arg, new Uint8Array([32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x78, 0x56, 0x34, 0x12]));
      assert.equal(b.p.ioctl(b.device, 0x3b6c, b.arg), 0);
      assert.deepEqual([...b.p.mem.read(b.arg + 12n, 4)], [0x78, 0x56, 0x34, 0x12]);
    });

    test('GET_REGION_INFO for the copy engine: the MSI-X BAR, 64-bit BAR, ROM, 4 KiB config', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      let ri = regionInfo(b, 0);
      if (kernel === '4.1') {
        assert.deepEqual(
          [ri.r, ri.info.flags, ri.info.size, ri.info.cap_offset],
          [0, RW | VFIO_REGION_INFO_FLAG_MMAP, 0x4000n, 0],
        );
      } else {
        /* too small for the capability: argsz grows, no cap_offset */
        assert.deepEqual(
          [ri.r, ri.info.argsz, ri.info.flags, ri.info.cap_offset],
          [0, 40, RW | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS, 0],
        );
        ri = regionInfo(b, 0, 40);
        assert.deepEqual([ri.r, ri.info.argsz, ri.info.cap_offset], [0, 40, 32]);
        const caps = decodeCapChain(ri.raw.subarray(0, 40), ri.info.cap_offset);
        assert.deepEqual(
          caps.map((c) => [c.id, c.version, c.offset]),
          [[VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, 32]],
        );
        assert.deepEqual([...ri.raw.subarray(32, 40)], [3, 0, 1, 0, 0, 0, 0, 0]);
      }
      ri = regionInfo(b, 2);
      assert.deepEqual([ri.info.flags, ri.info.size], [RW | VFIO_REGION_INFO_FLAG_MMAP, 1n << 20n]);
      ri = regionInfo(b, 6);
      assert.deepEqual(
        [ri.r, ri.info.flags, ri.info.size, ri.info.offset],
        [0, VFIO_REGION_INFO_FLAG_READ, 0x10000n, 6n << 40n],
      );
      ri = regionInfo(b, 7);
      assert.deepEqual([ri.info.flags, ri.info.size], [RW, 4096n]);
    });

    test('GET_REGION_INFO for the UART: an I/O BAR is read/write, never mmap', () => {
      const b = bench({ kernel, model: 'serial' });
      const ri = regionInfo(b, 0);
      assert.deepEqual([ri.r, ri.info.flags, ri.info.size], [0, RW, 8n]);
    });

    test('GET_REGION_INFO on ppc64 (64 KiB pages): a 16 KiB BAR mmaps only where sub-page BARs may', () => {
      const b = bench({ kernel, arch: 'ppc64', model: 'copy-engine' });
      const ri = regionInfo(b, 0, 40);
      const mmap = (ri.info.flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0;
      assert.equal(mmap, kernel === '6.12');
    });

    test('GET_IRQ_INFO: counts and flags per index', () => {
      const edu = bench({ kernel });
      const E = VFIO_IRQ_INFO_EVENTFD;
      const rows = [0, 1, 2, 4].map((i) => {
        const { r, info } = irqInfo(edu, i);
        return [r, info.index, info.flags, info.count];
      });
      assert.deepEqual(rows, [
        [0, 0, E | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED, 1],
        [0, 1, E | VFIO_IRQ_INFO_NORESIZE, 1],
        [0, 2, E | VFIO_IRQ_INFO_NORESIZE, 0],
        [0, 4, E | VFIO_IRQ_INFO_NORESIZE, 1],
      ]);
      /* edu is conventional PCI: no ERR index */
      assert.equal(irqInfo(edu, 3).r, -EINVAL);
      assert.equal(irqInfo(edu, 5).r, -EINVAL);
      assert.equal(irqInfo(edu, 0, 15).r, -EINVAL);
      const ce = bench({ kernel, model: 'copy-engine' });
      assert.deepEqual([irqInfo(ce, 3).r, irqInfo(ce, 3).info.count], [0, 1]);
      const msix = irqInfo(ce, 2).info;
      assert.equal(msix.count, 4);
      /* 6.12 on x86 can add MSI-X vectors while enabled: no NORESIZE */
      assert.equal(msix.flags, kernel === '6.12' ? E : E | VFIO_IRQ_INFO_NORESIZE);
      assert.equal(irqInfo(ce, 1).info.count, 0);
      const ppc = bench({ kernel, arch: 'ppc64', model: 'copy-engine' });
      assert.equal(irqInfo(ppc, 2).info.flags, E | VFIO_IRQ_INFO_NORESIZE);
      const uart = bench({ kernel, model: 'serial' });
      assert.deepEqual(
        [1, 2].map((i) => irqInfo(uart, i).info.count),
        [0, 0],
      );
      assert.equal(irqInfo(uart, 0).info.count, 1);
    });

    test('ioctls vfio-pci does not implement are -ENOTTY', () => {
      const b = bench({ kernel });
      assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_IOEVENTFD, b.arg), -ENOTTY);
      assert.equal(b.p.ioctl(b.device, 0x3b00, b.arg), -ENOTTY);
      if (kernel === '4.1') assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_FEATURE, b.arg), -ENOTTY);
    });
  });
}
