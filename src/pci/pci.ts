import {
  type BusType,
  Device,
  type DeviceDriver,
  type KthreadBody,
  type Module,
  newBus,
} from '../kernel/index.ts';
import { ENODEV } from '../uapi/index.ts';
import { buildConfigSpace, type ConfigSpace } from './config.ts';
import type { PciBus, PciDeviceModel } from './model.ts';
import {
  IORESOURCE_IO,
  IORESOURCE_MEM,
  IORESOURCE_MEM_64,
  IORESOURCE_PREFETCH,
  PCI_BASE_ADDRESS_0,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_HEADER_TYPE_NORMAL,
  PCI_NUM_RESOURCES,
  PCI_ROM_ADDRESS,
  PCI_ROM_RESOURCE,
} from './regs.ts';

/*
 * struct pci_dev and the PCI bus type. A PciDev is a Device on the pci bus
 * with its hardware config space, its resources (BARs as the platform
 * assigned them), its device model, and the bridge it sits behind.
 */
export interface PciResource {
  start: number;
  len: number;
  flags: number;
}

export interface PciDeviceId {
  readonly vendor: number;
  readonly device: number;
}

export interface PciDriver extends DeviceDriver {
  readonly id_table: readonly PciDeviceId[];
  /** ids added at run time through sysfs new_id */
  readonly dynids: PciDeviceId[];
  pciProbe(pdev: PciDev): number;
  pciRemove(pdev: PciDev): void | KthreadBody<void>;
}

export function parseBdf(bdf: string): { domain: number; bus: number; devfn: number } | undefined {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(bdf);
  if (m === null) return undefined;
  return {
    domain: Number.parseInt(m[1] ?? '0', 16),
    bus: Number.parseInt(m[2] ?? '0', 16),
    devfn: (Number.parseInt(m[3] ?? '0', 16) << 3) | Number.parseInt(m[4] ?? '0', 10),
  };
}

