import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CopyEngineModel } from '../../../src/devices/index.ts';
import {
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  type PciDev,
} from '../../../src/pci/index.ts';
import { EFAULT, VFIO_PCI_MSI_IRQ_INDEX } from '../../../src/uapi/index.ts';
import { type Bench, bench, cfgRd, cfgWr, preadBytes, pwriteBytes, triggerEventfds } from './helpers.ts';

/*
 * Config space as the user sees it through region 7: which bytes are
 * virtual, which reach the hardware, and the emulated registers (BAR
 * sizing, command, MSI, PCIe device control, PM), byte for byte.
 */
const CFG = 7;

function hw(b: Bench): PciDev {
  const d = b.host.device(b.bdf);
  assert.ok(d !== undefined);
  return d;
}

for (const kernel of ['4.1', '6.12'] as const) {
  describe(`config space virtualization (${kernel})`, () => {
    test('identity registers are read-only; writes succeed and change nothing', () => {
      const b = bench({ kernel });
      for (const [off, size] of [
        [0x00, 4],
        [0x08, 4],
        [0x2c, 4],
        [0x3d, 1],
        [0x34, 1],
      ] as const) {
        const before = cfgRd(b, off, size);
        assert.equal(cfgWr(b, off, size, 0), size);
        assert.equal(cfgRd(b, off, size), before);
      }
      assert.equal(hw(b).cfg.read(0, 4), 0x11e81234);
    });

    test('BAR sizing is emulated and never reaches the hardware BARs', () => {
      const edu = bench({ kernel });
      const hwBar0 = hw(edu).cfg.read(0x10, 4);
      assert.equal(cfgRd(edu, 0x10, 4), hwBar0);
      assert.equal(cfgWr(edu, 0x10, 4, 0xffffffff), 4);
      assert.equal(cfgRd(edu, 0x10, 4), 0xfff00000);
      assert.equal(hw(edu).cfg.read(0x10, 4), hwBar0);
      /* unimplemented BARs read 0 whatever is written */
      cfgWr(edu, 0x14, 4, 0xffffffff);
      assert.equal(cfgRd(edu, 0x14, 4), 0);
      /* no ROM: 0 */
      cfgWr(edu, 0x30, 4, 0xffffffff);
      assert.equal(cfgRd(edu, 0x30, 4), 0);
      cfgWr(edu, 0x10, 4, hwBar0);
      assert.equal(cfgRd(edu, 0x10, 4), hwBar0);

      const ce = bench({ kernel, model: 'copy-engine' });
      for (const off of [0x10, 0x18, 0x1c, 0x30]) cfgWr(ce, off, 4, 0xffffffff);
      assert.equal(cfgRd(ce, 0x10, 4), 0xffffc000);
      /* 1 MiB, 64-bit, prefetchable */
      assert.equal(cfgRd(ce, 0x18, 4), 0xfff0000c);
      assert.equal(cfgRd(ce, 0x1c, 4), 0xffffffff);
      /* 64 KiB ROM keeps its enable bit */
      assert.equal(cfgRd(ce, 0x30, 4), 0xffff0001);
      cfgWr(ce, 0x30, 4, 0xfffff800);
      assert.equal(cfgRd(ce, 0x30, 4), 0xffff0000);

      const uart = bench({ kernel, model: 'serial' });
      cfgWr(uart, 0x10, 4, 0xffffffff);
      assert.equal(cfgRd(uart, 0x10, 4), 0xfffffff9);
    });

    test('command register: bus master and memory reach the device, INTx disable is virtual', () => {
      const b = bench({ kernel });
      const cmd = cfgRd(b, PCI_COMMAND, 2);
      assert.equal(cmd & PCI_COMMAND_MASTER, 0);
      assert.equal(cmd & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
      const want = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
      assert.equal(cfgWr(b, PCI_COMMAND, 2, want), 2);
      assert.equal(cfgRd(b, PCI_COMMAND, 2), want);
      /*
       * The write itself never reaches the hardware's DisINTx; with INTx not
       * in use, vfio_pci_intx_mask makes the physical bit follow the virtual one.
       */
      assert.equal(hw(b).cfg.read(PCI_COMMAND, 2), want);
      cfgWr(b, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
      assert.equal(hw(b).cfg.read(PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
      assert.equal(cfgRd(b, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
    });

    test('status writes are dropped, error bits included', () => {
      const b = bench({ kernel });
      hw(b).cfg.set(0x06, 2, 0x2010);
      assert.equal(cfgRd(b, 0x06, 2), 0x2010);
      assert.equal(cfgWr(b, 0x06, 2, 0xffff), 2);
      assert.equal(hw(b).cfg.read(0x06, 2), 0x2010);
    });

    test('cache line size passes through; interrupt line is pure emulation', () => {
      const b = bench({ kernel });
      cfgWr(b, 0x0c, 1, 0x10);
      assert.equal(hw(b).cfg.read(0x0c, 1), 0x10);
      assert.equal(cfgRd(b, 0x0c, 1), 0x10);
      const line = hw(b).cfg.read(0x3c, 1);
      assert.equal(cfgRd(b, 0x3c, 1), line);
      cfgWr(b, 0x3c, 1, 0x42);
      assert.equal(cfgRd(b, 0x3c, 1), 0x42);
      assert.equal(hw(b).cfg.read(0x3c, 1), line);
    });

    test('MSI capability: MMC shows the enabled vectors, enable only through SET_IRQS, message virtual', () => {
      const b = bench({ kernel });
      /* 64-bit, MMC reported as 0 until MSI was enabled */
      assert.equal(cfgRd(b, 0x42, 2), 0x0080);
      assert.equal(cfgWr(b, 0x42, 2, 0x0081), 2);
      assert.equal(cfgRd(b, 0x42, 2), 0x0080);
      cfgWr(b, 0x44, 4, 0x12345678);
      cfgWr(b, 0x48, 4, 0x9abcdef0);
      cfgWr(b, 0x4c, 2, 0x4321);
      assert.deepEqual(
        [cfgRd(b, 0x44, 4), cfgRd(b, 0x48, 4), cfgRd(b, 0x4c, 2)],
        [0x12345678, 0x9abcdef0, 0x4321],
      );
      assert.equal(hw(b).cfg.read(0x44, 4), 0);
      assert.equal(triggerEventfds(b, VFIO_PCI_MSI_IRQ_INDEX, 1).ret, 0);
      /* the host programmed the hardware; the user's copy is untouched */
      assert.equal(hw(b).cfg.read(0x44, 4), 0xfee00000);
      assert.equal(cfgRd(b, 0x44, 4), 0x12345678);
      /* with MSI active the enable bit sticks; MME is clamped to what was granted (1 vector) */
      assert.equal(cfgWr(b, 0x42, 2, 0x00f1), 2);
      assert.equal(cfgRd(b, 0x42, 2), 0x0081);
      assert.equal(hw(b).cfg.read(0x42, 2) & 0x71, 0x01);
    });

    test('MSI-X capability writes are all dropped', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const before = cfgRd(b, 0x48, 4);
      assert.equal(before, 0x00035411);
      assert.equal(cfgWr(b, 0x4a, 2, 0xc000), 2);
      assert.equal(cfgRd(b, 0x48, 4), before);
      assert.equal(hw(b).cfg.read(0x4a, 2), 0x0003);
    });

    test('the capability chain reads as the hardware lays it out', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const chain: number[] = [];
      for (let pos = cfgRd(b, 0x34, 1); pos !== 0; pos = cfgRd(b, pos + 1, 1))
        chain.push(pos, cfgRd(b, pos, 1));
      assert.deepEqual(chain, [0x40, 0x01, 0x48, 0x11, 0x54, 0x10]);
      /* no extended capabilities: the first dword of extended space is 0 */
      assert.equal(cfgRd(b, 0x100, 4), 0);
    });

    test('PM capability: PME bits virtualized (6.12), power state change trapped', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const pmc = cfgRd(b, 0x42, 2);
      assert.equal(pmc & 0xf800, kernel === '6.12' ? 0 : 0x4000);
      assert.equal(hw(b).current_state, 0);
      cfgWr(b, 0x44, 2, 0x0003);
      assert.equal(hw(b).current_state, 3);
      cfgWr(b, 0x44, 2, 0x0000);
      assert.equal(hw(b).current_state, 0);
    });

    test('PCIe device control: FLR resets the function and reads back 0; MPS is virtual', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      const model = hw(b).model as CopyEngineModel;
      const devctl = 0x54 + 8;
      model.intCtrl = 0x3;
      const hwCtl = hw(b).cfg.read(devctl, 2);
      assert.equal(cfgWr(b, devctl, 2, hwCtl | 0x8000), 2);
      assert.equal(model.intCtrl, 0);
      assert.equal(cfgRd(b, devctl, 2) & 0x8000, 0);
      /* the BARs came back after the reset (pci_restore_state) */
      assert.notEqual(hw(b).cfg.read(0x10, 4), 0);
      /* MPS (bits 7:5) is virtualized: the user sees its write, the hardware keeps its own */
      cfgWr(b, devctl, 2, (hwCtl & ~0xe0) | 0x20);
      assert.equal(cfgRd(b, devctl, 2) & 0xe0, 0x20);
      assert.equal(hw(b).cfg.read(devctl, 2) & 0xe0, hwCtl & 0xe0);
    });

    test('accesses are split at capability boundaries and bounded by the config size', () => {
      const b = bench({ kernel });
      const across = preadBytes(b, CFG, 0x3c, 8);
      assert.ok(across instanceof Uint8Array);
      assert.deepEqual([...across.subarray(4)], [0x05, 0x00, 0x80, 0x00]);
      assert.equal(preadBytes(b, CFG, 0x100, 1), -EFAULT);
      assert.equal(preadBytes(b, CFG, 0xff, 2), -EFAULT);
      assert.equal(pwriteBytes(b, CFG, 0x100, new Uint8Array(4)), -EFAULT);
      const whole = preadBytes(b, CFG, 0, 256);
      assert.ok(whole instanceof Uint8Array && whole.length === 256);
    });

    test('bytes outside any capability go straight to the hardware', () => {
      const b = bench({ kernel, model: 'copy-engine' });
      hw(b).cfg.set(0xa0, 4, 0xcafef00d);
      assert.equal(cfgRd(b, 0xa0, 4), 0xcafef00d);
    });
  });
}
