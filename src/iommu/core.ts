import {
  BUS_NOTIFY_BIND_DRIVER,
  BUS_NOTIFY_BOUND_DRIVER,
  BUS_NOTIFY_DEL_DEVICE,
  BUS_NOTIFY_UNBIND_DRIVER,
  BUS_NOTIFY_UNBOUND_DRIVER,
  type BusType,
  type Device,
  type Kernel,
} from '../kernel/index.ts';
import type { PciDev } from '../pci/index.ts';
import type { DmaRun, IommuDomain, IommuFault } from './domain.ts';
import {
  IOMMU_GROUP_NOTIFY_ADD_DEVICE,
  IOMMU_GROUP_NOTIFY_BIND_DRIVER,
  IOMMU_GROUP_NOTIFY_BOUND_DRIVER,
  IOMMU_GROUP_NOTIFY_DEL_DEVICE,
  IOMMU_GROUP_NOTIFY_UNBIND_DRIVER,
  IOMMU_GROUP_NOTIFY_UNBOUND_DRIVER,
  IommuGroup,
  iommuDeviceUnuseDefaultDomain,
  iommuDeviceUseDefaultDomain,
} from './iommu_group.ts';
import { iommuCoreProfile } from './profile.ts';

/*
 * The IOMMU core of one machine: its groups (/sys/kernel/iommu_groups),
 * the hardware's capabilities, the bus notifier that feeds group
 * notifiers, device DMA through the group's domain, and the fault log.
 */
export interface IommuCaps {
  /** IOMMU_CAP_INTR_REMAP: MSIs cannot be forged by a device */
  intrRemap: boolean;
  /** IOMMU_CAP_CACHE_COHERENCY: IOMMU_CACHE (snoop) is enforced */
  cacheCoherent: boolean;
  /** input address width in bits (VT-d: 39 or 48) */
  addressWidth: number;
  /** page sizes the hardware maps (4K | 2M | 1G = 0x40201000) */
  pgsizeBitmap: bigint;
}

export interface DmaFaultRecord {
  readonly device: string;
  readonly iova: bigint;
  readonly write: boolean;
  readonly reason: string;
  readonly timeNs: number;
}

const BUS_TO_GROUP: Record<number, number> = {
  [BUS_NOTIFY_BIND_DRIVER]: IOMMU_GROUP_NOTIFY_BIND_DRIVER,
  [BUS_NOTIFY_BOUND_DRIVER]: IOMMU_GROUP_NOTIFY_BOUND_DRIVER,
  [BUS_NOTIFY_UNBIND_DRIVER]: IOMMU_GROUP_NOTIFY_UNBIND_DRIVER,
  [BUS_NOTIFY_UNBOUND_DRIVER]: IOMMU_GROUP_NOTIFY_UNBOUND_DRIVER,
  [BUS_NOTIFY_DEL_DEVICE]: IOMMU_GROUP_NOTIFY_DEL_DEVICE,
};

export class IommuCore {
  readonly groups = new Map<number, IommuGroup>();
  readonly faults: DmaFaultRecord[] = [];
  /** how the platform's IOMMU words a fault in dmesg */
  faultLogger: (dev: Device, f: IommuFault) => string = (dev, f) => defaultFaultText(dev, f);

  constructor(
    readonly kernel: Kernel,
    readonly caps: IommuCaps,
  ) {
    kernel.vfs.mkdirp('/sys/kernel/iommu_groups');
  }

