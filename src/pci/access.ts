import { currentKernel, maybeCurrentKernel } from '../kernel/index.ts';
import { EFAULT } from '../uapi/index.ts';
import type { PciDev } from './pci.ts';
import {
  IORESOURCE_IO,
  IORESOURCE_MEM,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_ENABLE,
  PCI_ROM_RESOURCE,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from './regs.ts';

/*
 * How the host kernel touches a function: config accessors
 * (pci_read_config_*, pci_user_*_config_*), the INTx helpers of
 * drivers/pci/pci.c (pci_intx, pci_check_and_mask_intx ...), bus mastering,
 * and MMIO / port I/O to BARs, where a BAR the function does not decode
 * (Memory or I/O Space disabled in its command register) answers like a
 * master abort: reads all ones, writes vanish.
 */

/** PCIBIOS_BAD_REGISTER_NUMBER as pcibios_err_to_errno returns it (-EFAULT) */
export const PCIBIOS_BAD_REGISTER_NUMBER = 0x87;

/** a non-posted MMIO read takes about this long on the bus; the host's clock moves on meanwhile */
export const MMIO_READ_LATENCY_NS = 1000;

function sizeOk(pdev: PciDev, off: number, size: number): boolean {
  return off >= 0 && off + size <= pdev.cfg_size && off % size === 0;
}

/** pci_read_config_{byte,word,dword}: the value, or undefined for a bad register */
export function pciReadConfig(pdev: PciDev, off: number, size: 1 | 2 | 4): number | undefined {
  if (!sizeOk(pdev, off, size)) return undefined;
  return pdev.cfg.read(off, size);
}

/** pci_write_config_*: 0, or PCIBIOS_BAD_REGISTER_NUMBER */
export function pciWriteConfig(pdev: PciDev, off: number, size: 1 | 2 | 4, v: number): number {
  if (!sizeOk(pdev, off, size)) return PCIBIOS_BAD_REGISTER_NUMBER;
  pdev.configWrite(off, size, v);
  return 0;
}

/** pci_user_read_config_*: 0 and the value, or -errno (what vfio-pci propagates) */
export function pciUserReadConfig(pdev: PciDev, off: number, size: 1 | 2 | 4): { value: number } | number {
  const v = pciReadConfig(pdev, off, size);
  return v === undefined ? -EFAULT /* pcibios_err_to_errno */ : { value: v };
}

export function pciUserWriteConfig(pdev: PciDev, off: number, size: 1 | 2 | 4, v: number): number {
  return pciWriteConfig(pdev, off, size, v) === 0 ? 0 : -EFAULT;
}

function cmd(pdev: PciDev): number {
  return pdev.cfg.read(PCI_COMMAND, 2);
}

/** pci_intx: enable or disable the function's INTx through DisINTx */
export function pciIntx(pdev: PciDev, enable: boolean): void {
  const old = cmd(pdev);
  const v = enable ? old & ~PCI_COMMAND_INTX_DISABLE : old | PCI_COMMAND_INTX_DISABLE;
  if (v !== old) pdev.configWrite(PCI_COMMAND, 2, v);
}

/*
 * pci_check_and_set_intx_mask: mask when the function is asserting INTx,
 * unmask when it is not; false when the status says otherwise.
 */
function checkAndSetIntxMask(pdev: PciDev, mask: boolean): boolean {
  const pending = (pdev.cfg.read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT) !== 0;
  if (mask !== pending) return false;
  const orig = cmd(pdev);
  const next = mask ? orig | PCI_COMMAND_INTX_DISABLE : orig & ~PCI_COMMAND_INTX_DISABLE;
  if (next !== orig) pdev.configWrite(PCI_COMMAND, 2, next);
  return true;
}

export function pciCheckAndMaskIntx(pdev: PciDev): boolean {
  return checkAndSetIntxMask(pdev, true);
}

export function pciCheckAndUnmaskIntx(pdev: PciDev): boolean {
  return checkAndSetIntxMask(pdev, false);
}

/**
 * pci_intx_mask_supported: toggle DisINTx and see whether it sticks
 * (PCI 2.3 functions implement it; older ones hardwire it to 0).
 */
export function pciIntxMaskSupported(pdev: PciDev): boolean {
  const orig = cmd(pdev);
  pdev.configWrite(PCI_COMMAND, 2, orig ^ PCI_COMMAND_INTX_DISABLE);
  const now = cmd(pdev);
  if ((now ^ orig) & ~PCI_COMMAND_INTX_DISABLE) {
    devPrintk(
      'err',
      pdev,
      `Command register changed from 0x${orig.toString(16)} to 0x${now.toString(16)}: driver or hardware bug?`,
    );
    return false;
  }
  if ((now ^ orig) & PCI_COMMAND_INTX_DISABLE) {
    pdev.configWrite(PCI_COMMAND, 2, orig);
    return true;
  }
  return false;
}

export function pciSetMaster(pdev: PciDev): void {
  const c = cmd(pdev);
  if (!(c & PCI_COMMAND_MASTER)) pdev.configWrite(PCI_COMMAND, 2, c | PCI_COMMAND_MASTER);
}

export function pciClearMaster(pdev: PciDev): void {
  const c = cmd(pdev);
  if (c & PCI_COMMAND_MASTER) pdev.configWrite(PCI_COMMAND, 2, c & ~PCI_COMMAND_MASTER);
}

/* ---- BAR accesses ---- */

/** whether the function decodes accesses to BAR `bar` right now */
export function pciBarDecodes(pdev: PciDev, bar: number): boolean {
  const r = pdev.resource[bar];
  if (r === undefined || r.len === 0) return false;
  const c = cmd(pdev);
  if (bar === PCI_ROM_RESOURCE)
    return (
      (c & PCI_COMMAND_MEMORY) !== 0 && (pdev.cfg.read(PCI_ROM_ADDRESS, 4) & PCI_ROM_ADDRESS_ENABLE) !== 0
    );
  if (r.flags & IORESOURCE_IO) return (c & PCI_COMMAND_IO) !== 0;
  return (r.flags & IORESOURCE_MEM) !== 0 && (c & PCI_COMMAND_MEMORY) !== 0;
}

const ALL_ONES: Record<number, bigint> = { 1: 0xffn, 2: 0xffffn, 4: 0xffffffffn, 8: 0xffffffffffffffffn };

/**
 * ioread8/16/32/64 of a BAR: the device answers if it decodes the BAR,
 * otherwise the read completes with all ones. The read is non-posted, so
 * the host's clock advances by the bus latency first (a driver polling a
 * status register sees the device make progress).
 */
export function pciBarRead(pdev: PciDev, bar: number, off: number, size: number): bigint {
  const k = maybeCurrentKernel();
  if (k !== undefined) k.clock.advance(MMIO_READ_LATENCY_NS);
  if (!pciBarDecodes(pdev, bar) || pdev.eehState?.mmioFrozen === true) return ALL_ONES[size] ?? 0n;
  return pdev.model.mmioRead(bar, off, size);
}

/** iowrite8/16/32/64: posted, dropped when the BAR is not decoded */
export function pciBarWrite(pdev: PciDev, bar: number, off: number, size: number, v: bigint): void {
  if (!pciBarDecodes(pdev, bar) || pdev.eehState?.mmioFrozen === true) return;
  pdev.model.mmioWrite(bar, off, size, v);
}

/* ---- dev_printk ---- */

export type DevLogLevel = 'err' | 'warn' | 'notice' | 'info' | 'debug';

/** dev_err/dev_warn/...: "<driver> <bdf>: text", or "pci <bdf>: text" for an unbound function */
export function devPrintk(level: DevLogLevel, pdev: PciDev, text: string): void {
  const k = maybeCurrentKernel() ?? currentKernel();
  k.printk(level, `${pdev.driver?.name ?? 'pci'} ${pdev.name}: ${text}`);
}
