import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type EventfdCtx,
  eventfdCtxFdget,
  eventfdCtxPut,
  eventfdSignal,
  fail,
  uarg,
} from '../../src/kernel/index.ts';
import { VfioContainer, type VfioDevice, VfioGroup, VfioVectorsError } from '../../src/lib/index.ts';
import {
  defineStruct,
  EINVAL,
  ENOSPC,
  ENOTTY,
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_INDEX_TO_OFFSET,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfio_region_info,
} from '../../src/uapi/index.ts';
import { throwsVfio } from './fixture.ts';
import {
  bytesFromUser,
  fromUser,
  SCRIPTED_BDF,
  SCRIPTED_GROUP,
  SCRIPTED_IOMMU,
  type Script,
  type Scripted,
  scriptedMachine,
  toUser,
} from './scripted.ts';

interface Opened {
  readonly s: Scripted;
  readonly c: VfioContainer;
  readonly g: VfioGroup;
  readonly d: VfioDevice;
  close(): void;
}

function open(script: Script): Opened {
  const s = scriptedMachine(script);
  const c = VfioContainer.open(s.p);
  const g = VfioGroup.open(s.p, SCRIPTED_GROUP);
  g.setContainer(c);
  c.setIommu(SCRIPTED_IOMMU);
  const d = g.device(SCRIPTED_BDF);
  return {
    s,
    c,
    g,
    d,
    close() {
      d.close();
      g.close();
      c.close();
      assert.deepEqual(s.host.liveObjects(), s.spawned, 'everything the library opened is closed');
    },
  };
}

test('GET_INFO: argsz 24, then the argsz the kernel asks for to fetch the capability chain', () => {
  const seen: number[] = [];
  const o = open({
    device(cmd, arg) {
      assert.equal(cmd, VFIO_DEVICE_GET_INFO);
      const { argsz } = fromUser(arg, vfio_device_info);
      seen.push(argsz);
      const flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_CAPS;
      const need = vfio_device_info.size + 16;
      if (argsz < need) {
        toUser(
          arg,
          vfio_device_info.encode({ argsz: need, flags, num_regions: 9, num_irqs: 5, cap_offset: 0 }),
        );
        return 0;
      }
      const out = new Uint8Array(need);
      vfio_device_info.encode({ argsz, flags, num_regions: 9, num_irqs: 5, cap_offset: 24 }, out);
      out.set([5, 0, 1, 0, 0, 0, 0, 0, 0b11, 0, 0, 0], 24); /* PCI_ATOMIC_COMP v1, COMP32|COMP64 */
      toUser(arg, out);
      return 0;
    },
  });
  const info = o.d.info();
  assert.deepEqual(seen, [24, 40]);
  assert.equal(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_CAPS);
  assert.equal(info.numRegions, 9);
  assert.equal(info.numIrqs, 5);
  assert.equal(info.reset, true);
  assert.equal(info.pci, true);
  assert.equal(info.pciAtomicComp, 0b11);
  assert.equal(info.raw.length, 1);
  o.close();
});

test('GET_INFO of a seed-era kernel: 16 bytes written back, no caps', () => {
  const o = open({
    device(_cmd, arg) {
      const { argsz } = fromUser(arg, vfio_device_info);
      assert.equal(argsz, 24);
      toUser(
        arg,
        vfio_device_info
          .encode({ argsz, flags: VFIO_DEVICE_FLAGS_PCI, num_regions: 9, num_irqs: 5 })
          .subarray(0, 16),
      );
      return 0;
    },
  });
  assert.deepEqual(o.d.info(), {
    flags: VFIO_DEVICE_FLAGS_PCI,
    numRegions: 9,
    numIrqs: 5,
    reset: false,
    pci: true,
    raw: [],
  });
  o.close();
});