  /**
   * iommu_bus_init: forward driver-core events to the device's group
   * notifier (what the 4.1 VFIO core watches). With DMA ownership (6.x)
   * also claim the default domain for DMA-API drivers at probe.
   */
  attachBus(bus: BusType, dmaOwnership: boolean): void {
    bus.notifier.register({
      notifier_call: (_nb, action, dev) => {
        const g = dev.iommu_group;
        const ga = BUS_TO_GROUP[action];
        if (g instanceof IommuGroup && ga !== undefined) g.notifier.call(ga, dev);
        return 0;
      },
    });
    if (dmaOwnership) {
      bus.dma_configure = (dev, drv) => (drv.driver_managed_dma ? 0 : iommuDeviceUseDefaultDomain(dev));
      bus.dma_cleanup = (dev, drv) => {
        if (!drv.driver_managed_dma) iommuDeviceUnuseDefaultDomain(dev);
      };
    }
  }

  groupAlloc(id: number): IommuGroup {
    const have = this.groups.get(id);
    if (have !== undefined) return have;
    const g = new IommuGroup(id);
    this.groups.set(id, g);
    const dir = `/sys/kernel/iommu_groups/${id}`;
    const vfs = this.kernel.vfs;
    vfs.mkdirp(`${dir}/devices`);
    const prof = iommuCoreProfile(this.kernel.version);
    if (prof.reservedRegionsAttr)
      vfs.add(`${dir}/reserved_regions`, {
        kind: 'attr',
        mode: 0o444,
        show: () =>
          g.reservedRegions
            .map(
              (r) =>
                `0x${r.start.toString(16).padStart(16, '0')} 0x${r.end.toString(16).padStart(16, '0')} ${r.type}\n`,
            )
            .join(''),
      });
    /*
     * type names the default domain, whoever owns the group now: x86's is a
     * lazy-flush DMA domain (CONFIG_IOMMU_DEFAULT_DMA_LAZY), sPAPR's a
     * platform domain, which the switch in iommu_group_show_type does not name
     */
    const defaultType = this.kernel.arch.name === 'x86_64' ? 'DMA-FQ' : 'unknown';
    if (prof.groupTypeAttr)
      vfs.add(`${dir}/type`, { kind: 'attr', mode: 0o644, show: () => `${defaultType}\n` });
    return g;
  }

  /** iommu_group_add_device: links both ways in sysfs, ADD_DEVICE notification */
  groupAddDevice(group: IommuGroup, dev: PciDev): void {
    dev.iommu_group = group;
    group.devices.push(dev);
    group.kref.get();
    const vfs = this.kernel.vfs;
    vfs.link(`/sys/kernel/iommu_groups/${group.id}/devices/${dev.name}`, dev.sysfsPath);
    vfs.link(`${dev.sysfsPath}/iommu_group`, `/sys/kernel/iommu_groups/${group.id}`);
    dev.dmaPort = {
      dmaRead: (addr, buf) => this.dmaAccess(dev, addr, buf, false),
      dmaWrite: (addr, data) => this.dmaAccess(dev, addr, data, true),
      dmaCopy: (src, dst, len) => this.dmaCopy(dev, src, dst, len),
    };
    group.notifier.call(IOMMU_GROUP_NOTIFY_ADD_DEVICE, dev);
  }

  groupRemoveDevice(dev: PciDev): void {
    const g = dev.iommu_group;
    if (!(g instanceof IommuGroup)) return;
    g.notifier.call(IOMMU_GROUP_NOTIFY_DEL_DEVICE, dev);
    g.devices.splice(g.devices.indexOf(dev), 1);
    dev.iommu_group = undefined;
    dev.dmaPort = undefined;
    const vfs = this.kernel.vfs;
    vfs.remove(`/sys/kernel/iommu_groups/${g.id}/devices/${dev.name}`);
    vfs.remove(`${dev.sysfsPath}/iommu_group`);
    g.kref.put(() => {});
  }

  /* ---- domains ---- */

  attachGroup(domain: IommuDomain, group: IommuGroup): number {
    group.domain = domain;
    return 0;
  }

  detachGroup(domain: IommuDomain, group: IommuGroup): void {
    if (group.domain === domain) group.domain = group.owner !== undefined ? undefined : group.default_domain;
  }

