import { currentKernel, fail, NSEC_PER_MSEC } from '../kernel/index.ts';
import { EAGAIN, EINVAL, ENOTTY } from '../uapi/index.ts';
import { devPrintk, pciReadConfig, pciWriteConfig } from './access.ts';
import { pciRestoreMsiState } from './msi.ts';
import type { PciDev } from './pci.ts';
import {
  IORESOURCE_IO,
  IORESOURCE_MEM,
  PCI_BRIDGE_CONTROL,
  PCI_BRIDGE_CTL_BUS_RESET,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_D0,
  PCI_D3hot,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL2,
  PCI_EXP_LNKCTL,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_STATE_MASK,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_ENABLE,
  PCI_ROM_RESOURCE,
} from './regs.ts';

/*
 * Power state, enable/disable, state save/restore and resets of the host
 * PCI core (drivers/pci/pci.c): function reset by PCIe FLR, by a D3hot
 * round trip, or by resetting the bus below the parent bridge when the
 * function is alone there; secondary bus reset of a whole bus for hot
 * reset; and which functions such a reset reaches.
 *
 * Resets take time, and the host's clock moves on while the kernel waits
 * (an FLR is followed by 100 ms, a bus reset by 2 ms asserted and 1 s of
 * settling, as the kernel sleeps).
 */
const FLR_WAIT_NS = 100 * NSEC_PER_MSEC;
const SBR_ASSERT_NS = 2 * NSEC_PER_MSEC;
const SBR_SETTLE_NS = 1000 * NSEC_PER_MSEC;

function sleep(ns: number): void {
  currentKernel().clock.advance(ns);
}

/* ---- power and enable ---- */

/** pci_set_power_state: only functions with a PM capability leave D0 */
export function pciSetPowerState(pdev: PciDev, state: number): number {
  if (pdev.pm_cap === 0) {
    pdev.current_state = PCI_D0;
    return 0;
  }
  if (pdev.current_state === state) return 0;
  const ctl = pdev.cfg.read(pdev.pm_cap + PCI_PM_CTRL, 2);
  pdev.configWrite(pdev.pm_cap + PCI_PM_CTRL, 2, (ctl & ~PCI_PM_CTRL_STATE_MASK) | (state & 3));
  pdev.current_state = state === PCI_D3hot ? PCI_D3hot : PCI_D0;
  return 0;
}

/** pci_enable_device: decode its BARs (Memory / I/O Space) on the first enable */
export function pciEnableDevice(pdev: PciDev): number {
  if (pdev.enable_cnt++ > 0) return 0;
  pciSetPowerState(pdev, PCI_D0);
  let cmd = pdev.cfg.read(PCI_COMMAND, 2);
  const old = cmd;
  for (let i = 0; i < 6; i++) {
    const r = pdev.resource[i];
    if (r === undefined || r.len === 0) continue;
    if (r.flags & IORESOURCE_IO) cmd |= PCI_COMMAND_IO;
    if (r.flags & IORESOURCE_MEM) cmd |= PCI_COMMAND_MEMORY;
  }
  if (cmd !== old) pdev.configWrite(PCI_COMMAND, 2, cmd);
  return 0;
}

/** pci_disable_device: the last disable stops bus mastering */
export function pciDisableDevice(pdev: PciDev): void {
  if (pdev.enable_cnt === 0) {
    devPrintk('warn', pdev, 'disabling already-disabled device');
    return;
  }
  if (--pdev.enable_cnt > 0) return;
  const cmd = pdev.cfg.read(PCI_COMMAND, 2);
  if (cmd & PCI_COMMAND_MASTER) pdev.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
}

/* ---- saved state ---- */

/** the saved image: the standard header and the PCIe control registers */
export type PciSavedState = Uint8Array;

/** pci_save_state */
export function pciSaveState(pdev: PciDev): number {
  pdev.savedConfig = pdev.cfg.bytes.slice(0, Math.min(pdev.cfg_size, 0x100));
  pdev.state_saved = true;
  return 0;
}

/** pci_restore_state: write back what was saved (PCIe registers first), then MSI state; once */
export function pciRestoreState(pdev: PciDev): void {
  const s = pdev.savedConfig;
  if (!pdev.state_saved || s === undefined) return;
  const w = (off: number, size: 1 | 2 | 4): void => {
    let v = 0;
    for (let i = 0; i < size; i++) v |= (s[off + i] ?? 0) << (8 * i);
    if ((pciReadConfig(pdev, off, size) ?? 0) !== v >>> 0) pciWriteConfig(pdev, off, size, v >>> 0);
  };
  if (pdev.pcie_cap !== 0) {
    w(pdev.pcie_cap + PCI_EXP_DEVCTL, 2);
    w(pdev.pcie_cap + PCI_EXP_LNKCTL, 2);
    w(pdev.pcie_cap + PCI_EXP_DEVCTL2, 2);
  }
  /* pci_restore_config_space: 0x28..0x3c, then the BARs, then the first dwords */
  for (let off = 0x3c; off >= 0x28; off -= 4) w(off, 4);
  for (let off = 0x24; off >= 0x10; off -= 4) w(off, 4);
  for (let off = 0x0c; off >= 0; off -= 4) w(off, 4);
  pciRestoreMsiState(pdev);
  pdev.state_saved = false;
}

