import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CopyEngineModel, EduModel, SerialModel } from '../../../src/devices/index.ts';
import {
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MEMORY,
  type PciDev,
  pci_channel_io_frozen,
} from '../../../src/pci/index.ts';
import {
  EBADF,
  EFAULT,
  EINVAL,
  ENOTTY,
  ERANGE,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
} from '../../../src/uapi/index.ts';
import { type Bench, bench, cfgRd, cfgWr, efdCount, s32s, setIrqs, triggerEventfds, wr } from './helpers.ts';

/*
 * VFIO_DEVICE_SET_IRQS: the header validation of each profile, then every
 * action of every index, with the interrupts a device really raises.
 */
const NONE = VFIO_IRQ_SET_DATA_NONE;
const BOOL = VFIO_IRQ_SET_DATA_BOOL;
const EFD = VFIO_IRQ_SET_DATA_EVENTFD;
const MASK = VFIO_IRQ_SET_ACTION_MASK;
const UNMASK = VFIO_IRQ_SET_ACTION_UNMASK;
const TRIGGER = VFIO_IRQ_SET_ACTION_TRIGGER;
const INTX = VFIO_PCI_INTX_IRQ_INDEX;
const MSI = VFIO_PCI_MSI_IRQ_INDEX;
const MSIX = VFIO_PCI_MSIX_IRQ_INDEX;
const ERR = VFIO_PCI_ERR_IRQ_INDEX;
const REQ = VFIO_PCI_REQ_IRQ_INDEX;

function pdev(b: Bench): PciDev {
  const d = b.host.device(b.bdf);
  assert.ok(d !== undefined);
  return d;
}

/** edu raises interrupt status bits through register 0x60 and acknowledges through 0x64 */
function eduRaise(b: Bench, v = 1): void {
  wr(b, 0, 0x60, 4, v);
}
function eduAck(b: Bench, v = 0xffffffff): void {
  wr(b, 0, 0x64, 4, v);
}