  /**
   * A device-initiated access: translate through the group's domain, then
   * touch physical memory run by run. A fault is logged and the access
   * does not reach memory (a faulting read delivers zeros).
   */
  dmaAccess(dev: Device, iova: bigint, buf: Uint8Array, write: boolean): boolean {
    const g = dev.iommu_group;
    const domain = g instanceof IommuGroup ? g.domain : undefined;
    const runs: DmaRun[] = [];
    const fault: IommuFault | undefined =
      domain === undefined
        ? { iova, write, reason: 'no translation: device is not attached to a domain' }
        : domain.translate(iova, buf.length, write, runs);
    if (fault !== undefined) {
      this.recordFault(dev, fault);
      if (!write) buf.fill(0);
      return false;
    }
    const phys = this.kernel.phys;
    let off = 0;
    for (const r of runs) {
      if (write) phys.write(r.phys, buf, off, r.len);
      else phys.read(r.phys, buf, off, r.len);
      off += r.len;
    }
    return true;
  }

  /**
   * A device's memory-to-memory transfer: the source translated for
   * reading and the destination for writing through the group's domain,
   * then copied run against run in one pass over physical memory. A
   * fault on either side is logged and nothing is copied. Returns the
   * fault, or undefined when all len bytes were copied.
   */
  dmaCopy(dev: Device, src: bigint, dst: bigint, len: number): IommuFault | undefined {
    const g = dev.iommu_group;
    const domain = g instanceof IommuGroup ? g.domain : undefined;
    const from: DmaRun[] = [];
    const to: DmaRun[] = [];
    const fault: IommuFault | undefined =
      domain === undefined
        ? { iova: src, write: false, reason: 'no translation: device is not attached to a domain' }
        : (domain.translate(src, len, false, from) ?? domain.translate(dst, len, true, to));
    if (fault !== undefined) {
      this.recordFault(dev, fault);
      return fault;
    }
    const phys = this.kernel.phys;
    let i = 0;
    let j = 0;
    let si = 0;
    let dj = 0;
    while (i < from.length && j < to.length) {
      const a = from[i] as DmaRun;
      const b = to[j] as DmaRun;
      const n = Math.min(
        a.len - si,
        b.len - dj,
        runInChunk(phys, a.phys + si),
        runInChunk(phys, b.phys + dj),
      );
      const sv = phys.view(a.phys + si, n);
      const dv = phys.view(b.phys + dj, n);
      if (sv !== undefined && dv !== undefined) dv.set(sv);
      else {
        const tmp = new Uint8Array(n);
        phys.read(a.phys + si, tmp);
        phys.write(b.phys + dj, tmp);
      }
      si += n;
      dj += n;
      if (si === a.len) {
        i++;
        si = 0;
      }
      if (dj === b.len) {
        j++;
        dj = 0;
      }
    }
    return undefined;
  }

  recordFault(dev: Device, f: IommuFault): void {
    this.faults.push({
      device: dev.name,
      iova: f.iova,
      write: f.write,
      reason: f.reason,
      timeNs: this.kernel.clock.now,
    });
    this.kernel.printk('err', this.faultLogger(dev, f));
  }
}

/* bytes from phys to the end of its backing chunk (a zero-copy view cannot cross it) */
function runInChunk(phys: Kernel['phys'], p: number): number {
  const o = phys.lookup(p);
  if (o === undefined) return Number.POSITIVE_INFINITY;
  const rel = p - o.phys;
  return Math.min(o.chunkBytes - (rel % o.chunkBytes), o.size - rel);
}

/* drivers/iommu/intel/dmar.c's wording */
function defaultFaultText(dev: Device, f: IommuFault): string {
  const bdf = dev.name.slice(5);
  return `DMAR: [DMA ${f.write ? 'Write' : 'Read'}] Request device [${bdf}] fault addr 0x${f.iova.toString(16)} [fault reason 0x${f.write ? '05' : '06'}] ${f.reason}`;
}