/** pci_store_saved_state: a copy the driver keeps */
export function pciStoreSavedState(pdev: PciDev): PciSavedState | undefined {
  if (!pdev.state_saved || pdev.savedConfig === undefined) return undefined;
  currentKernel().objects.alloc('pci_saved_state');
  return pdev.savedConfig.slice();
}

/** pci_load_and_free_saved_state: make a kept copy the function's saved state again */
export function pciLoadAndFreeSavedState(pdev: PciDev, state: PciSavedState | undefined): number {
  pdev.state_saved = false;
  if (state === undefined) return 0;
  pdev.savedConfig = state.slice();
  pdev.state_saved = true;
  currentKernel().objects.free('pci_saved_state');
  return 0;
}

export function pciFreeSavedState(state: PciSavedState | undefined): void {
  if (state !== undefined) currentKernel().objects.free('pci_saved_state');
}

/* ---- locking: a function being unbound holds its device lock ---- */

export function pciDevTrylock(pdev: PciDev): boolean {
  return !pdev.unbinding;
}

/* ---- function reset methods ---- */

function pcieFlr(pdev: PciDev, probe: boolean): number {
  if (pdev.pcie_cap === 0) return -ENOTTY;
  const cap = pdev.cfg.read(pdev.pcie_cap + PCI_EXP_DEVCAP, 4);
  if (!(cap & PCI_EXP_DEVCAP_FLR)) return -ENOTTY;
  if (probe) return 0;
  const ctl = pdev.cfg.read(pdev.pcie_cap + PCI_EXP_DEVCTL, 2);
  pdev.configWrite(pdev.pcie_cap + PCI_EXP_DEVCTL, 2, ctl | PCI_EXP_DEVCTL_BCR_FLR);
  sleep(FLR_WAIT_NS);
  return 0;
}

/* pci_pm_reset: D0 -> D3hot -> D0, a reset for functions without No_Soft_Reset */
function pciPmReset(pdev: PciDev, probe: boolean): number {
  if (pdev.pm_cap === 0) return -ENOTTY;
  const ctl = pdev.cfg.read(pdev.pm_cap + PCI_PM_CTRL, 2);
  if (ctl & PCI_PM_CTRL_NO_SOFT_RESET) return -ENOTTY;
  if (probe) return 0;
  if ((ctl & PCI_PM_CTRL_STATE_MASK) !== 0) return -EINVAL;
  pdev.configWrite(pdev.pm_cap + PCI_PM_CTRL, 2, ctl | PCI_D3hot);
  sleep(10 * NSEC_PER_MSEC);
  pdev.configWrite(pdev.pm_cap + PCI_PM_CTRL, 2, ctl & ~PCI_PM_CTRL_STATE_MASK);
  sleep(10 * NSEC_PER_MSEC);
  return 0;
}

/** pci_reset_bridge_secondary_bus: assert then release Secondary Bus Reset */
export function pciResetBridgeSecondaryBus(bridge: PciDev): void {
  const ctl = bridge.cfg.read(PCI_BRIDGE_CONTROL, 2);
  bridge.configWrite(PCI_BRIDGE_CONTROL, 2, ctl | PCI_BRIDGE_CTL_BUS_RESET);
  sleep(SBR_ASSERT_NS);
  bridge.configWrite(PCI_BRIDGE_CONTROL, 2, ctl & ~PCI_BRIDGE_CTL_BUS_RESET);
  sleep(SBR_SETTLE_NS);
}

/* pci_parent_bus_reset: a function alone behind a bridge can be reset with its bus */
function pciParentBusReset(pdev: PciDev, probe: boolean): number {
  const bridge = pdev.bridge;
  if (bridge === undefined || pdev.subordinates.length > 0) return -ENOTTY;
  if (bridge.subordinates.some((d) => d !== pdev)) return -ENOTTY;
  if (probe) return 0;
  pciResetBridgeSecondaryBus(bridge);
  return 0;
}

/** __pci_dev_reset: the first method that works, in the kernel's order */
function pciDevReset(pdev: PciDev, probe: boolean): number {
  for (const m of [pcieFlr, pciPmReset, pciParentBusReset]) {
    const rc = m(pdev, probe);
    if (rc !== -ENOTTY) return rc;
  }
  return -ENOTTY;
}

/** whether any function reset method exists (pci_reset_supported) */
export function pciProbeResetFunction(pdev: PciDev): number {
  return pciDevReset(pdev, true);
}

