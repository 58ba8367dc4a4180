import type { Module } from '../kernel/index.ts';
import { definePciDriver, type PciDev, type PciDeviceId, type PciDriver } from '../pci/index.ts';

/*
 * Host (non-VFIO) drivers. A DMA-API driver, bound to a device, makes its
 * IOMMU group unusable for VFIO: the kernel itself does DMA through the
 * group. pci-stub binds without touching the device and keeps the group
 * viable, which is why users park devices on it.
 */
export interface HostDriverHooks {
  /** the kernel driver maps some DMA for its own use while bound (sPAPR: entries in it_map) */
  onBind?(dev: PciDev): void;
  onUnbind?(dev: PciDev): void;
}

export function makeHostDmaDriver(
  name: string,
  ids: readonly PciDeviceId[],
  hooks: HostDriverHooks,
  owner?: Module,
): PciDriver {
  return definePciDriver({
    name,
    owner,
    id_table: ids,
    probe(pdev) {
      hooks.onBind?.(pdev);
      return 0;
    },
    remove(pdev) {
      hooks.onUnbind?.(pdev);
    },
  });
}

/** pci-stub: claims devices and does nothing with them (driver_managed_dma in 6.x) */
export function makePciStubDriver(): PciDriver {
  return definePciDriver({
    name: 'pci-stub',
    driver_managed_dma: true,
    probe: () => 0,
    remove: () => {},
  });
}

/** pcieport: the port services driver bridges bind to */
export function makePcieportDriver(ids: readonly PciDeviceId[]): PciDriver {
  return definePciDriver({
    name: 'pcieport',
    driver_managed_dma: true,
    id_table: ids,
    probe: () => 0,
    remove: () => {},
  });
}
