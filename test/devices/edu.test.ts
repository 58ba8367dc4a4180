import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EDU_DMA_DELAY_NS, EDU_FACT_DELAY_NS, EduModel } from '../../src/devices/index.ts';
import {
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_MSI_FLAGS,
  type PciBus,
} from '../../src/pci/index.ts';
import {
  EFD_NONBLOCK,
  MAP_SHARED,
  POLLIN,
  PROT_READ,
  PROT_WRITE,
  VFIO_EEH_PE_OP,
  VFIO_EEH_PE_UNFREEZE_DMA,
  VFIO_EEH_PE_UNFREEZE_IO,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  vfio_eeh_pe_op,
} from '../../src/uapi/index.ts';
import { userAlloc } from '../helpers/user.ts';
import {
  type Bench,
  bench,
  cfgRd,
  cfgWr,
  dmaWindow,
  efdCount,
  mapDma,
  rd,
  rd64,
  regionOffset,
  s32s,
  setIrqs,
  triggerEventfds,
  unmapDma,
  wr,
} from '../vfio/pci/helpers.ts';

/*
 * QEMU's edu device as a VFIO user drives it: registers through pread/
 * pwrite and an mmapped BAR0, factorial, interrupts on eventfds, and DMA
 * through the IOMMU into the user's buffer.
 */
const BAR0 = 0;

function enableBusMaster(b: Bench): void {
  const cmd = cfgRd(b, PCI_COMMAND, 2);
  assert.equal(cfgWr(b, PCI_COMMAND, 2, cmd | PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY), 2);
}

function model(b: Bench): EduModel {
  const m = b.host.device(b.bdf)?.model;
  assert.ok(m instanceof EduModel);
  return m;
}