/* pci_dev_save_and_disable / pci_dev_restore */
function saveAndDisable(pdev: PciDev): void {
  pciSetPowerState(pdev, PCI_D0);
  pciSaveState(pdev);
  /* Disable the device: no bus mastering, no INTx, no decoding */
  pdev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
}

/** pci_reset_function: save, reset (taking the device lock), restore */
export function pciResetFunction(pdev: PciDev): number {
  const probe = pciDevReset(pdev, true);
  if (probe !== 0) return probe;
  saveAndDisable(pdev);
  const rc = pciDevReset(pdev, false);
  pciRestoreState(pdev);
  return rc;
}

/** pci_try_reset_function: -EAGAIN when the device lock is held elsewhere */
export function pciTryResetFunction(pdev: PciDev): number {
  const probe = pciDevReset(pdev, true);
  if (probe !== 0) return probe;
  if (!pciDevTrylock(pdev)) return fail(EAGAIN, `${pdev.name}: device is locked (unbind in progress)`);
  saveAndDisable(pdev);
  const rc = pciDevReset(pdev, false);
  pciRestoreState(pdev);
  return rc;
}

/** __pci_reset_function_locked: the reset alone, no save/restore around it */
export function pciResetFunctionLocked(pdev: PciDev): number {
  return pciDevReset(pdev, false);
}

/* ---- slot and bus reset (hot reset) ---- */

/** pci_probe_reset_slot: no hotplug slots on this platform */
export function pciProbeResetSlot(_pdev: PciDev): number {
  return -ENOTTY;
}

/** pci_probe_reset_bus: a root bus cannot be reset; a bus below a bridge can */
export function pciProbeResetBus(pdev: PciDev): number {
  return pdev.bridge === undefined ? -ENOTTY : 0;
}

/** the functions a reset of pdev's bus reaches (pci_walk_bus over pdev->bus) */
export function pciBusResetAffected(pdev: PciDev): PciDev[] {
  return pdev.bridge === undefined ? [pdev] : pdev.bridge.busDevices();
}

function busSaveAndDisable(devs: PciDev[]): void {
  for (const d of devs) saveAndDisable(d);
}

function busRestore(devs: PciDev[]): void {
  for (const d of devs) pciRestoreState(d);
}

/** pci_try_reset_bus (4.1) / __pci_reset_bus (6.x): every function on the bus reset, state kept */
export function pciTryResetBus(pdev: PciDev): number {
  const bridge = pdev.bridge;
  if (bridge === undefined) return -ENOTTY;
  const devs = bridge.busDevices();
  if (devs.some((d) => !pciDevTrylock(d)))
    return fail(EAGAIN, `bus below ${bridge.name}: a device is locked`);
  busSaveAndDisable(devs);
  pciResetBridgeSecondaryBus(bridge);
  busRestore(devs);
  return 0;
}

/* ---- expansion ROM ---- */

/**
 * pci_map_rom: enable ROM decode and find the true image size by walking
 * the images (0x55aa signature, "PCIR" data structure, length in 512-byte
 * units); undefined when there is no ROM BAR.
 */
export function pciMapRom(pdev: PciDev): { size: number } | undefined {
  const res = pdev.resource[PCI_ROM_RESOURCE];
  if (res === undefined || res.start === 0 || res.len === 0) return undefined;
  const rom = pdev.cfg.read(PCI_ROM_ADDRESS, 4);
  pdev.configWrite(PCI_ROM_ADDRESS, 4, rom | PCI_ROM_ADDRESS_ENABLE);
  const rd = (off: number, size: number): number => Number(pdev.model.mmioRead(PCI_ROM_RESOURCE, off, size));
  let image = 0;
  for (;;) {
    if (rd(image, 2) !== 0xaa55) {
      devPrintk(
        'err',
        pdev,
        `Invalid PCI ROM header signature: expecting 0xaa55, got 0x${rd(image, 2).toString(16).padStart(4, '0')}`,
      );
      break;
    }
    const pds = image + rd(image + 24, 2);
    if (rd(pds, 4) !== 0x52494350) {
      devPrintk(
        'err',
        pdev,
        `Invalid PCI ROM data signature: expecting 0x52494350, got 0x${rd(pds, 4).toString(16).padStart(8, '0')}`,
      );
      break;
    }
    const last = (rd(pds + 21, 1) & 0x80) !== 0;
    const length = rd(pds + 16, 2);
    image += length * 512;
    if (image > res.len || length === 0 || last) break;
  }
  return { size: Math.min(image, res.len) };
}

/** pci_unmap_rom: ROM decode off again */
export function pciUnmapRom(pdev: PciDev): void {
  const rom = pdev.cfg.read(PCI_ROM_ADDRESS, 4);
  pdev.configWrite(PCI_ROM_ADDRESS, 4, rom & ~PCI_ROM_ADDRESS_ENABLE);
}