/* A vfio-pci-like region table: BAR0 with a sparse-mmap cap, config space, no VGA. */
function regionScript(cmd: number, arg: bigint): number {
  if (cmd === VFIO_DEVICE_GET_INFO) {
    toUser(
      arg,
      vfio_device_info.encode({ argsz: 24, flags: VFIO_DEVICE_FLAGS_PCI, num_regions: 9, num_irqs: 5 }),
    );
    return 0;
  }
  assert.equal(cmd, VFIO_DEVICE_GET_REGION_INFO);
  const { argsz, index } = fromUser(arg, vfio_region_info);
  const offset = VFIO_PCI_INDEX_TO_OFFSET(index);
  const rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  if (index === 0) {
    const flags = rw | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
    const need = 32 + 16 + 32;
    if (argsz < need) {
      toUser(
        arg,
        vfio_region_info.encode({ argsz: need, flags, index, cap_offset: 0, size: 0x4000n, offset }),
      );
      return 0;
    }
    const out = new Uint8Array(need);
    vfio_region_info.encode({ argsz, flags, index, cap_offset: 32, size: 0x4000n, offset }, out);
    const dv = new DataView(out.buffer);
    dv.setUint16(32, 1, true);
    dv.setUint16(34, 1, true);
    dv.setUint32(40, 2, true);
    dv.setBigUint64(48, 0n, true);
    dv.setBigUint64(56, 0x1000n, true);
    dv.setBigUint64(64, 0x2000n, true);
    dv.setBigUint64(72, 0x2000n, true);
    toUser(arg, out);
    return 0;
  }
  if (index === 8) return fail(EINVAL, 'VFIO_DEVICE_GET_REGION_INFO: not a VGA device');
  if (index >= 9) return fail(EINVAL, 'VFIO_DEVICE_GET_REGION_INFO: no such region');
  const size = index === 7 ? 256n : 0n;
  toUser(
    arg,
    vfio_region_info.encode({ argsz, flags: size > 0n ? rw : 0, index, cap_offset: 0, size, offset }),
  );
  return 0;
}

test('GET_REGION_INFO: index sent, sparse mmap cap fetched with the bigger argsz, EINVAL regions left out', () => {
  const o = open({ device: regionScript });
  const bar0 = o.d.regionInfo(0);
  assert.deepEqual(bar0.sparseMmap, [
    { offset: 0n, size: 0x1000n },
    { offset: 0x2000n, size: 0x2000n },
  ]);
  assert.equal(bar0.size, 0x4000n);
  assert.equal(bar0.offset, 0n);
  assert.deepEqual(
    [bar0.readable, bar0.writable, bar0.mmappable, bar0.msixMappable],
    [true, true, true, false],
  );
  const cfg = o.d.config.info;
  assert.deepEqual(
    { ...cfg, raw: undefined },
    {
      index: 7,
      flags: 3,
      size: 256n,
      offset: 7n << 40n,
      readable: true,
      writable: true,
      mmappable: false,
      msixMappable: false,
      raw: undefined,
    },
  );
  throwsVfio(() => o.d.regionInfo(8), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_DEVICE_GET_REGION_INFO',
    fd: o.d.fd,
    message: `VFIO_DEVICE_GET_REGION_INFO(index 8) on fd ${o.d.fd} failed: EINVAL (Invalid argument): not a VGA device`,
  });
  assert.deepEqual(
    o.d.regions().map((r) => r.index),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.throws(() => o.d.bar(6), /BAR6: BARs are 0-5/);
  o.close();
});

test('region read/write: pread/pwrite at the region offset, scalars little-endian, short transfers refused', () => {
  const cfg = new Uint8Array(256);
  cfg.set([0x34, 0x12, 0xe8, 0x11], 0);
  const o = open({
    device: regionScript,
    read(buf, count, pos) {
      const off = Number(pos - (7n << 40n));
      if (off >= 256) return fail(14, 'config space: past its end');
      const n = Math.min(count, 256 - off);
      toUser(buf, cfg.subarray(off, off + n));
      return n;
    },
    write(buf, count, pos) {
      const off = Number(pos - (7n << 40n));
      cfg.set(bytesFromUser(buf, count), off);
      return count;
    },
  });
  const c = o.d.config;
  assert.equal(c.read16(0), 0x1234);
  assert.equal(c.read32(0), 0x11e8_1234);
  c.write16(4, 0x0406);
  assert.deepEqual([...cfg.subarray(4, 6)], [0x06, 0x04]);
  c.write64(8, 0x0102_0304_0506_0708n);
  assert.equal(c.read64(8), 0x0102_0304_0506_0708n);
  c.write8(0x3c, 0xab);
  assert.equal(c.read8(0x3c), 0xab);
  assert.deepEqual([...c.read(0xfe, 4)], [0, 0], 'a short read returns what the kernel gave');
  assert.throws(() => c.read32(0xfe), /region 7: short read of 2\/4 bytes at 0xfe/);
  throwsVfio(() => c.read32(0x100), {
    errno: 14,
    code: 'EFAULT',
    syscall: 'pread64',
    fd: o.d.fd,
    message: `pread64(${o.d.fd}, buf, 4, 0x70000000100) on fd ${o.d.fd} failed: EFAULT (Bad address): config space: past its end`,
  });
  assert.deepEqual(
    o.s.calls.filter((x) => x.startsWith('write')),
    ['write 2 @0x70000000004', 'write 8 @0x70000000008', 'write 1 @0x7000000003c'],
  );
  o.close();
});

