import type { HostDriverHooks } from '../devices/index.ts';
import { type IommuCore, type IommuGroup, type PnvIodaPe, PowerPlatform } from '../iommu/index.ts';
import type { Device, Kernel } from '../kernel/index.ts';
import type { PciDev } from '../pci/index.ts';
import { spaprTceProfile } from '../vfio/iommu_spapr_tce/index.ts';

/*
 * The POWER (PowerNV) platform of a ppc64 host: a PCI host bridge per PCI
 * domain, a partitionable endpoint per IOMMU group with its default 32-bit
 * DMA window (start 0, 1 GiB unless the host description says otherwise),
 * the host drivers' DMA through it, and how a bad DMA is reported.
 */
export interface Ppc64Options {
  readonly dma32WindowStart?: bigint;
  readonly dma32WindowSize?: bigint;
}

/**
 * What a device description may say about its PE, read when the PE is
 * created: `tcePageShift`, the IOMMU page shift of the PE's default
 * table, 12 (4 KiB, the default) or 16 (64 KiB).
 */
export type Ppc64DeviceOptions = { readonly [key: string]: unknown };

export const DEFAULT_DMA32_WINDOW_START = 0n;
export const DEFAULT_DMA32_WINDOW_SIZE = 1n << 30n;

export class Ppc64Platform {
  constructor(readonly platform: PowerPlatform) {}

  /** called where the device joins its IOMMU group, before any driver probes it */
  deviceAdded(pdev: PciDev, group: IommuGroup, opts: Ppc64DeviceOptions = {}): PnvIodaPe {
    const shift = opts.tcePageShift;
    if (shift !== undefined && shift !== 12 && shift !== 16)
      throw new Error(`tcePageShift must be 12 or 16, not ${String(shift)}`);
    return this.platform.deviceAdd(pdev, group, shift ?? 12);
  }

  pe(group: IommuGroup): PnvIodaPe | undefined {
    return this.platform.peOfGroup.get(group);
  }
}

export function setupPpc64(
  kernel: Kernel,
  iommu: IommuCore,
  hooks: HostDriverHooks,
  opts: Ppc64Options,
): Ppc64Platform {
  const start = opts.dma32WindowStart ?? DEFAULT_DMA32_WINDOW_START;
  const size = opts.dma32WindowSize ?? DEFAULT_DMA32_WINDOW_SIZE;
  if (start < 0n || size <= 0n || start % 0x1_0000n !== 0n || size % 0x1_0000n !== 0n)
    throw new Error('the 32-bit DMA window must start and end on a 64 KiB boundary and not be empty');
  if (start + size > 1n << 32n) throw new Error('the 32-bit DMA window must end below 4 GiB');
  const prof = spaprTceProfile(kernel.version);
  const platform = new PowerPlatform(kernel, {
    dma32WindowStart: start,
    dma32WindowSize: size,
    iommuDataIsTableGroup: prof.iommuDataIsTableGroup,
    tableGroupOps: prof.container === 'table-group',
  });
  hooks.onBind = (pdev) => platform.driverBound(pdev);
  hooks.onUnbind = (pdev) => platform.driverUnbound(pdev);
  iommu.faultLogger = (dev: Device, f) => {
    const pe = platform.peOfDev.get(dev);
    const where = pe === undefined ? '' : `${pe.name} `;
    return `pnv-iommu: ${where}${dev.name}: DMA ${f.write ? 'write' : 'read'} fault at 0x${f.iova.toString(16)}: ${f.reason}`;
  };
  return new Ppc64Platform(platform);
}