for (const kernel of ['4.1', '6.12'] as const) {
  describe(`edu through vfio-pci (${kernel})`, () => {
    test('identification, liveness and the register access rules', () => {
      const b = bench({ kernel });
      assert.equal(rd(b, BAR0, 0x00, 4), 0x010000ed);
      assert.equal(wr(b, BAR0, 0x04, 4, 0x12345678), 4);
      assert.equal(rd(b, BAR0, 0x04, 4), 0xedcba987);
      /* below 0x80 only 4-byte accesses reach the device; smaller ones read 0 */
      assert.equal(rd(b, BAR0, 0x00, 1), 0);
      assert.equal(rd(b, BAR0, 0x00, 2), 0);
      /* an unknown register reads all ones */
      assert.equal(rd(b, BAR0, 0x0c, 4), 0xffffffff);
      /* 8 bytes at 0x00: 4.1 splits into two dwords; 6.12 issues one 8-byte read (all ones below 0x80) */
      const q = rd64(b, BAR0, 0x00);
      assert.equal(q, kernel === '4.1' ? 0xedcba987_010000edn : 0xffff_ffff_ffff_ffffn);
    });

    test('factorial completes on the virtual clock and sets the status bit meanwhile', () => {
      const b = bench({ kernel });
      assert.equal(wr(b, BAR0, 0x08, 4, 10), 4);
      const status = model(b).status;
      assert.equal(status & 0x01, 0x01);
      /* a read takes bus time, the device works meanwhile */
      let spins = 0;
      while ((rd(b, BAR0, 0x20, 4) & 1) !== 0) spins++;
      assert.ok(spins < 10);
      assert.equal(rd(b, BAR0, 0x08, 4), 3628800);
      /* u32 arithmetic, as QEMU's */
      wr(b, BAR0, 0x08, 4, 13);
      while ((rd(b, BAR0, 0x20, 4) & 1) !== 0);
      assert.equal(rd(b, BAR0, 0x08, 4), 1932053504);
    });

    test('factorial interrupt on INTx: automasked, acknowledged, unmasked', () => {
      const b = bench({ kernel });
      const { ret, fds } = triggerEventfds(b, VFIO_PCI_INTX_IRQ_INDEX, 1);
      assert.equal(ret, 0);
      const efd = fds[0] as number;
      wr(b, BAR0, 0x20, 4, 0x80);
      wr(b, BAR0, 0x08, 4, 5);
      assert.equal(b.p.poll([{ fd: efd, events: POLLIN }], -1), 1);
      assert.equal(efdCount(b, efd), 1n);
      assert.equal(rd(b, BAR0, 0x24, 4), 0x01);
      /* masked: a raise while masked does not signal */
      wr(b, BAR0, 0x60, 4, 0x2);
      assert.equal(efdCount(b, efd), 0n);
      /* unmask while still asserted: vfio re-sends instead of unmasking */
      assert.equal(
        setIrqs(b, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }),
        0,
      );
      assert.equal(efdCount(b, efd), 1n);
      /* acknowledge everything, unmask, and the next raise comes through */
      wr(b, BAR0, 0x64, 4, 0x3);
      assert.equal(
        setIrqs(b, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }),
        0,
      );
      assert.equal(efdCount(b, efd), 0n);
      wr(b, BAR0, 0x60, 4, 0x4);
      assert.equal(efdCount(b, efd), 1n);
    });

    test('MSI: one vector on an eventfd, delivered per raise without masking', () => {
      const b = bench({ kernel });
      const { ret, fds } = triggerEventfds(b, VFIO_PCI_MSI_IRQ_INDEX, 1);
      assert.equal(ret, 0);
      const efd = fds[0] as number;
      /* the host programmed MSI in the hardware; the user sees its virtual copy */
      const pdev = b.host.device(b.bdf);
      assert.equal((pdev?.cfg.read(0x40 + PCI_MSI_FLAGS, 2) ?? 0) & 1, 1);
      /* an MSI is a memory write: without bus mastering it never reaches the host */
      wr(b, BAR0, 0x60, 4, 0x01);
      assert.equal(efdCount(b, efd), 0n);
      wr(b, BAR0, 0x64, 4, 0x01);
      enableBusMaster(b);
      wr(b, BAR0, 0x60, 4, 0x10);
      wr(b, BAR0, 0x60, 4, 0x20);
      assert.equal(efdCount(b, efd), 2n);
      assert.equal(rd(b, BAR0, 0x24, 4), 0x30);
    });

    test('DMA from and to the user buffer through the IOMMU', () => {
      const b = bench({ kernel });
      enableBusMaster(b);
      const buf = userAlloc(b.p, 2 * 4096);
      b.iommu.domain?.map(b.p, buf, 0x10000n, 2 * 4096);
      const msg = new TextEncoder().encode('hello from userspace');
      b.p.mem.write(buf, msg);
      /* RAM -> device buffer */
      wr(b, BAR0, 0x80, 8, 0x10000);
      wr(b, BAR0, 0x88, 8, 0x40000);
      wr(b, BAR0, 0x90, 8, msg.length);
      wr(b, BAR0, 0x98, 8, 0x1);
      assert.equal(rd(b, BAR0, 0x98, 4) & 1, 1);
      b.host.kernel.clock.advance(EDU_DMA_DELAY_NS);
      assert.equal(rd(b, BAR0, 0x98, 4) & 1, 0);
      assert.deepEqual(model(b).dmaBuf.subarray(0, msg.length), msg);
      /* device buffer -> RAM, second page, with the DMA interrupt on MSI */
      const { fds } = triggerEventfds(b, VFIO_PCI_MSI_IRQ_INDEX, 1);
      wr(b, BAR0, 0x80, 8, 0x40000);
      wr(b, BAR0, 0x88, 8, 0x11000);
      wr(b, BAR0, 0x90, 8, msg.length);
      wr(b, BAR0, 0x98, 8, 0x1 | 0x2 | 0x4);
      assert.equal(b.p.poll([{ fd: fds[0] as number, events: POLLIN }], -1), 1);
      assert.deepEqual(b.p.mem.read(buf + 4096n, msg.length), msg);
      assert.equal(rd(b, BAR0, 0x24, 4), 0x100);
      assert.equal(b.host.iommu.faults.length, 0);
    });

    test('DMA to an unmapped IOVA is refused by the IOMMU, logged, and memory stays untouched', () => {
      const b = bench({ kernel });
      enableBusMaster(b);
      const buf = userAlloc(b.p, 4096);
      b.iommu.domain?.map(b.p, buf, 0x10000n, 4096);
      b.p.mem.write(buf, new Uint8Array(64).fill(0x5a));
      model(b).dmaBuf.fill(0xa5);
      wr(b, BAR0, 0x80, 8, 0x40000);
      wr(b, BAR0, 0x88, 8, 0x20000);
      wr(b, BAR0, 0x90, 8, 64);
      wr(b, BAR0, 0x98, 8, 0x3);
      b.host.kernel.clock.advance(EDU_DMA_DELAY_NS);
      assert.equal(b.host.iommu.faults.length, 1);
      const f = b.host.iommu.faults[0];
      assert.equal(f?.iova, 0x20000n);
      assert.equal(f?.write, true);
      assert.equal(f?.device, b.bdf);
      assert.ok(b.host.dmesg().some((l) => l.includes('20000')));
      assert.deepEqual(b.p.mem.read(buf, 64), new Uint8Array(64).fill(0x5a));
      /* a refused read delivers zeros to the device */
      wr(b, BAR0, 0x80, 8, 0x30000);
      wr(b, BAR0, 0x88, 8, 0x40000);
      wr(b, BAR0, 0x98, 8, 0x1);
      b.host.kernel.clock.advance(EDU_DMA_DELAY_NS);
      assert.deepEqual(model(b).dmaBuf.subarray(0, 64), new Uint8Array(64));
      assert.equal(b.host.iommu.faults.length, 2);
    });

    test('no bus mastering, no DMA: nothing reaches the IOMMU or memory', () => {
      const b = bench({ kernel });
      const buf = userAlloc(b.p, 4096);
      b.iommu.domain?.map(b.p, buf, 0x10000n, 4096);
      model(b).dmaBuf.fill(0x77);
      wr(b, BAR0, 0x80, 8, 0x40000);
      wr(b, BAR0, 0x88, 8, 0x10000);
      wr(b, BAR0, 0x90, 8, 16);
      wr(b, BAR0, 0x98, 8, 0x3);
      b.host.kernel.clock.advance(EDU_DMA_DELAY_NS);
      assert.deepEqual(b.p.mem.read(buf, 16), new Uint8Array(16));
      assert.equal(b.host.iommu.faults.length, 0);
    });

    test('DMA addresses are masked to the DMA mask (28 bits by default, dmaMask otherwise)', () => {
      for (const [opts, expectIova] of [
        [{}, 0x0000_1000n],
        [{ dmaMask: 2 ** 32 - 1 }, 0x3000_1000n],
      ] as const) {
        const b = bench({ kernel, device: opts });
        enableBusMaster(b);
        wr(b, BAR0, 0x80, 8, 0x40000);
        /* (4.1 splits the 8-byte write: a 4-byte write to 0x88 replaces the whole register) */
        wr(b, BAR0, 0x88, 8, 0x3000_1000n);
        wr(b, BAR0, 0x90, 8, 8);
        wr(b, BAR0, 0x98, 8, 0x3);
        b.host.kernel.clock.advance(EDU_DMA_DELAY_NS);
        assert.equal(b.host.iommu.faults[0]?.iova, expectIova);
      }
    });

    test('BAR0 through mmap: every access reaches the device as MMIO', () => {
      const b = bench({ kernel });
      const map = b.p.mmap(0n, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, b.device, regionOffset(0));
      assert.ok(map > 0n);
      const u32 = (off: number): number =>
        new DataView(b.p.mem.read(map + BigInt(off), 4).buffer).getUint32(0, true);
      assert.equal(u32(0), 0x010000ed);
      const w = new Uint8Array(4);
      new DataView(w.buffer).setUint32(0, 0xdeadbeef, true);
      b.p.mem.write(map + 4n, w);
      assert.equal(u32(4), 0x21524110);
      assert.equal(model(b).addr4, 0x21524110);
      assert.equal(b.p.munmap(map, 1 << 20), 0);
    });
  });
}

