import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CopyEngineModel, SerialModel } from '../../../src/devices/index.ts';
import { PCI_COMMAND, PCI_COMMAND_MEMORY, type PciDev } from '../../../src/pci/index.ts';
import {
  EINVAL,
  EIO,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  SegmentationFault,
  VFIO_PCI_MSIX_IRQ_INDEX,
} from '../../../src/uapi/index.ts';
import { userAlloc } from '../../helpers/user.ts';
import {
  type Bench,
  bench,
  cfgRd,
  cfgWr,
  preadBytes,
  pwriteBytes,
  rd,
  rd64,
  regionOffset,
  triggerEventfds,
  wr,
} from './helpers.ts';

/*
 * read/write/pread/pwrite and mmap of the device fd: aligned splitting,
 * clipping at the end of a BAR, the MSI-X table hole, the ROM, memory
 * decode, I/O BARs, and BARs mapped into the process.
 */
function pdev(b: Bench): PciDev {
  const d = b.host.device(b.bdf);
  assert.ok(d !== undefined);
  return d;
}

/** record every access the copy engine's BAR2 sees */
function spyBar2(b: Bench): string[] {
  const log: string[] = [];
  const m = pdev(b).model as CopyEngineModel;
  const r = m.mmioRead.bind(m);
  const w = m.mmioWrite.bind(m);
  m.mmioRead = (bar, off, size) => {
    if (bar === 2) log.push(`r${size}@${off}`);
    return r(bar, off, size);
  };
  m.mmioWrite = (bar, off, size, v) => {
    if (bar === 2) log.push(`w${size}@${off}`);
    w(bar, off, size, v);
  };
  return log;
}