export function formatBdf(domain: number, bus: number, devfn: number): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${h(domain, 4)}:${h(bus, 2)}:${h(devfn >> 3, 2)}.${devfn & 7}`;
}

export class PciDev extends Device {
  readonly cfg: ConfigSpace;
  readonly resource: PciResource[] = [];
  /** pdev->irq: the host interrupt line INTx is routed to (0: none) */
  irq = 0;
  /** the INTx line as the device drives it */
  intxLevel = false;
  /** interrupt handlers installed by the bound driver (request_irq) */
  intxHandler: (() => void) | undefined;
  msiHandler: ((vector: number) => void) | undefined;
  /** the upstream bridge (undefined: on a root bus) */
  readonly bridge: PciDev | undefined;
  /** set by the IOMMU core: how this function's DMA is translated */
  dmaPort: Pick<PciBus, 'dmaRead' | 'dmaWrite'> | undefined;
  /** devices for which a bus reset through this bridge reaches (bridges only) */
  readonly subordinates: PciDev[] = [];
  /** pci_dev->is_busmaster etc. kept in hardware config; saved state for pci_save_state */
  savedConfig: Uint8Array | undefined;
  constructor(
    readonly domain: number,
    readonly busnr: number,
    readonly devfn: number,
    readonly model: PciDeviceModel,
    bus: BusType,
    bridge: PciDev | undefined,
    pcie: boolean,
  ) {
    super(formatBdf(domain, busnr, devfn), bus, bridge);
    this.bridge = bridge;
    this.cfg = buildConfigSpace(model, pcie ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE);
  }

  get vendor(): number {
    return this.model.vendor;
  }
  get device(): number {
    return this.model.device;
  }
  get class(): number {
    return this.model.classCode;
  }
  get hdr_type(): number {
    return (this.model.headerType ?? PCI_HEADER_TYPE_NORMAL) & 0x7f;
  }
  get cfg_size(): number {
    return this.cfg.size;
  }
  get slot(): number {
    return this.devfn >> 3;
  }
  get func(): number {
    return this.devfn & 7;
  }

  /** assign resources from the platform's windows and program the BARs */
  assignResources(alloc: (len: number, io: boolean, mem64: boolean) => number): void {
    for (let i = 0; i < PCI_NUM_RESOURCES; i++) this.resource.push({ start: 0, len: 0, flags: 0 });
    for (let i = 0; i < 6; i++) {
      const b = this.model.bars[i];
      if (b === undefined) continue;
      const io = b.type === 'io';
      const start = alloc(b.size, io, b.type === 'mem64');
      const flags =
        (io ? IORESOURCE_IO : IORESOURCE_MEM) |
        (b.type === 'mem64' ? IORESOURCE_MEM_64 : 0) |
        (b.prefetch ? IORESOURCE_PREFETCH : 0);
      this.resource[i] = { start, len: b.size, flags };
      const off = PCI_BASE_ADDRESS_0 + 4 * i;
      this.cfg.write(off, 4, start % 2 ** 32);
      if (b.type === 'mem64') {
        this.cfg.write(off + 4, 4, Math.floor(start / 2 ** 32));
        i++;
      }
    }
    const rom = this.model.romSize ?? 0;
    if (rom > 0) {
      const start = alloc(rom, false, false);
      this.resource[PCI_ROM_RESOURCE] = { start, len: rom, flags: IORESOURCE_MEM };
      this.cfg.write(PCI_ROM_ADDRESS, 4, start);
    }
  }

  /** the bus interface handed to the device model */
  busInterface(schedule: PciBus['schedule']): PciBus {
    return {
      dmaRead: (addr, buf) => {
        if (this.dmaPort === undefined) {
          buf.fill(0);
          return false;
        }
        return this.dmaPort.dmaRead(addr, buf);
      },
      dmaWrite: (addr, data) => (this.dmaPort === undefined ? false : this.dmaPort.dmaWrite(addr, data)),
      setIntx: (level) => {
        const rising = level && !this.intxLevel;
        this.intxLevel = level;
        if (rising && this.intxHandler !== undefined) this.intxHandler();
      },
      msiNotify: (vector) => this.msiHandler?.(vector),
      schedule,
      readConfig: (off, size) => this.cfg.read(off, size),
    };
  }
}

export function toPciDev(dev: Device): PciDev | undefined {
  return dev instanceof PciDev ? dev : undefined;
}

/* pci_bus_match: driver_override first, then dynamic ids, then the id table */
function pciBusMatch(dev: Device, drv: DeviceDriver): boolean {
  const pdev = toPciDev(dev);
  const pdrv = drv as Partial<PciDriver>;
  if (pdev === undefined) return false;
  if (pdev.driver_override !== undefined) return pdev.driver_override === drv.name;
  const ids = [...(pdrv.dynids ?? []), ...(pdrv.id_table ?? [])];
  return ids.some(
    (id) =>
      (id.vendor === 0xffff || id.vendor === pdev.vendor) &&
      (id.device === 0xffff || id.device === pdev.device),
  );
}

export function createPciBusType(): BusType {
  return newBus('pci', pciBusMatch);
}

/** a PciDriver from its probe/remove, as `static struct pci_driver` */
export function definePciDriver(spec: {
  name: string;
  owner?: Module | undefined;
  id_table?: readonly PciDeviceId[];
  driver_managed_dma?: boolean;
  probe(pdev: PciDev): number;
  remove(pdev: PciDev): void | KthreadBody<void>;
}): PciDriver {
  const drv: PciDriver = {
    name: spec.name,
    owner: spec.owner,
    driver_managed_dma: spec.driver_managed_dma ?? false,
    id_table: spec.id_table ?? [],
    dynids: [],
    pciProbe: spec.probe,
    pciRemove: spec.remove,
    probe(dev: Device): number {
      const p = toPciDev(dev);
      return p === undefined ? -ENODEV : spec.probe(p);
    },
    remove(dev: Device): void | KthreadBody<void> {
      const p = toPciDev(dev);
      return p === undefined ? undefined : spec.remove(p);
    },
  };
  return drv;
}