for (const kernel of ['4.1', '6.12'] as const) {
  for (const arch of ['x86_64', 'ppc64'] as const) {
    test(`edu DMA through the platform IOMMU (${arch}, ${kernel}): mapped IOVAs work, others fault`, () => {
      const b = bench({ kernel, arch, realIommu: true });
      enableBusMaster(b);
      const win = dmaWindow(b);
      const page = b.p.pageSize;
      const buf = userAlloc(b.p, 2 * page);
      const iova = win.start + BigInt(page);
      assert.equal(mapDma(b, buf, iova, 2 * page), 0);
      const msg = new TextEncoder().encode(`edu on ${arch}`);
      b.p.mem.write(buf, msg);
      const dma = (src: bigint, dst: bigint, cmd: number): void => {
        wr(b, BAR0, 0x80, 4, src);
        wr(b, BAR0, 0x88, 4, dst);
        wr(b, BAR0, 0x90, 4, msg.length);
        wr(b, BAR0, 0x98, 4, cmd);
        b.host.kernel.clock.advance(EDU_DMA_DELAY_NS);
      };
      dma(iova, 0x40000n, 1);
      dma(0x40000n, iova + BigInt(page), 3);
      assert.deepEqual(b.p.mem.read(buf + BigInt(page), msg.length), msg);
      assert.equal(b.host.iommu.faults.length, 0);
      /* past the mapping: the IOMMU refuses, the fault is logged, nothing is written */
      dma(0x40000n, iova + BigInt(4 * page), 3);
      assert.equal(b.host.iommu.faults.length, 1);
      assert.equal(b.host.iommu.faults[0]?.iova, iova + BigInt(4 * page));
      if (arch === 'ppc64') {
        /* POWER freezes the PE on a DMA fault (EEH): MMIO reads all ones until the user thaws it */
        assert.equal(rd(b, BAR0, 0x00, 4), 0xffffffff);
        for (const op of [VFIO_EEH_PE_UNFREEZE_IO, VFIO_EEH_PE_UNFREEZE_DMA]) {
          b.p.mem.write(b.arg, vfio_eeh_pe_op.encode({ argsz: 12, flags: 0, op }));
          assert.equal(b.p.ioctl(b.container, VFIO_EEH_PE_OP, b.arg), 0);
        }
        assert.equal(rd(b, BAR0, 0x00, 4), 0x010000ed);
      }
      assert.ok(unmapDma(b, iova, 2 * page) >= 0);
      dma(0x40000n, iova, 3);
      assert.equal(b.host.iommu.faults.length, 2);
    });
  }
}

