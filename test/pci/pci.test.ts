import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CE_REG_RING_SIZE } from '../../src/devices/index.ts';
import { Host } from '../../src/host/index.ts';
import {
  disableIrqNosync,
  enableIrq,
  freeIrq,
  IRQ_HANDLED,
  IRQ_NONE,
  irqToDesc,
  PCI_BASE_ADDRESS_0,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_IRQ_MSI,
  PCI_IRQ_MSIX,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  type PciDev,
  pciAllocIrqVectors,
  pciBarRead,
  pciBarWrite,
  pciBusResetAffected,
  pciDisableDevice,
  pciEnableDevice,
  pciFreeIrqVectors,
  pciIntxMaskSupported,
  pciIrqVector,
  pciMapRom,
  pciProbeResetBus,
  pciProbeResetFunction,
  pciReadConfig,
  pciResetBridgeSecondaryBus,
  pciResetFunction,
  pciRestoreState,
  pciSaveState,
  pciUnmapRom,
  pciWriteConfig,
  requestIrq,
} from '../../src/pci/index.ts';
import { ENOSPC, ENOTTY } from '../../src/uapi/index.ts';

/*
 * The PCI core under vfio-pci: what the hardware models answer to config
 * cycles (BAR sizing, capability chains, ROM images), the host's interrupt
 * lines and MSI budget, function and bus resets, saved state.
 */
const PORT = '0000:00:1c.0';
const CE = '0000:01:00.0';
const SERIAL = '0000:01:00.1';
const EDU = '0000:00:03.0';

function topology(kernel: '4.1' | '6.12') {
  const h = new Host({ kernel });
  const port = h.addPciDevice({ bdf: PORT, model: 'pcie-root-port', iommuGroup: 1 });
  const ce = h.addPciDevice({ bdf: CE, model: 'copy-engine', parent: PORT, iommuGroup: 2 });
  const serial = h.addPciDevice({ bdf: SERIAL, model: 'serial', parent: PORT, iommuGroup: 2 });
  const edu = h.addPciDevice({ bdf: EDU, model: 'edu', iommuGroup: 3 });
  return { h, port, ce, serial, edu };
}

function cfg(h: Host, d: PciDev, off: number, size: 1 | 2 | 4 = 4): number {
  return h.inKernel(() => pciReadConfig(d, off, size) ?? -1) >>> 0;
}

/** write all ones to a BAR and read back what sticks, restoring it after */
function sizeBar(h: Host, d: PciDev, off: number): number {
  return h.inKernel(() => {
    const old = pciReadConfig(d, off, 4) ?? 0;
    pciWriteConfig(d, off, 4, 0xffffffff);
    const v = (pciReadConfig(d, off, 4) ?? 0) >>> 0;
    pciWriteConfig(d, off, 4, old);
    return v;
  });
}

/** the capability ids in list order with their offsets */
function capChain(h: Host, d: PciDev): [number, number][] {
  const out: [number, number][] = [];
  let pos = cfg(h, d, PCI_CAPABILITY_LIST, 1);
  while (pos !== 0) {
    out.push([cfg(h, d, pos, 1), pos]);
    pos = cfg(h, d, pos + 1, 1);
  }
  return out;
}