test('mmap of a region: MAP_SHARED at the region offset, accesses reach the device, close unmaps', () => {
  const bar = new Uint8Array(0x4000);
  const o = open({ device: regionScript, mmapBacking: bar });
  const before = o.s.host.liveObjects();
  const r = o.d.bar(0);
  const all = r.mmap();
  assert.equal(all.size, 0x4000n);
  all.write32(0x10, 0xdead_beef);
  assert.deepEqual([...bar.subarray(0x10, 0x14)], [0xef, 0xbe, 0xad, 0xde]);
  bar.set([1, 2, 3, 4, 5, 6, 7, 8], 0x20);
  assert.equal(all.read64(0x20), 0x0807_0605_0403_0201n);
  assert.equal(all.read16(0x20), 0x0201);
  assert.throws(() => all.read32(0x3ffe), /offset 0x3ffe\+4 is outside the 0x4000-byte mapping/);
  const areas = r.mmapAreas();
  assert.deepEqual(
    areas.map((a) => [a.regionOffset, a.size]),
    [
      [0n, 0x1000n],
      [0x2000n, 0x2000n],
    ],
  );
  assert.deepEqual(
    o.s.calls.filter((x) => x.startsWith('mmap')),
    ['mmap pgoff 0x0 len 0x4000', 'mmap pgoff 0x0 len 0x1000', 'mmap pgoff 0x2 len 0x2000'],
  );
  assert.deepEqual(
    o.s.calls.filter((x) => x.startsWith('mmio')),
    ['mmio write 4 @0x10', 'mmio read 8 @0x20', 'mmio read 2 @0x20'],
  );
  /* a register block as a struct layout: read whole, written field by field */
  const block = defineStruct('regs', 16, { ctrl: ['u32', 0], status: ['u32', 4], base: ['u64', 8] });
  all.set(block, { ctrl: 0x11, base: 0x1234_5678_9abc_def0n }, 0x100);
  bar.set([0xaa, 0xbb, 0xcc, 0xdd], 0x104);
  assert.deepEqual(all.get(block, 0x100), { ctrl: 0x11, status: 0xddcc_bbaa, base: 0x1234_5678_9abc_def0n });
  assert.deepEqual(
    o.s.calls.filter((x) => x.startsWith('mmio') && (x.endsWith('@0x100') || x.endsWith('@0x108'))),
    ['mmio write 4 @0x100', 'mmio write 8 @0x108', 'mmio read 16 @0x100'],
  );
  assert.throws(() => all.set(block, { nope: 1 } as never, 0), /regs has no field nope/);
  all.unmap();
  all.unmap();
  assert.throws(() => all.read32(0), /was unmapped/);
  /* the config region is not mmappable: the kernel says so */
  throwsVfio(() => o.d.config.mmap(), {
    errno: EINVAL,
    code: 'EINVAL',
    syscall: 'mmap',
    fd: o.d.fd,
    message: /: not mmappable$/,
  });
  assert.notDeepEqual(o.s.host.liveObjects(), before);
  o.close(); /* unmaps the two areas */
});

test('GET_IRQ_INFO: index sent, flags decoded', () => {
  const o = open({
    device(cmd, arg) {
      if (cmd === VFIO_DEVICE_GET_INFO) {
        toUser(
          arg,
          vfio_device_info.encode({ argsz: 24, flags: VFIO_DEVICE_FLAGS_PCI, num_regions: 9, num_irqs: 5 }),
        );
        return 0;
      }
      assert.equal(cmd, VFIO_DEVICE_GET_IRQ_INFO);
      const { index, argsz } = fromUser(arg, vfio_irq_info);
      assert.equal(argsz, 16);
      if (index > 4) return fail(EINVAL, 'VFIO_DEVICE_GET_IRQ_INFO: index out of range');
      if (index === 3) return fail(EINVAL, 'VFIO_DEVICE_GET_IRQ_INFO: ERR on a conventional PCI device');
      const flags =
        index === 0
          ? VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED
          : VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
      toUser(arg, vfio_irq_info.encode({ argsz, flags, index, count: index === 2 ? 8 : 1 }));
      return 0;
    },
  });
  assert.deepEqual(o.d.irqInfo(0), {
    index: 0,
    flags: 7,
    count: 1,
    eventfd: true,
    maskable: true,
    automasked: true,
    noresize: false,
  });
  assert.deepEqual(o.d.irqInfo(2), {
    index: 2,
    flags: 9,
    count: 8,
    eventfd: true,
    maskable: false,
    automasked: false,
    noresize: true,
  });
  assert.deepEqual(
    o.d.irqs().map((i) => i.index),
    [0, 1, 2, 4],
    'the refused ERR index is left out',
  );
  throwsVfio(() => o.d.irqInfo(5), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_DEVICE_GET_IRQ_INFO',
    message: /\(index 5\) on fd \d+ failed: EINVAL \(Invalid argument\): index out of range$/,
  });
  o.close();
});