test("edu identity and config space are QEMU's", () => {
  const b = bench();
  assert.equal(cfgRd(b, 0x00, 4), 0x11e81234);
  assert.equal(cfgRd(b, 0x08, 4), 0x00ff0010);
  assert.equal(cfgRd(b, 0x2c, 4), 0x11001af4);
  assert.equal(cfgRd(b, 0x3d, 1), 1);
  assert.equal(cfgRd(b, 0x34, 1), 0x40);
  /* MSI: 64-bit, one vector, last in the chain */
  assert.equal(cfgRd(b, 0x40, 4), 0x00800005);
  void s32s;
  void EFD_NONBLOCK;
  void VFIO_IRQ_SET_DATA_EVENTFD;
  void VFIO_IRQ_SET_ACTION_TRIGGER;
});

/* the model on a bare bus: QEMU's edu.c register semantics, exact values */
function bareEdu(opts: { dmaMask?: number } = {}) {
  const log: string[] = [];
  let intx = false;
  let msiFlags = 0;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  let now = 0;
  const bus: PciBus = {
    dmaRead: (addr, buf) => {
      log.push(`read 0x${addr.toString(16)} ${buf.length}`);
      buf.fill(0xab);
      return true;
    },
    dmaWrite: (addr, data) => {
      log.push(`write 0x${addr.toString(16)} ${data.length}`);
      return true;
    },
    dmaCopy: () => undefined,
    setIntx: (level) => {
      intx = level;
    },
    msiNotify: (v) => {
      log.push(`msi ${v}`);
    },
    schedule: (delayNs, fn) => {
      const t = { at: now + delayNs, fn, live: true };
      timers.push(t);
      return {
        cancel: () => {
          t.live = false;
        },
      };
    },
    readConfig: (off) => (off === 0x40 + PCI_MSI_FLAGS ? msiFlags : 0),
  };
  const m = new EduModel(opts);
  m.realize(bus);
  const advance = (ns: number): void => {
    now += ns;
    for (const t of timers.splice(0)) {
      if (t.live && t.at <= now) t.fn();
      else if (t.live) timers.push(t);
    }
  };
  return {
    m,
    log,
    advance,
    intx: () => intx,
    setMsi: (on: boolean) => {
      msiFlags = on ? 1 : 0;
    },
    r: (addr: number, size = 4) => m.mmioRead(0, addr, size),
    w: (addr: number, v: number | bigint, size = 4) => m.mmioWrite(0, addr, size, BigInt(v)),
  };
}

