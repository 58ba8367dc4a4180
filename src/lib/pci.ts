import type { ScalarAccess } from './bytes.ts';

/*
 * The few PCI config-space registers a userspace driver touches
 * (include/uapi/linux/pci_regs.h), and helpers over a device's config
 * region (VfioDevice.config).
 */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STATUS = 0x06;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;

export interface PciCapability {
  readonly id: number;
  readonly offset: number;
}

/** The standard capability list (as the config region shows it: vfio-pci may hide some). */
export function pciCapabilities(config: ScalarAccess): PciCapability[] {
  const out: PciCapability[] = [];
  if ((config.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return out;
  const seen = new Set<number>();
  let pos = config.read8(PCI_CAPABILITY_LIST) & ~3;
  while (pos >= 0x40 && !seen.has(pos)) {
    seen.add(pos);
    out.push({ id: config.read8(pos), offset: pos });
    pos = config.read8(pos + 1) & ~3;
  }
  return out;
}

/** Offset of the first capability with this id, if the device has one. */
export function findPciCapability(config: ScalarAccess, id: number): number | undefined {
  return pciCapabilities(config).find((c) => c.id === id)?.offset;
}

/** Turn memory decoding and bus mastering on (or mastering off): what a driver does before DMA. */
export function setBusMaster(config: ScalarAccess, on = true): number {
  const cmd = config.read16(PCI_COMMAND);
  const next = on ? cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER : cmd & ~PCI_COMMAND_MASTER;
  if (next !== cmd) config.write16(PCI_COMMAND, next);
  return next;
}