interface IrqCall {
  flags: number;
  index: number;
  start: number;
  count: number;
  data: number[];
}

/*
 * SET_IRQS as a bus driver sees it: the header, the payload, and for
 * eventfds the kernel's own eventfd contexts (eventfd_ctx_fdget in the
 * caller's context), kept per vector so a test can fire them.
 */
class IrqModel {
  readonly calls: IrqCall[] = [];
  readonly ctxs = new Map<number, EventfdCtx>();
  reply: (c: IrqCall) => number = () => 0;

  script(): Script {
    return {
      device: (cmd, arg) => {
        assert.equal(cmd, VFIO_DEVICE_SET_IRQS);
        const h = fromUser(arg, vfio_irq_set);
        const n = h.argsz - vfio_irq_set.size;
        const raw = bytesFromUser(uarg(arg) + vfio_irq_set.size, n);
        const ev = (h.flags & VFIO_IRQ_SET_DATA_EVENTFD) !== 0;
        const data = ev ? [...new Int32Array(raw.slice().buffer, 0, n / 4)] : [...raw];
        const c = { flags: h.flags, index: h.index, start: h.start, count: h.count, data };
        this.calls.push(c);
        const r = this.reply(c);
        if (r !== 0) return r;
        if (ev)
          data.forEach((fd, i) => {
            this.drop(h.start + i);
            const ctx = eventfdCtxFdget(fd);
            if (typeof ctx !== 'number') this.ctxs.set(h.start + i, ctx);
          });
        else if (h.count === 0 && h.flags & VFIO_IRQ_SET_ACTION_TRIGGER) this.dropAll();
        return 0;
      },
      release: () => this.dropAll(),
    };
  }

  private drop(v: number): void {
    const c = this.ctxs.get(v);
    if (c !== undefined) eventfdCtxPut(c);
    this.ctxs.delete(v);
  }

  private dropAll(): void {
    for (const v of [...this.ctxs.keys()]) this.drop(v);
  }

  /** the device raises vector v (from kernel context, as an interrupt handler) */
  fire(s: Scripted, v: number): void {
    const c = this.ctxs.get(v);
    assert.ok(c !== undefined, `vector ${v} has no eventfd`);
    s.host.inKernel(() => eventfdSignal(c));
  }
}

const TRIGGER_EVENTFD = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
const TRIGGER_NONE = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;

test('MSI-X on eventfds: the fds sent, the device fires them, wait/count/next consume them', () => {
  const m = new IrqModel();
  const o = open(m.script());
  const irqs = o.d.enableMsix(3);
  assert.deepEqual(m.calls, [
    { flags: TRIGGER_EVENTFD, index: 2, start: 0, count: 3, data: irqs.map((i) => i.fd) },
  ]);
  assert.deepEqual(
    irqs.map((i) => [i.index, i.vector]),
    [
      [2, 0],
      [2, 1],
      [2, 2],
    ],
  );
  const v1 = irqs[1]!;
  assert.equal(v1.wait(0), false);
  assert.equal(v1.count(), 0n);
  m.fire(o.s, 1);
  m.fire(o.s, 1);
  assert.equal(v1.wait(0), true);
  assert.equal(v1.count(), 2n);
  assert.equal(v1.count(), 0n);
  assert.equal(v1.next(5), 0n, 'nothing pending: the wait times out on the virtual clock');
  m.fire(o.s, 2);
  assert.equal(irqs[2]!.next(5), 1n);
  assert.equal(irqs[0]!.wait(0), false);
  assert.deepEqual(o.d.interrupts(2), irqs);
  const v0 = irqs[0]!;
  o.close();
  assert.throws(() => v0.wait(0), /interrupt wait: eventfd \d+ was closed by this library/);
  assert.throws(
    () => v0.count(),
    /interrupt count: eventfd \d+ was closed/,
  ); /* closes the three eventfds; the driver's release drops its references */
});