test('edu registers on a bare bus: access sizes, factorial, DMA command, interrupts', () => {
  const e = bareEdu();
  /* invalid sizes: ~0 truncated to the access below 0x80; sub-dword and unaligned never reach it */
  assert.equal(e.r(0x00, 8), 0xffff_ffff_ffff_ffffn);
  assert.equal(e.r(0x84, 4), 0xffff_ffffn);
  assert.equal(e.r(0x84, 8), 0n);
  e.w(0x04, 0x1, 8);
  assert.equal(e.r(0x04), 0n);
  e.w(0x04, 0x1);
  assert.equal(e.r(0x04), 0xffff_fffen);
  /* factorial: writes while computing are dropped; n reads back until done */
  e.w(0x08, 5);
  e.w(0x08, 6);
  assert.equal(e.r(0x20), 0x01n);
  assert.equal(e.r(0x08), 5n);
  e.advance(EDU_FACT_DELAY_NS);
  assert.equal(e.r(0x08), 120n);
  assert.equal(e.r(0x20), 0n);
  assert.equal(e.r(0x24), 0n);
  /* status bit 0x01 is read-only; 0x80 raises interrupt 0x01 on completion */
  e.w(0x20, 0x81);
  assert.equal(e.r(0x20), 0x80n);
  e.w(0x08, 0);
  e.advance(EDU_FACT_DELAY_NS);
  assert.equal(e.r(0x08), 1n);
  assert.equal(e.r(0x24), 0x01n);
  assert.equal(e.intx(), true);
  /* ack drops INTx only when nothing is left */
  e.w(0x60, 0x10);
  e.w(0x64, 0x01);
  assert.equal(e.intx(), true);
  e.w(0x64, 0xffff_ffff);
  assert.equal(e.intx(), false);
  assert.equal(e.r(0x24), 0n);
  /* a raise of 0 with nothing pending signals nothing */
  e.setMsi(true);
  e.w(0x60, 0);
  assert.deepEqual(e.log, []);
  e.w(0x60, 0x2);
  e.w(0x60, 0);
  assert.deepEqual(e.log, ['msi 0', 'msi 0']);
  assert.equal(e.intx(), false);
  e.log.length = 0;
  e.w(0x64, 0x2);
  e.setMsi(false);

  /* DMA: a 4-byte write replaces the whole 64-bit field */
  e.w(0x80, 0x1_2345_6789n, 8);
  assert.equal(e.r(0x80, 8), 0x1_2345_6789n);
  e.w(0x80, 0x1000);
  assert.equal(e.r(0x80, 8), 0x1000n);
  e.w(0x88, 0x40010, 8);
  e.w(0x90, 16, 8);
  /* a command without the start bit is ignored */
  e.w(0x98, 0x4, 8);
  assert.equal(e.r(0x98, 8), 0n);
  e.w(0x98, 0x5, 8);
  assert.equal(e.r(0x98, 8), 0x5n);
  /* while running, the fields and the command are frozen */
  e.w(0x80, 0x2000, 8);
  e.w(0x98, 0x7, 8);
  assert.equal(e.r(0x80, 8), 0x1000n);
  assert.equal(e.r(0x98, 8), 0x5n);
  e.advance(EDU_DMA_DELAY_NS - 1);
  assert.deepEqual(e.log, []);
  e.advance(1);
  assert.deepEqual(e.log, ['read 0x1000 16']);
  assert.deepEqual(e.m.dmaBuf.subarray(0x0f, 0x21), Uint8Array.of(0, ...new Array(16).fill(0xab), 0));
  assert.equal(e.r(0x98, 8), 0x4n);
  assert.equal(e.r(0x24), 0x100n);
  assert.equal(e.intx(), true);
  assert.deepEqual(e.m.guestErrors, []);
});