for (const kernel of ['4.1', '6.12'] as const) {
  const k41 = kernel === '4.1';
  describe(`region read/write (${kernel})`, () => {
    test('accesses are split into naturally aligned chunks (8 bytes only in 6.12)', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const log = spyBar2(b);
      assert.equal(pwriteBytes(b, 2, 1, new Uint8Array(15).fill(0xab)), 15);
      assert.deepEqual(
        log,
        k41 ? ['w1@1', 'w2@2', 'w4@4', 'w4@8', 'w4@12'] : ['w1@1', 'w2@2', 'w4@4', 'w8@8'],
      );
      log.length = 0;
      const back = preadBytes(b, 2, 0, 16);
      assert.deepEqual(back instanceof Uint8Array ? [...back] : back, [0, ...Array(15).fill(0xab)]);
      assert.deepEqual(log, k41 ? ['r4@0', 'r4@4', 'r4@8', 'r4@12'] : ['r8@0', 'r8@8']);
    });

    test('a BAR access is clipped at the end of the BAR and refused past it', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const end = (1 << 20) - 4;
      assert.equal(pwriteBytes(b, 2, end, new Uint8Array(16).fill(7)), 4);
      const r = preadBytes(b, 2, end, 16);
      assert.deepEqual(r instanceof Uint8Array ? [...r] : r, [7, 7, 7, 7]);
      assert.equal(preadBytes(b, 2, 1 << 20, 4), -EINVAL);
      /* an unimplemented BAR, and regions past VGA */
      assert.equal(preadBytes(b, 1, 0, 4), -EINVAL);
      assert.equal(preadBytes(b, 9, 0, 4), -EINVAL);
      assert.equal(preadBytes(b, 8, 0x3c0, 1), -EINVAL);
      /* a zero-length read is 0 before anything is looked at */
      const buf = userAlloc(b.p, 16);
      assert.equal(b.p.pread(b.device, buf, 0, regionOffset(12)), 0);
    });

    test('the MSI-X table reads as 0xff and swallows writes; the PBA and registers around it are live', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      assert.equal(triggerEventfds(b, VFIO_PCI_MSIX_IRQ_INDEX, 1).ret, 0);
      /* the host programmed entry 0; the user cannot see or change it */
      const r = preadBytes(b, 0, 0x2000, 16);
      assert.deepEqual(r instanceof Uint8Array ? [...r] : r, Array(16).fill(0xff));
      assert.equal(pwriteBytes(b, 0, 0x2000, new Uint8Array(16)), 16);
      const m = pdev(b).model as CopyEngineModel;
      assert.equal(m.mmioRead(0, 0x2000, 4), 0xfee00000n);
      /* a read straddling the table start: live bytes, then 0xff */
      const around = preadBytes(b, 0, 0x1ffc, 8);
      assert.deepEqual(
        around instanceof Uint8Array ? [...around] : around,
        [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
      );
      assert.equal(rd(b, 0, 0x3000, 4), 0);
    });

    test('the ROM: read-only, its image, 0xff past the image inside the BAR', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const head = preadBytes(b, 6, 0, 4);
      assert.deepEqual(head instanceof Uint8Array ? [...head] : head, [0x55, 0xaa, 4, 0]);
      assert.equal(rd(b, 6, 0x1c, 4), 0x52494350);
      const tail = preadBytes(b, 6, 0x7fe, 4);
      assert.deepEqual(tail instanceof Uint8Array ? [...tail] : tail, [0, 0, 0xff, 0xff]);
      assert.equal(pwriteBytes(b, 6, 0, new Uint8Array(4)), -EINVAL);
      assert.equal(preadBytes(b, 6, 0x10000, 1), -EINVAL);
      /* ROM decode is off again after the access */
      assert.equal(pdev(b).cfg.read(0x30, 4) & 1, 0);
    });

    test('memory decode off: 6.12 refuses with -EIO, 4.1 reaches the bus (all ones)', () => {
      const b = bench({ kernel });
      cfgWr(b, PCI_COMMAND, 2, cfgRd(b, PCI_COMMAND, 2) & ~PCI_COMMAND_MEMORY);
      const r = preadBytes(b, 0, 0, 4);
      if (k41) assert.deepEqual(r instanceof Uint8Array ? [...r] : r, [0xff, 0xff, 0xff, 0xff]);
      else assert.equal(r, -EIO);
      assert.equal(wr(b, 0, 0x04, 4, 1), k41 ? 4 : -EIO);
    });

    test('an I/O BAR: byte accesses to a 16550', () => {
      const b = bench({ kernel, model: 'serial' });
      const uart = pdev(b).model as SerialModel;
      assert.equal(rd(b, 0, 5, 1), 0x60);
      assert.equal(wr(b, 0, 0, 1, 0x48), 1);
      /* 9600 baud: a character takes 1.04 ms */
      b.host.kernel.clock.advance(2_000_000);
      assert.deepEqual(uart.output, [0x48]);
      /* loopback: what is sent comes back */
      wr(b, 0, 4, 1, 0x10);
      wr(b, 0, 0, 1, 0x49);
      b.host.kernel.clock.advance(2_000_000);
      assert.equal(rd(b, 0, 5, 1) & 1, 1);
      assert.equal(rd(b, 0, 0, 1), 0x49);
      assert.equal(preadBytes(b, 0, 8, 1), -EINVAL);
    });

    test('read/write use and advance the file position; the device fd cannot lseek', () => {
      const b = bench({ kernel });
      const buf = userAlloc(b.p, 8);
      /* no llseek in vfio_device_fops: -ESPIPE even where FMODE_LSEEK is set (4.1) */
      assert.equal(b.p.lseek(b.device, regionOffset(7), 0), -29n);
      wr(b, 0, 0x04, 4, 0);
      assert.equal(b.p.read(b.device, buf, 4), 4);
      assert.equal(b.p.read(b.device, buf + 4n, 4), 4);
      assert.deepEqual([...b.p.mem.read(buf, 8)], [0xed, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff]);
    });
  });

  describe(`mmap of BARs (${kernel})`, () => {
    test('a shared mapping of a memory BAR; device memory cannot be pinned or privately mapped', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const at = b.p.mmap(0n, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, regionOffset(2));
      assert.ok(at > 0n);
      b.p.mem.write(at + 16n, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
      assert.equal(rd64(b, 2, 16), 0x0807060504030201n);
      const vma = b.p.task.mm?.findVma(Number(at));
      assert.equal((vma?.vm_flags ?? 0) & 0x4400, 0x4400);
      assert.equal(vma?.pfnBase, pdev(b).resource[2]?.start);
      assert.equal(b.p.task.mm?.pinPage(Number(at), true), -14);
      assert.equal(b.p.mmap(0n, 4096, PROT_READ, MAP_PRIVATE, b.device, regionOffset(2)), -BigInt(EINVAL));
    });

    test('what cannot be mapped: past the BAR, the ROM, config, I/O BARs', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const map = (index: number, len: number, off = 0n): bigint =>
        b.p.mmap(0n, len, PROT_READ, MAP_SHARED, b.device, regionOffset(index) + off);
      assert.equal(map(2, 2 << 20), -22n);
      assert.equal(map(2, 4096, 1n << 20n), -22n);
      assert.equal(map(6, 4096), -22n);
      assert.equal(map(7, 4096), -22n);
      assert.equal(map(1, 4096), -22n);
      const u = bench({ kernel, model: 'serial' });
      assert.equal(u.p.mmap(0n, 4096, PROT_READ, MAP_SHARED, u.device, 0n), -22n);
    });

    test('the MSI-X BAR: 4.1 refuses a mapping over the table, 6.12 maps it', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const whole = b.p.mmap(0n, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, 0n);
      assert.equal(whole < 0n ? Number(whole) : 0, k41 ? -EINVAL : 0);
      /* around the table is fine in both */
      const regs = b.p.mmap(0n, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, 0n);
      assert.ok(regs > 0n);
    });

    test('memory decode off: 6.12 faults the access (SIGBUS), 4.1 reads all ones', () => {
      const b = bench({ kernel });
      const at = b.p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, 0n);
      assert.ok(at > 0n);
      cfgWr(b, PCI_COMMAND, 2, cfgRd(b, PCI_COMMAND, 2) & ~PCI_COMMAND_MEMORY);
      if (k41) assert.deepEqual([...b.p.mem.read(at, 4)], [0xff, 0xff, 0xff, 0xff]);
      else assert.throws(() => b.p.mem.read(at, 4), SegmentationFault);
      cfgWr(b, PCI_COMMAND, 2, cfgRd(b, PCI_COMMAND, 2) | PCI_COMMAND_MEMORY);
      assert.deepEqual([...b.p.mem.read(at, 4)], [0xed, 0x00, 0x00, 0x01]);
    });

    test('the mapping holds the device file: close(fd) leaves the device open until munmap', () => {
      const b = bench({ kernel });
      const at = b.p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, 0n);
      assert.equal(b.p.close(b.device), 0);
      assert.equal(pdev(b).enable_cnt, 1);
      assert.deepEqual([...b.p.mem.read(at, 4)], [0xed, 0x00, 0x00, 0x01]);
      assert.equal(b.p.munmap(at, 4096), 0);
      assert.equal(pdev(b).enable_cnt, 0);
    });
  });
}