test('a kernel that grants fewer vectors: VfioVectorsError with the count, no eventfd left open', () => {
  const m = new IrqModel();
  m.reply = (c) => (c.index === 1 && c.count > 2 ? 2 : 0);
  const o = open(m.script());
  const before = o.s.host.liveObjects();
  const e = throwsVfio(() => o.d.enableMsi(4), {
    errno: ENOSPC,
    code: 'ENOSPC',
    request: 'VFIO_DEVICE_SET_IRQS',
    message: `VFIO_DEVICE_SET_IRQS(index 1, start 0, count 4, DATA_EVENTFD|ACTION_TRIGGER) on fd ${o.d.fd} failed: ENOSPC (No space left on device): the kernel can enable only 2 vectors (SET_IRQS returned 2)`,
  });
  assert.ok(e instanceof VfioVectorsError);
  assert.equal(e.requested, 4);
  assert.equal(e.granted, 2);
  assert.deepEqual(o.s.host.liveObjects(), before, 'the four eventfds were closed');
  assert.equal(o.d.enableMsi(2).length, 2);
  o.close();
});

test('a refused SET_IRQS closes the eventfds it made and names the reason', () => {
  const m = new IrqModel();
  m.reply = () => fail(EINVAL, 'VFIO_DEVICE_SET_IRQS: start + count > the vectors of index 0');
  const o = open(m.script());
  const before = o.s.host.liveObjects();
  throwsVfio(() => o.d.enableIntx(), {
    errno: EINVAL,
    code: 'EINVAL',
    message: `VFIO_DEVICE_SET_IRQS(index 0, start 0, count 1, DATA_EVENTFD|ACTION_TRIGGER) on fd ${o.d.fd} failed: EINVAL (Invalid argument): start + count > the vectors of index 0`,
  });
  assert.deepEqual(o.s.host.liveObjects(), before);
  assert.deepEqual(o.d.interrupts(0), []);
  o.close();
});

test('INTx, ERR, REQ, disable, mask, unmask, loopback: the exact SET_IRQS headers', () => {
  const m = new IrqModel();
  const o = open(m.script());
  const intx = o.d.enableIntx();
  const err = o.d.enableErr();
  const req = o.d.enableReq();
  o.d.maskIntx();
  o.d.unmaskIntx();
  o.d.trigger(0);
  o.d.trigger(2, 1, 3);
  o.d.disableInterrupts(0);
  assert.equal(intx.isClosed, true, 'disabling an index closes its eventfds');
  assert.equal(err.isClosed, false);
  const irq = (flags: number, index: number, start: number, count: number, data: number[] = []): IrqCall => ({
    flags,
    index,
    start,
    count,
    data,
  });
  assert.deepEqual(m.calls, [
    irq(TRIGGER_EVENTFD, 0, 0, 1, [intx.fd]),
    irq(TRIGGER_EVENTFD, 3, 0, 1, [err.fd]),
    irq(TRIGGER_EVENTFD, 4, 0, 1, [req.fd]),
    irq(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 0, 1),
    irq(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 0, 1),
    irq(TRIGGER_NONE, 0, 0, 1),
    irq(TRIGGER_NONE, 2, 1, 3),
    irq(TRIGGER_NONE, 0, 0, 0),
  ]);
  /* the same vector enabled again replaces (and closes) the old eventfd */
  const req2 = o.d.enableReq();
  assert.equal(req.isClosed, true);
  assert.deepEqual(o.d.interrupts(4), [req2]);
  o.close();
  assert.equal(err.isClosed, true);
  assert.equal(req2.isClosed, true);
});

test('RESET: no argument; the errno and reason of a refusal', () => {
  let ok = true;
  const o = open({
    device(cmd, arg) {
      assert.equal(cmd, VFIO_DEVICE_RESET);
      assert.equal(arg, 0n);
      return ok ? 0 : fail(EINVAL, 'VFIO_DEVICE_RESET: the device has no working reset method');
    },
  });
  o.d.reset();
  ok = false;
  throwsVfio(() => o.d.reset(), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_DEVICE_RESET',
    message: `VFIO_DEVICE_RESET() on fd ${o.d.fd} failed: EINVAL (Invalid argument): the device has no working reset method`,
  });
  o.close();
});