test('edu DMA outside the buffer is logged as QEMU logs it and moves nothing', () => {
  const e = bareEdu();
  /* buffer -> RAM from past the end, to an address beyond the 28-bit mask */
  e.w(0x80, 0x40ff8, 8);
  e.w(0x88, 0x1234_5678n, 8);
  e.w(0x90, 16, 8);
  e.w(0x98, 0x7, 8);
  e.advance(EDU_DMA_DELAY_NS);
  assert.deepEqual(e.log, []);
  assert.deepEqual(e.m.guestErrors, [
    'EDU: DMA range 0x0000000000040ff8-0x0000000000041007 out of bounds (0x0000000000040000-0x0000000000040fff)!',
    'EDU: clamping DMA 0x0000000012345678 to 0x0000000002345678!',
  ]);
  /* the command still completes and interrupts */
  assert.equal(e.r(0x98, 8), 0x6n);
  assert.equal(e.r(0x24), 0x100n);
  /* an empty transfer at the buffer's start is in range */
  e.m.guestErrors.length = 0;
  e.w(0x80, 0, 8);
  e.w(0x88, 0x40000, 8);
  e.w(0x90, 0, 8);
  e.w(0x98, 0x1, 8);
  e.advance(EDU_DMA_DELAY_NS);
  assert.deepEqual(e.log, ['read 0x0 0']);
  /* ends that wrap print as QEMU's u64 arithmetic does */
  e.w(0x88, 0, 8);
  e.w(0x90, 0, 8);
  e.w(0x98, 0x1, 8);
  e.advance(EDU_DMA_DELAY_NS);
  e.w(0x88, 0x40000, 8);
  e.w(0x90, 0xffff_ffff_ffff_ffffn, 8);
  e.w(0x98, 0x1, 8);
  e.advance(EDU_DMA_DELAY_NS);
  assert.deepEqual(e.m.guestErrors, [
    'EDU: DMA range 0x0000000000000000-0xffffffffffffffff out of bounds (0x0000000000040000-0x0000000000040fff)!',
    'EDU: DMA range 0x0000000000040000-0x000000000003fffe out of bounds (0x0000000000040000-0x0000000000040fff)!',
  ]);
  assert.deepEqual(e.log, ['read 0x0 0']);
});
