import {
  type BusType,
  Device,
  type DeviceDriver,
  type KthreadBody,
  type Module,
  newBus,
} from '../kernel/index.ts';
import { ENODEV } from '../uapi/index.ts';
import { pciFindCapabilityIn } from './caps.ts';
import { buildConfigSpace, type ConfigSpace } from './config.ts';
import type { PciBus, PciDeviceModel } from './model.ts';
import {
  IORESOURCE_IO,
  IORESOURCE_MEM,
  IORESOURCE_MEM_64,
  IORESOURCE_PREFETCH,
  PCI_BASE_ADDRESS_0,
  PCI_BRIDGE_CONTROL,
  PCI_BRIDGE_CTL_BUS_RESET,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_HEADER_TYPE_BRIDGE,
  PCI_HEADER_TYPE_NORMAL,
  PCI_INTERRUPT_LINE,
  PCI_NUM_RESOURCES,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PRIMARY_BUS,
  PCI_ROM_ADDRESS,
  PCI_ROM_RESOURCE,
  PCI_SECONDARY_BUS,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  PCI_SUBORDINATE_BUS,
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

/** pci_channel_state_t */
export const pci_channel_io_normal = 1;
export const pci_channel_io_frozen = 2;

export interface PciErrorHandlers {
  /** AER reported an error on the device; returns a pci_ers_result_t */
  error_detected(pdev: PciDev, state: number): number;
}

export interface PciDriver extends DeviceDriver {
  readonly id_table: readonly PciDeviceId[];
  readonly err_handler?: PciErrorHandlers | undefined;
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
  /** config space as the function comes out of reset (before BARs are assigned) */
  readonly powerOnConfig: Uint8Array;
  readonly resource: PciResource[] = [];
  private _irq = 0;
  /** the INTx line as the device drives it */
  intxLevel = false;
  /** the line as the interrupt controller sees it: asserted and not DisINTx-masked */
  intxLine = false;
  /** called when the INTx line rises (the PCI core's IRQ dispatch installs it) */
  intxHandler: (() => void) | undefined;
  /** called for MSI vector n / MSI-X entry n the device signals */
  msiHandler: ((vector: number) => void) | undefined;
  /** the upstream bridge (undefined: on a root bus) */
  readonly bridge: PciDev | undefined;
  /** set by the IOMMU core: how this function's DMA is translated */
  dmaPort: (Pick<PciBus, 'dmaRead' | 'dmaWrite'> & Partial<Pick<PciBus, 'dmaCopy'>>) | undefined;
  /** devices directly below this bridge (bridges only) */
  readonly subordinates: PciDev[] = [];
  /** pci_save_state's copy (dev->saved_config_space and the PCIe registers) */
  savedConfig: Uint8Array | undefined;
  /** dev->state_saved */
  state_saved = false;
  /** pci_enable_device count */
  enable_cnt = 0;
  /** PCI_D0 / PCI_D3hot as the kernel last set it */
  current_state = 0;
  /** capability offsets found at enumeration (0: absent) */
  readonly msi_cap: number;
  readonly msix_cap: number;
  readonly pcie_cap: number;
  readonly pm_cap: number;
  /** the host kernel's MSI/MSI-X bookkeeping (drivers/pci/msi.c), owned by msi.ts */
  msiState: unknown;
  /**
   * The platform's error-isolation state for this function (POWER EEH: its
   * PE's freeze bits): frozen MMIO reads all ones and drops writes, frozen
   * DMA never reaches the IOMMU.
   */
  eehState: { readonly mmioFrozen: boolean; readonly dmaFrozen: boolean } | undefined;
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
    this.powerOnConfig = this.cfg.bytes.slice();
    this.msi_cap = pciFindCapabilityIn(this.cfg.bytes, PCI_CAP_ID_MSI);
    this.msix_cap = pciFindCapabilityIn(this.cfg.bytes, PCI_CAP_ID_MSIX);
    this.pcie_cap = pciFindCapabilityIn(this.cfg.bytes, PCI_CAP_ID_EXP);
    this.pm_cap = pciFindCapabilityIn(this.cfg.bytes, PCI_CAP_ID_PM);
    if (bridge !== undefined) {
      /* firmware enumeration: the bridge forwards this bus number */
      const sec = bridge.cfg.read(PCI_SECONDARY_BUS, 1);
      if (sec === 0 || busnr < sec) bridge.cfg.set(PCI_SECONDARY_BUS, 1, busnr);
      if (bridge.cfg.read(PCI_SUBORDINATE_BUS, 1) < busnr) bridge.cfg.set(PCI_SUBORDINATE_BUS, 1, busnr);
      bridge.cfg.set(PCI_PRIMARY_BUS, 1, bridge.busnr);
    }
  }

  /** pdev->irq: the host interrupt line INTx is routed to (0: none); firmware writes it to Interrupt Line */
  get irq(): number {
    return this._irq;
  }
  set irq(v: number) {
    this._irq = v;
    this.cfg.set(PCI_INTERRUPT_LINE, 1, v & 0xff);
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
  /** pci_is_pcie */
  get is_pcie(): boolean {
    return this.pcie_cap !== 0;
  }
  /** devices reached by a reset of this bridge's secondary bus (pci_walk_bus below it) */
  busDevices(): PciDev[] {
    const out: PciDev[] = [];
    /* a bus lists its functions in devfn order, as enumeration found them */
    const walk = (b: PciDev): void => {
      for (const d of [...b.subordinates].sort((x, y) => x.devfn - y.devfn)) {
        out.push(d);
        walk(d);
      }
    };
    walk(this);
    return out;
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

  /* ---- the function's side of the bus ---- */

  get busMaster(): boolean {
    return (this.cfg.read(PCI_COMMAND, 2) & PCI_COMMAND_MASTER) !== 0;
  }

  /** recompute the INTx line after the device or DisINTx changed it */
  updateIntx(): void {
    const status = this.cfg.read(PCI_STATUS, 2);
    this.cfg.set(
      PCI_STATUS,
      2,
      this.intxLevel ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT,
    );
    const line = this.intxLevel && !(this.cfg.read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE);
    const rising = line && !this.intxLine;
    this.intxLine = line;
    if (rising) this.intxHandler?.();
  }

  /**
   * A config write as the function receives it: the hardware masks apply,
   * then whatever the write sets in motion (a secondary bus reset, an FLR,
   * a power state change, DisINTx) takes effect.
   */
  configWrite(off: number, size: 1 | 2 | 4, v: number): void {
    const oldBridgeCtl = this.cfg.read(PCI_BRIDGE_CONTROL, 2);
    const pmState = this.pm_cap !== 0 ? this.cfg.read(this.pm_cap + PCI_PM_CTRL, 2) & 3 : 0;
    this.cfg.write(off, size, v);
    if (this.hdr_type === PCI_HEADER_TYPE_BRIDGE && covers(off, size, PCI_BRIDGE_CONTROL, 2)) {
      const ctl = this.cfg.read(PCI_BRIDGE_CONTROL, 2);
      if (ctl & PCI_BRIDGE_CTL_BUS_RESET && !(oldBridgeCtl & PCI_BRIDGE_CTL_BUS_RESET))
        for (const d of this.busDevices()) d.hardwareReset();
    }
    if (this.pcie_cap !== 0 && covers(off, size, this.pcie_cap + PCI_EXP_DEVCTL + 1, 1)) {
      const ctl = this.cfg.read(this.pcie_cap + PCI_EXP_DEVCTL, 2);
      if (ctl & PCI_EXP_DEVCTL_BCR_FLR) {
        /* Initiate FLR: the bit reads back 0 and the function resets */
        this.cfg.set(this.pcie_cap + PCI_EXP_DEVCTL, 2, ctl & ~PCI_EXP_DEVCTL_BCR_FLR);
        this.hardwareReset();
        return;
      }
    }
    if (this.pm_cap !== 0 && covers(off, size, this.pm_cap + PCI_PM_CTRL, 1)) {
      const ctl = this.cfg.read(this.pm_cap + PCI_PM_CTRL, 2);
      /* D3hot -> D0 without No_Soft_Reset is an internal reset */
      if (pmState === 3 && (ctl & 3) === 0 && !(ctl & PCI_PM_CTRL_NO_SOFT_RESET)) {
        this.hardwareReset();
        return;
      }
    }
    this.model.configWritten?.(off, size);
    this.updateIntx();
  }

  /** the function comes out of reset: power-on config, device registers reset */
  hardwareReset(): void {
    this.cfg.bytes.set(this.powerOnConfig);
    this.model.reset();
    this.updateIntx();
  }

  /** the bus interface handed to the device model */
  busInterface(schedule: PciBus['schedule']): PciBus {
    return {
      /* a function without Bus Master Enable cannot issue requests at all */
      dmaRead: (addr, buf) => {
        if (this.dmaPort === undefined || !this.busMaster || this.eehState?.dmaFrozen === true) {
          buf.fill(0);
          return false;
        }
        return this.dmaPort.dmaRead(addr, buf);
      },
      dmaWrite: (addr, data) =>
        this.dmaPort === undefined || !this.busMaster || this.eehState?.dmaFrozen === true
          ? false
          : this.dmaPort.dmaWrite(addr, data),
      dmaCopy: (src, dst, len) => {
        const port = this.dmaPort;
        if (port === undefined || !this.busMaster || this.eehState?.dmaFrozen === true)
          return { iova: src, write: false };
        if (port.dmaCopy !== undefined) return port.dmaCopy(src, dst, len);
        /* a port without a copy path: through a bounce buffer */
        const buf = new Uint8Array(len);
        if (!port.dmaRead(src, buf)) return { iova: src, write: false };
        return port.dmaWrite(dst, buf) ? undefined : { iova: dst, write: true };
      },
      setIntx: (level) => {
        if (level === this.intxLevel) return;
        this.intxLevel = level;
        this.updateIntx();
      },
      /* an MSI is a memory write by the device: without bus mastering it never leaves the function */
      msiNotify: (vector) => {
        if (this.cfg.read(PCI_COMMAND, 2) & PCI_COMMAND_MASTER) this.msiHandler?.(vector);
      },
      schedule,
      readConfig: (off, size) => this.cfg.read(off, size),
    };
  }
}

function covers(off: number, size: number, reg: number, regSize: number): boolean {
  return off < reg + regSize && reg < off + size;
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
  err_handler?: PciErrorHandlers;
  probe(pdev: PciDev): number;
  remove(pdev: PciDev): void | KthreadBody<void>;
}): PciDriver {
  const drv: PciDriver = {
    name: spec.name,
    err_handler: spec.err_handler,
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