test('hot reset info: ENOSPC with the count, then the list; hot reset with the group fds', () => {
  const devs = [
    { group_id: 7, segment: 0, bus: 0, devfn: 0x38 },
    { group_id: 9, segment: 1, bus: 0x3a, devfn: 0x0b },
  ];
  const argszs: number[] = [];
  const resets: { argsz: number; flags: number; count: number; fds: number[] }[] = [];
  const o = open({
    device(cmd, arg) {
      if (cmd === VFIO_DEVICE_GET_PCI_HOT_RESET_INFO) {
        const { argsz } = fromUser(arg, vfio_pci_hot_reset_info);
        argszs.push(argsz);
        const need = 12 + devs.length * 8;
        if (argsz < need) {
          toUser(arg, vfio_pci_hot_reset_info.encode({ argsz, flags: 0, count: devs.length }));
          return -ENOSPC;
        }
        const out = new Uint8Array(need);
        vfio_pci_hot_reset_info.encode({ argsz, flags: 0, count: devs.length }, out);
        for (const [i, d] of devs.entries()) vfio_pci_dependent_device.encode(d, out, 12 + i * 8);
        toUser(arg, out);
        return 0;
      }
      assert.equal(cmd, VFIO_DEVICE_PCI_HOT_RESET);
      const h = fromUser(arg, vfio_pci_hot_reset);
      const fds = [...new Int32Array(bytesFromUser(uarg(arg) + 12, h.count * 4).buffer)];
      resets.push({ argsz: h.argsz, flags: h.flags, count: h.count, fds });
      return fds.includes(-1)
        ? fail(EINVAL, 'VFIO_DEVICE_PCI_HOT_RESET: group fd -1 is not a VFIO group')
        : 0;
    },
  });
  assert.deepEqual(o.d.hotResetInfo(), {
    flags: 0,
    devices: [
      { groupId: 7, segment: 0, bus: 0, devfn: 0x38, bdf: '0000:00:07.0' },
      { groupId: 9, segment: 1, bus: 0x3a, devfn: 0x0b, bdf: '0001:3a:01.3' },
    ],
  });
  assert.deepEqual(argszs, [12, 28]);
  o.d.hotReset([o.g, 12]);
  throwsVfio(() => o.d.hotReset([-1]), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_DEVICE_PCI_HOT_RESET',
    message:
      /\(group fds \[-1\]\) on fd \d+ failed: EINVAL \(Invalid argument\): group fd -1 is not a VFIO group$/,
  });
  assert.deepEqual(resets, [
    { argsz: 20, flags: 0, count: 2, fds: [o.g.fd, 12] },
    { argsz: 16, flags: 0, count: 1, fds: [-1] },
  ]);
  o.close();
});

test('hot reset info refused outright (no reset method): ENODEV', () => {
  const o = open({ device: () => fail(19, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: no slot or bus reset') });
  throwsVfio(() => o.d.hotResetInfo(), {
    errno: 19,
    code: 'ENODEV',
    message: `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO() on fd ${o.d.fd} failed: ENODEV (No such device): no slot or bus reset`,
  });
  o.close();
});

test('an unknown device ioctl reaches the driver (ENOTTY); a closed device refuses use', () => {
  const o = open({ device: (cmd) => fail(ENOTTY, `scripted: ioctl 0x${cmd.toString(16)}`) });
  throwsVfio(() => o.d.irqInfo(0), { errno: ENOTTY, code: 'ENOTTY' });
  const d = o.d;
  o.close();
  assert.throws(() => d.reset(), /VFIO_DEVICE_RESET: fd \d+ was closed by this library/);
  assert.throws(() => d.config, /was closed/);
});

test('scratch memory grows for big transfers and is unmapped with the last object', () => {
  const o = open({
    device: regionScript,
    read(buf, count) {
      toUser(
        buf,
        new Uint8Array(count).map((_, i) => i & 0xff),
      );
      return count;
    },
  });
  const vmas = (): number => o.s.host.liveObjects().vm_area_struct ?? 0;
  const small = vmas();
  const big = o.d.bar(1).read(0, 3 * 4096 + 5);
  assert.equal(big.length, 3 * 4096 + 5);
  assert.equal(big[4097], 1);
  assert.equal(vmas(), small, 'the scratch area was replaced by a bigger one, not added to');
  o.close();
  assert.equal(o.s.host.liveObjects().vm_area_struct, undefined);
});