for (const kernel of ['4.1', '6.12'] as const) {
  describe(`PCI core, ${kernel}`, () => {
    test('BAR sizing: the bits that stick give size and type', () => {
      const { h, ce, serial, edu } = topology(kernel);
      /* copy engine: BAR0 16 KiB 32-bit memory, BAR2/3 1 MiB 64-bit prefetchable */
      assert.equal(sizeBar(h, ce, PCI_BASE_ADDRESS_0), 0xffffc000);
      assert.equal(sizeBar(h, ce, PCI_BASE_ADDRESS_0 + 4), 0);
      assert.equal(sizeBar(h, ce, PCI_BASE_ADDRESS_0 + 8), 0xfff0000c);
      assert.equal(sizeBar(h, ce, PCI_BASE_ADDRESS_0 + 12), 0xffffffff);
      /* serial: 8 bytes of I/O */
      assert.equal(sizeBar(h, serial, PCI_BASE_ADDRESS_0), 0xfffffff9);
      /* edu: 1 MiB of 32-bit memory */
      assert.equal(sizeBar(h, edu, PCI_BASE_ADDRESS_0), 0xfff00000);
      /* the assigned addresses are back after sizing */
      assert.equal(cfg(h, ce, PCI_BASE_ADDRESS_0), ce.resource[0]?.start);
      assert.equal(cfg(h, serial, PCI_BASE_ADDRESS_0), ((serial.resource[0]?.start ?? 0) | 1) >>> 0);
    });

    test('capability chains as the models build them', () => {
      const { h, port, ce, serial, edu } = topology(kernel);
      assert.deepEqual(capChain(h, ce), [
        [PCI_CAP_ID_PM, 0x40],
        [PCI_CAP_ID_MSIX, 0x48],
        [PCI_CAP_ID_EXP, 0x54],
      ]);
      assert.deepEqual([ce.pm_cap, ce.msix_cap, ce.pcie_cap, ce.msi_cap], [0x40, 0x48, 0x54, 0]);
      /* MSI-X: 4 entries, table in BAR0 at 0x2000, PBA in BAR0 at 0x3000 */
      assert.equal(cfg(h, ce, 0x48 + 2, 2), 3);
      assert.equal(cfg(h, ce, 0x48 + 4), 0x2000);
      assert.equal(cfg(h, ce, 0x48 + 8), 0x3000);
      /* edu: one 64-bit MSI capability, conventional PCI */
      assert.deepEqual(capChain(h, edu), [[PCI_CAP_ID_MSI, 0x40]]);
      assert.equal(cfg(h, edu, 0x42, 2), 0x0080);
      assert.equal(edu.pcie_cap, 0);
      /* serial: no capabilities at all */
      assert.deepEqual(capChain(h, serial), []);
      assert.equal(cfg(h, serial, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
      /* root port: type 1 header, class 0604, PCIe root port capability, pcieport bound */
      assert.equal(cfg(h, port, 0x0e, 1) & 0x7f, 1);
      assert.equal(cfg(h, port, 0x08) >>> 8, 0x060400);
      assert.deepEqual(capChain(h, port), [[PCI_CAP_ID_EXP, 0x40]]);
      assert.equal((cfg(h, port, 0x42, 2) >> 4) & 0xf, 4);
      assert.equal(port.driver?.name, 'pcieport');
      assert.equal(cfg(h, port, 0x19, 1), 1, 'secondary bus 1');
    });

    test('the ROM: the BAR is 64 KiB, the image walk finds 2 KiB', () => {
      const { h, ce, edu } = topology(kernel);
      assert.equal(ce.resource[6]?.len, 65536);
      assert.deepEqual(
        h.inKernel(() => pciMapRom(ce)),
        { size: 2048 },
      );
      h.inKernel(() => pciUnmapRom(ce));
      assert.equal(
        h.inKernel(() => pciMapRom(edu)),
        undefined,
      );
    });

    test('MSI-X and MSI vectors come out of the platform budget', () => {
      const { h, ce, edu } = topology(kernel);
      const base = h.kernel.objects.count('msi_desc');
      h.pci.msiVectorBudget = 3;
      /* 4 wanted, 3 left: 3 granted */
      assert.equal(
        h.inKernel(() => pciAllocIrqVectors(ce, 1, 4, PCI_IRQ_MSIX)),
        3,
      );
      assert.equal(h.pci.msiVectorsInUse, 3);
      assert.equal(h.kernel.objects.count('msi_desc'), base + 3);
      /* MSI-X enabled in the capability, vectors distinct */
      assert.equal(cfg(h, ce, 0x4a, 2) & 0x8000, 0x8000);
      const vecs = h.inKernel(() => [0, 1, 2].map((i) => pciIrqVector(ce, i)));
      assert.equal(new Set(vecs).size, 3);
      /* nothing left for edu */
      assert.equal(
        h.inKernel(() => pciAllocIrqVectors(edu, 1, 1, PCI_IRQ_MSI)),
        -ENOSPC,
      );
      h.inKernel(() => pciFreeIrqVectors(ce));
      assert.equal(h.pci.msiVectorsInUse, 0);
      assert.equal(cfg(h, ce, 0x4a, 2) & 0x8000, 0);
      assert.equal(
        h.inKernel(() => pciAllocIrqVectors(edu, 1, 1, PCI_IRQ_MSI)),
        1,
      );
      assert.equal(cfg(h, edu, 0x42, 2) & 1, 1, 'MSI enabled');
      h.inKernel(() => pciFreeIrqVectors(edu));
      assert.equal(h.kernel.objects.count('msi_desc'), base);
    });

    test('an INTx line: request, disable depth, a level replay on enable, free', () => {
      const { h, edu } = topology(kernel);
      let calls = 0;
      let ack = true;
      const tok = {};
      const handler = (): number => {
        const st = Number(pciBarRead(edu, 0, 0x24, 4));
        if (st === 0) return IRQ_NONE;
        calls++;
        if (ack) pciBarWrite(edu, 0, 0x64, 4, BigInt(st));
        return IRQ_HANDLED;
      };
      h.inKernel(() => {
        pciEnableDevice(edu);
        assert.equal(requestIrq(edu.irq, handler, 0, 'test', tok), 0);
        const d = irqToDesc(edu.irq);
        assert.equal(d?.depth, 0);
        pciBarWrite(edu, 0, 0x60, 4, 1n);
        assert.equal(calls, 1);
        /* disabled: the raise is held, the line stays asserted */
        disableIrqNosync(edu.irq);
        pciBarWrite(edu, 0, 0x60, 4, 2n);
        assert.equal(calls, 1);
        assert.equal(edu.intxLine, true);
        enableIrq(edu.irq);
        assert.equal(calls, 2);
        assert.equal(edu.intxLine, false);
        /* an unbalanced enable only warns */
        enableIrq(edu.irq);
        assert.equal(d?.depth, 0);
        ack = false;
        freeIrq(edu.irq, tok);
        assert.equal(d?.depth, 1);
        assert.equal(d?.action, undefined);
        pciDisableDevice(edu);
      });
      assert.ok(h.dmesg().some((l) => l.includes('Unbalanced enable for IRQ')));
    });

    test('Interrupt Disable masks INTx where the function has the bit (not the PCI 2.2 UART)', () => {
      const { h, edu, serial } = topology(kernel);
      h.inKernel(() => {
        assert.equal(pciIntxMaskSupported(edu), true);
        assert.equal(pciIntxMaskSupported(serial), false);
      });
    });

    test('save, FLR, restore: the reset clears the function, the restore brings it back', () => {
      const { h, ce } = topology(kernel);
      h.inKernel(() => {
        pciEnableDevice(ce);
        pciWriteConfig(ce, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
        pciBarWrite(ce, 0, CE_REG_RING_SIZE, 4, 0x1000n);
        assert.equal(Number(pciBarRead(ce, 0, CE_REG_RING_SIZE, 4)), 0x1000);
        assert.equal(pciSaveState(ce), 0);
        assert.equal(pciProbeResetFunction(ce), 0);
        const t0 = h.kernel.clock.now;
        assert.equal(pciResetFunction(ce), 0);
        assert.ok(h.kernel.clock.now - t0 >= 100_000_000, 'the FLR waits 100 ms');
      });
      /* pci_reset_function restores what it saved around the reset */
      assert.equal(cfg(h, ce, PCI_COMMAND, 2) & 0x7, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
      assert.equal(cfg(h, ce, PCI_BASE_ADDRESS_0), ce.resource[0]?.start);
      h.inKernel(() => {
        assert.equal(Number(pciBarRead(ce, 0, CE_REG_RING_SIZE, 4)), 0, 'device registers are reset');
        /* the state saved before survives: a later restore brings BARs back after a bus reset */
        pciSaveState(ce);
        pciResetBridgeSecondaryBus(ce.bridge as PciDev);
      });
      assert.equal(cfg(h, ce, PCI_COMMAND, 2), 0);
      assert.equal(cfg(h, ce, PCI_BASE_ADDRESS_0), 0);
      h.inKernel(() => pciRestoreState(ce));
      assert.equal(cfg(h, ce, PCI_BASE_ADDRESS_0), ce.resource[0]?.start);
      assert.equal(cfg(h, ce, PCI_COMMAND, 2) & 0x7, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    });

    test('a bus reset affects every function below the bridge; a root bus has none', () => {
      const { h, ce, serial, edu } = topology(kernel);
      h.inKernel(() => {
        assert.deepEqual(
          pciBusResetAffected(ce).map((d) => d.name),
          [CE, SERIAL],
        );
        assert.equal(pciProbeResetBus(serial), 0);
        assert.equal(pciProbeResetBus(edu), -ENOTTY);
        /* the UART has no FLR, no PM and shares its bus: no function reset */
        assert.equal(pciProbeResetFunction(serial), -ENOTTY);
        pciWriteConfig(serial, PCI_COMMAND, 2, PCI_COMMAND_IO);
        pciBarWrite(serial, 0, 7, 1, 0x5an);
        assert.equal(Number(pciBarRead(serial, 0, 7, 1)), 0x5a);
        pciResetBridgeSecondaryBus(serial.bridge as PciDev);
        /* decode is off after the reset: all ones */
        assert.equal(Number(pciBarRead(serial, 0, 7, 1)), 0xff);
        pciWriteConfig(serial, PCI_BASE_ADDRESS_0, 4, serial.resource[0]?.start ?? 0);
        pciWriteConfig(serial, PCI_COMMAND, 2, PCI_COMMAND_IO);
        assert.equal(Number(pciBarRead(serial, 0, 7, 1)), 0, 'the scratch register is reset');
      });
    });
  });
}
