import type { DeviceSnap, IommuGroupSnap, Snapshot } from '../debugfs/index.ts';
import type { HostDescription } from '../host/index.ts';
import type { Painter } from './io.ts';

/*
 * `vfio-ts topology`: what `lspci -k` and /sys/kernel/iommu_groups show on
 * the described machine: each function with its ids, driver and group,
 * then each group, whether VFIO could use it, and if not, why.
 */
const CLASS_NAMES: Record<number, string> = {
  256: 'SCSI storage controller',
  262: 'SATA controller',
  264: 'Non-Volatile memory controller',
  512: 'Ethernet controller',
  768: 'VGA compatible controller',
  1027: 'Audio device',
  1536: 'Host bridge',
  1540: 'PCI bridge',
  1792: 'Serial controller',
  2176: 'System peripheral',
  3075: 'USB controller',
  255: 'Unclassified device',
};

function className(cls: string): string {
  const c = Number.parseInt(cls, 16) >> 8;
  const name = CLASS_NAMES[c] ?? 'Device';
  return `${name} [${c.toString(16).padStart(4, '0')}]`;
}

export interface TopologyData {
  readonly arch: string;
  readonly kernel: string;
  readonly description: string | null;
  readonly iommu: HostDescription['iommu'] | Record<string, unknown>;
  readonly devices: {
    bdf: string;
    class: string;
    vendor: string;
    device: string;
    model: string;
    driver: string | null;
    iommuGroup: number | null;
    parent: string | null;
  }[];
  readonly groups: {
    group: number;
    devices: string[];
    viable: boolean;
    why: string | null;
    devnode: string | null;
  }[];
}

function why(g: IommuGroupSnap, snap: Snapshot): string | null {
  if (g.viable) return null;
  if (g.blockers.length > 0)
    return g.blockers
      .map(
        (b) =>
          `${b.device.replace('pci:', '')} is bound to ${b.driver}, a host driver doing DMA through the DMA API`,
      )
      .join('; ');
  return snap.host.kernel === '4.1' ? 'a device is not bound to vfio-pci' : 'DMA ownership is held';
}

export function topologyData(snap: Snapshot, desc: HostDescription): TopologyData {
  return {
    arch: snap.host.arch,
    kernel: snap.host.kernel,
    description: desc.description ?? null,
    iommu: {
      addressWidth: desc.iommu.addressWidth ?? 39,
      intrRemap: desc.iommu.intrRemap ?? true,
      cacheCoherent: desc.iommu.cacheCoherent ?? true,
    },
    devices: snap.devices.map((d: DeviceSnap) => ({
      bdf: d.bdf,
      class: d.class,
      vendor: d.vendor,
      device: d.device,
      model: d.model,
      driver: d.driver,
      iommuGroup: d.iommuGroup,
      parent: d.parent,
    })),
    groups: snap.iommuGroups.map((g) => ({
      group: g.number,
      devices: g.devices.map((d) => d.replace('pci:', '')),
      viable: g.viable,
      why: why(g, snap),
      devnode: snap.groups.find((x) => x.id === g.vfioGroup)?.devnode ?? null,
    })),
  };
}

export function topologyLines(t: TopologyData, snap: Snapshot, paint: Painter): string[] {
  const out: string[] = [];
  out.push(
    paint.bold(
      `${t.arch} host, kernel profile ${t.kernel}${t.description === null ? '' : ` — ${t.description}`}`,
    ),
  );
  const regions = snap.iommuGroups[0]?.reservedRegions ?? [];
  if (t.arch === 'x86_64') {
    const i = t.iommu as { addressWidth: number; intrRemap: boolean; cacheCoherent: boolean };
    out.push(
      `IOMMU: ${i.addressWidth}-bit IOVA, interrupt remapping ${i.intrRemap ? 'on' : 'OFF'}, ${i.cacheCoherent ? 'cache coherent' : 'not cache coherent'}${regions.length > 0 ? `; reserved ${regions.map((r) => `${r.start}-${r.end} ${r.type}`).join(', ')}` : ''}`,
    );
  } else out.push(`IOMMU: sPAPR TCE tables, one per partitionable endpoint; PAGE_SIZE ${snap.host.pageSize}`);
  out.push('');
  for (const d of t.devices) {
    out.push(
      `${paint.bold(d.bdf)} ${className(d.class)}: ${d.vendor.slice(2)}:${d.device.slice(2)} (${d.model})`,
    );
    if (d.parent !== null) out.push(`\tUpstream bridge: ${d.parent}`);
    out.push(`\tIOMMU group: ${d.iommuGroup ?? '(none)'}`);
    out.push(`\tKernel driver in use: ${d.driver ?? '(none)'}`);
  }
  out.push('');
  out.push(paint.bold('IOMMU groups (/sys/kernel/iommu_groups):'));
  for (const g of t.groups) {
    const state = g.viable ? paint.ok('viable') : paint.bad('not viable');
    const node = g.devnode === null ? '' : `, ${g.devnode}`;
    out.push(`  group ${g.group}: ${g.devices.join(' ')} — ${state}${node}`);
    if (g.why !== null) out.push(`    why: ${g.why}`);
  }
  return out;
}