for (const kernel of ['4.1', '6.12'] as const) {
  const k41 = kernel === '4.1';
  describe(`SET_IRQS (${kernel})`, () => {
    test('header validation: the same errors in both profiles', () => {
      const b = bench({ kernel });
      const efd = b.p.eventfd(0, 0);
      const cases: [string, Parameters<typeof setIrqs>[1], number][] = [
        ['argsz < minsz', { flags: NONE | TRIGGER, index: INTX, count: 1, argsz: 19 }, -EINVAL],
        ['index past the last', { flags: NONE | TRIGGER, index: 5, count: 1 }, -EINVAL],
        ['unknown flag bit', { flags: NONE | TRIGGER | 0x40, index: INTX, count: 1 }, -EINVAL],
        ['no data type', { flags: TRIGGER, index: INTX, count: 1 }, -EINVAL],
        [
          'argsz short of the data',
          { flags: EFD | TRIGGER, index: INTX, count: 1, data: s32s(efd), argsz: 23 },
          -EINVAL,
        ],
        [
          'start beyond the vectors',
          { flags: EFD | TRIGGER, index: MSI, start: 1, count: 1, data: s32s(efd) },
          -EINVAL,
        ],
        [
          'start + count beyond',
          { flags: BOOL | TRIGGER, index: INTX, count: 2, data: new Uint8Array(2) },
          -EINVAL,
        ],
        ['no action', { flags: NONE, index: INTX, count: 1 }, -ENOTTY],
        ['two actions', { flags: NONE | MASK | UNMASK, index: INTX, count: 1 }, -ENOTTY],
        ['MSI mask', { flags: NONE | MASK, index: MSI, count: 1 }, -ENOTTY],
        ['MSI unmask', { flags: NONE | UNMASK, index: MSI, count: 1 }, -ENOTTY],
        ['REQ unmask', { flags: NONE | UNMASK, index: REQ, count: 1 }, -ENOTTY],
        ['INTx mask without INTx', { flags: NONE | MASK, index: INTX, count: 1 }, -EINVAL],
        ['INTx unmask without INTx', { flags: NONE | UNMASK, index: INTX, count: 1 }, -EINVAL],
        ['loopback without INTx', { flags: NONE | TRIGGER, index: INTX, count: 1 }, -EINVAL],
        ['MSI loopback without MSI', { flags: NONE | TRIGGER, index: MSI, count: 1 }, -EINVAL],
        ['a closed fd', { flags: EFD | TRIGGER, index: INTX, count: 1, data: s32s(99) }, -EBADF],
        ['not an eventfd', { flags: EFD | TRIGGER, index: INTX, count: 1, data: s32s(b.group) }, -EINVAL],
        /* nvec = start + count = 0: pci_enable_msi_range(pdev, 1, 0) refuses the range */
        ['MSI eventfds with count 0', { flags: EFD | TRIGGER, index: MSI, count: 0 }, -ERANGE],
        ['REQ count 2', { flags: NONE | TRIGGER, index: REQ, count: 2 }, -EINVAL],
        ['REQ BOOL count 0', { flags: BOOL | TRIGGER, index: REQ, count: 0 }, -EINVAL],
        ['REQ EVENTFD count 0', { flags: EFD | TRIGGER, index: REQ, count: 0 }, -EINVAL],
      ];
      for (const [what, o, want] of cases) assert.equal(setIrqs(b, o), want, what);
      /* the data must be readable */
      b.p.mem.write(b.arg, new Uint8Array(20));
      const hdr = new Uint8Array([
        24,
        0,
        0,
        0,
        EFD | TRIGGER,
        0,
        0,
        0,
        INTX,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
      ]);
      const end = b.arg + BigInt(b.p.pageSize) - 20n;
      b.p.mem.write(end, hdr);
      assert.equal(b.p.ioctl(b.device, 0x3b6e, end), -EFAULT);
    });

    test('header validation: where 4.1 and 6.12 differ', () => {
      const b = bench({ kernel });
      /* ERR on conventional PCI with DATA_NONE: 4.1 skips the range check and finds no handler */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: ERR, count: 0 }), k41 ? -ENOTTY : -EINVAL);
      /* two data types: 4.1 takes the first, 6.12 refuses */
      assert.equal(triggerEventfds(b, INTX, 1).ret, 0);
      assert.equal(
        setIrqs(b, { flags: NONE | BOOL | MASK, index: INTX, count: 1, data: new Uint8Array(1) }),
        k41 ? 0 : -EINVAL,
      );
      /* count == U32_MAX - start: 6.12's overflow guard; 4.1 lets NONE through to the handler */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: INTX, start: 0, count: 0xffffffff }), -EINVAL);
    });

    test('INTx: eventfd, automask, unmask by ioctl, BOOL, and by an unmask eventfd (virqfd)', () => {
      const b = bench({ kernel });
      const { ret, fds } = triggerEventfds(b, INTX, 1);
      assert.equal(ret, 0);
      const efd = fds[0] as number;
      eduRaise(b);
      assert.equal(efdCount(b, efd), 1n);
      /* automasked: DisINTx set in the hardware */
      assert.equal(pdev(b).cfg.read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_INTX_DISABLE);
      eduAck(b);
      assert.equal(setIrqs(b, { flags: BOOL | UNMASK, index: INTX, count: 1, data: new Uint8Array([0]) }), 0);
      eduRaise(b);
      assert.equal(efdCount(b, efd), 0n, 'BOOL 0 does not unmask');
      eduAck(b);
      assert.equal(setIrqs(b, { flags: BOOL | UNMASK, index: INTX, count: 1, data: new Uint8Array([1]) }), 0);
      eduRaise(b);
      assert.equal(efdCount(b, efd), 1n);
      eduAck(b);
      /* an unmask eventfd: writing it unmasks (what KVM's resampler does) */
      const unmask = b.p.eventfd(0, 0);
      assert.equal(setIrqs(b, { flags: EFD | UNMASK, index: INTX, count: 1, data: s32s(unmask) }), 0);
      assert.equal(
        setIrqs(b, { flags: EFD | UNMASK, index: INTX, count: 1, data: s32s(unmask) }),
        -16 /* EBUSY */,
      );
      const one = new Uint8Array(8);
      one[0] = 1;
      const ubuf = b.arg + 1024n;
      b.p.mem.write(ubuf, one);
      assert.equal(b.p.write(unmask, ubuf, 8), 8);
      eduRaise(b);
      assert.equal(efdCount(b, efd), 1n);
      /* unmask while still asserting: re-sent, not unmasked */
      b.p.write(unmask, ubuf, 8);
      assert.equal(efdCount(b, efd), 1n);
      assert.equal(setIrqs(b, { flags: EFD | UNMASK, index: INTX, count: 1, data: s32s(-1) }), 0);
      assert.equal(b.host.liveObjects().virqfd, undefined);
    });

    test('INTx: mask by ioctl; EVENTFD mask is not implemented', () => {
      const b = bench({ kernel });
      const { fds } = triggerEventfds(b, INTX, 1);
      const efd = fds[0] as number;
      assert.equal(setIrqs(b, { flags: NONE | MASK, index: INTX, count: 1 }), 0);
      eduRaise(b);
      assert.equal(efdCount(b, efd), 0n);
      assert.equal(setIrqs(b, { flags: EFD | MASK, index: INTX, count: 1, data: s32s(efd) }), -ENOTTY);
      /* unmasking with the interrupt pending delivers it */
      assert.equal(setIrqs(b, { flags: NONE | UNMASK, index: INTX, count: 1 }), 0);
      assert.equal(efdCount(b, efd), 1n);
    });

    test('INTx: loopback, a new eventfd, -1 keeps INTx on, count 0 turns it off', () => {
      const b = bench({ kernel });
      const { fds } = triggerEventfds(b, INTX, 1);
      const efd = fds[0] as number;
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: INTX, count: 1 }), 0);
      assert.equal(
        setIrqs(b, { flags: BOOL | TRIGGER, index: INTX, count: 1, data: new Uint8Array([1]) }),
        0,
      );
      assert.equal(
        setIrqs(b, { flags: BOOL | TRIGGER, index: INTX, count: 1, data: new Uint8Array([0]) }),
        0,
      );
      assert.equal(efdCount(b, efd), 2n);
      const efd2 = b.p.eventfd(0, 0x800);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: INTX, count: 1, data: s32s(efd2) }), 0);
      eduRaise(b);
      assert.deepEqual([efdCount(b, efd), efdCount(b, efd2)], [0n, 1n]);
      eduAck(b);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: INTX, count: 1, data: s32s(-1) }), 0);
      /* still INTx: MSI cannot be enabled */
      assert.equal(triggerEventfds(b, MSI, 1).ret, -EINVAL);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: INTX, count: 0 }), 0);
      assert.equal(triggerEventfds(b, MSI, 1).ret, 0);
      /* and now INTx cannot */
      assert.equal(triggerEventfds(b, INTX, 1).ret, -EINVAL);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: INTX, count: 0 }), -EINVAL);
    });

    test('INTx disable in the virtual command register masks delivery', () => {
      const b = bench({ kernel });
      const { fds } = triggerEventfds(b, INTX, 1);
      const efd = fds[0] as number;
      cfgWr(b, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
      eduRaise(b);
      assert.equal(efdCount(b, efd), 0n);
      /* virq_disabled: even the loopback is swallowed */
      setIrqs(b, { flags: NONE | TRIGGER, index: INTX, count: 1 });
      assert.equal(efdCount(b, efd), 0n);
      cfgWr(b, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
      assert.equal(efdCount(b, efd), 1n);
      assert.equal(cfgRd(b, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE, 0);
    });

    test('INTx on a PCI 2.2 function (no DisINTx): masked at the interrupt controller', () => {
      const b = bench({ kernel, model: 'serial' });
      const uart = pdev(b).model as SerialModel;
      const { ret, fds } = triggerEventfds(b, INTX, 1);
      assert.equal(ret, 0);
      const efd = fds[0] as number;
      /* IER: received data available */
      wr(b, 0, 1, 1, 0x01);
      uart.input([0x41]);
      assert.equal(efdCount(b, efd), 1n);
      uart.input([0x42]);
      assert.equal(efdCount(b, efd), 0n);
      /* unmask with the line still high: it fires again at once */
      assert.equal(setIrqs(b, { flags: NONE | UNMASK, index: INTX, count: 1 }), 0);
      assert.equal(efdCount(b, efd), 1n);
      /* drain the FIFO, unmask: quiet */
      wr(b, 0, 2, 1, 0x03);
      assert.equal(setIrqs(b, { flags: NONE | UNMASK, index: INTX, count: 1 }), 0);
      assert.equal(efdCount(b, efd), 0n);
      assert.equal(pdev(b).cfg.read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE, 0);
    });

    test('MSI: enable, per-vector eventfd change, loopback, disable', () => {
      const b = bench({ kernel });
      const { ret, fds } = triggerEventfds(b, MSI, 1);
      assert.equal(ret, 0);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: MSI, count: 1 }), 0);
      assert.equal(setIrqs(b, { flags: BOOL | TRIGGER, index: MSI, count: 1, data: new Uint8Array([1]) }), 0);
      assert.equal(efdCount(b, fds[0] as number), 2n);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: MSI, count: 1, data: s32s(-1) }), 0);
      eduRaise(b);
      assert.equal(efdCount(b, fds[0] as number), 0n);
      assert.equal((pdev(b).model as EduModel).irqStatus, 1);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: MSI, count: 0 }), 0);
      assert.equal(pdev(b).msiState, undefined);
      assert.equal(b.host.pci.msiVectorsInUse, 0);
    });

    test('MSI-X: vectors on eventfds, one at a time, and the positive return when fewer are granted', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      b.host.pci.msiVectorBudget = 2;
      /* asking for 4 when 2 are left: the ioctl answers 2 and enables nothing */
      const short = triggerEventfds(b, MSIX, 4);
      assert.equal(short.ret, 2);
      assert.equal(b.host.pci.msiVectorsInUse, 0);
      assert.equal(pdev(b).msiState, undefined);
      const { ret, fds } = triggerEventfds(b, MSIX, 2);
      assert.equal(ret, 0);
      /* one vector at a time: clear vector 0, keep vector 1 */
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: MSIX, start: 0, count: 1, data: s32s(-1) }), 0);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: MSIX, start: 0, count: 2 }), 0);
      assert.deepEqual(
        fds.map((fd) => efdCount(b, fd)),
        [0n, 1n],
      );
      /* a vector beyond those enabled: 4.1 refuses; 6.12 on x86 allocates it (the budget is spent: -ENOSPC) */
      const extra = b.p.eventfd(0, 0);
      assert.equal(
        setIrqs(b, { flags: EFD | TRIGGER, index: MSIX, start: 2, count: 1, data: s32s(extra) }),
        k41 ? -EINVAL : -28,
      );
      b.host.pci.msiVectorBudget = 8;
      assert.equal(
        setIrqs(b, { flags: EFD | TRIGGER, index: MSIX, start: 2, count: 1, data: s32s(extra) }),
        k41 ? -EINVAL : 0,
      );
      /* 4.1 also bounds the loopback by the enabled vectors */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: MSIX, start: 0, count: 3 }), k41 ? -EINVAL : 0);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: MSIX, count: 0 }), 0);
      assert.equal(b.host.pci.msiVectorsInUse, 0);
      assert.equal(b.host.liveObjects().irqaction, undefined);
    });

    test('MSI-X on ppc64 6.12: no dynamic vectors', () => {
      const b = bench({ kernel, arch: 'ppc64', model: 'copy-engine' });
      assert.equal(triggerEventfds(b, MSIX, 1).ret, 0);
      const extra = b.p.eventfd(0, 0);
      assert.equal(
        setIrqs(b, { flags: EFD | TRIGGER, index: MSIX, start: 1, count: 1, data: s32s(extra) }),
        -EINVAL,
      );
    });

    test('ERR: eventfd, loopback, clear; an AER error reaches the user', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const efd = b.p.eventfd(0, 0x800);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: ERR, count: 1, data: s32s(efd) }), 0);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: ERR, count: 1 }), 0);
      assert.equal(setIrqs(b, { flags: BOOL | TRIGGER, index: ERR, count: 1, data: new Uint8Array([1]) }), 0);
      assert.equal(efdCount(b, efd), 2n);
      const drv = pdev(b).driver as { err_handler?: { error_detected(p: PciDev, s: number): number } };
      assert.equal(
        b.host.inKernel(() => drv.err_handler?.error_detected(pdev(b), pci_channel_io_frozen)),
        2,
      );
      assert.equal(efdCount(b, efd), 1n);
      /* NONE with count 0: 6.12 drops the eventfd; 4.1's handler has no count and signals it */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: ERR, count: 0 }), 0);
      assert.equal(efdCount(b, efd), k41 ? 1n : 0n);
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: ERR, count: 1 }), k41 ? 0 : -EINVAL);
      /* 4.1 never checked ERR's start and count (DATA_NONE skips the header's range check too) */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: ERR, start: 3, count: 5 }), k41 ? 0 : -EINVAL);
      assert.equal(efdCount(b, efd), k41 ? 2n : 0n);
      /* an fd below -1: 4.1 refuses it, 6.12 ignores it */
      assert.equal(
        setIrqs(b, { flags: EFD | TRIGGER, index: ERR, count: 1, data: s32s(-2) }),
        k41 ? -EINVAL : 0,
      );
      /* BOOL with count 0: 4.1 read a zero-length copy (an oops); refused in both */
      assert.equal(setIrqs(b, { flags: BOOL | TRIGGER, index: ERR, count: 0 }), -EINVAL);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: ERR, count: 1, data: s32s(-1) }), 0);
      /* loopback with no eventfd: 4.1 succeeds doing nothing, 6.12 refuses */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: ERR, count: 1 }), k41 ? 0 : -EINVAL);
    });

    test('REQ: eventfd set, replaced, dropped; fds below -1: ignored (6.12), -EINVAL (4.1)', () => {
      const b = bench({ kernel });
      const a = b.p.eventfd(0, 0x800);
      const c = b.p.eventfd(0, 0x800);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: REQ, count: 1, data: s32s(a) }), 0);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: REQ, count: 1, data: s32s(c) }), 0);
      assert.equal(
        setIrqs(b, { flags: EFD | TRIGGER, index: REQ, count: 1, data: s32s(-2) }),
        k41 ? -EINVAL : 0,
      );
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: REQ, count: 1 }), 0);
      assert.deepEqual([efdCount(b, a), efdCount(b, c)], [0n, 1n]);
      /* NONE with count 0: 4.1 wants count 1; 6.12 drops the eventfd */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: REQ, count: 0 }), k41 ? -EINVAL : 0);
      assert.equal(setIrqs(b, { flags: EFD | TRIGGER, index: REQ, count: 1, data: s32s(-1) }), 0);
      /* loopback with no eventfd: 4.1 succeeds doing nothing, 6.12 refuses */
      assert.equal(setIrqs(b, { flags: NONE | TRIGGER, index: REQ, count: 1 }), k41 ? 0 : -EINVAL);
    });

    test('the last close turns interrupts off and gives every vector back', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const base = b.host.liveObjects();
      assert.equal(triggerEventfds(b, MSIX, 4).ret, 0);
      assert.equal(b.host.pci.msiVectorsInUse, 4);
      assert.equal(b.p.close(b.device), 0);
      assert.equal(b.host.pci.msiVectorsInUse, 0);
      assert.equal(pdev(b).msiState, undefined);
      const now = b.host.liveObjects();
      assert.equal(now.irqaction, undefined);
      assert.equal(now.vfio_pci_irq_ctx, undefined);
      void base;
      void (pdev(b).model as CopyEngineModel);
    });
  });
}
