import {
  type HostDriverHooks,
  makeHostDmaDriver,
  makePcieportDriver,
  makePciStubDriver,
} from '../devices/index.ts';
import {
  type IommuCaps,
  IommuCore,
  type IommuGroup,
  type ReservedRegion,
  registerX86Iommu,
} from '../iommu/index.ts';
import {
  type ArchName,
  Kernel,
  type KernelVersion,
  type Kthread,
  kernelProfile,
  Process,
  reallyProbe,
  type SpawnOptions,
  type Task,
} from '../kernel/index.ts';
import { PciDev, type PciDriver, PciSubsystem, parseBdf, setPciSubsystem } from '../pci/index.ts';
import { EBUSY, ENODEV, ENXIO } from '../uapi/index.ts';
import { vfioCoreProfile } from '../vfio/index.ts';
import { type DeviceModelFactory, deviceModels } from './models.ts';
import { installedModules } from './modules.ts';
import { type Ppc64Platform, setupPpc64 } from './ppc64.ts';

/*
 * A machine: one kernel booted with the PCI core, the IOMMU core, VFIO and
 * its drivers, plus the devices the description adds. This is the only
 * place that knows every module; tests and the CLI build hosts here.
 */
export interface HostOptions {
  readonly arch?: ArchName;
  readonly kernel?: KernelVersion;
  /** PAGE_SIZE: 4 KiB on x86_64; 64 KiB (default) or 4 KiB on ppc64 */
  readonly pageSize?: 4096 | 65536;
  readonly iommu?: Partial<IommuCaps> & { readonly reservedRegions?: readonly ReservedRegion[] };
  /* ppc64 (src/host/ppc64.ts): every PE's default 32-bit DMA window; start 0, size 1 GiB by default */
  readonly dma32WindowStart?: bigint;
  readonly dma32WindowSize?: bigint;
}

export interface AddPciDeviceOptions {
  readonly bdf: string;
  /** 'generic' takes vendor/device/class; other models come from src/devices */
  readonly model?: string;
  readonly iommuGroup?: number;
  readonly vendor?: number;
  readonly device?: number;
  readonly class?: number;
  /** the host driver that binds at boot ('e1000e', 'pci-stub', ...) */
  readonly driver?: string;
  /** upstream bridge bdf */
  readonly parent?: string;
  readonly pcie?: boolean;
  readonly dmaMask?: number;
  readonly [extra: string]: unknown;
}

const MEM32_BASE = 0xc000_0000;
const MEM64_BASE = 0x80_0000_0000;
const IO_BASE = 0xc000;

export class Host {
  readonly kernel: Kernel;
  readonly pci: PciSubsystem;
  readonly iommu: IommuCore;
  readonly arch: ArchName;
  readonly version: KernelVersion;
  private nextMem32 = MEM32_BASE;
  private nextMem64 = MEM64_BASE;
  private nextIo = IO_BASE;
  private nextIrq = 16;
  private readonly hostDrivers = new Map<string, PciDriver>();
  /** device model factories by name (src/host/models.ts) */
  static readonly models: Map<string, DeviceModelFactory> = deviceModels;
  /** platform hooks for DMA a host driver does while bound (sPAPR fills it_map) */
  hostDmaHooks: HostDriverHooks = {};
  /** ppc64: the POWER platform (PHBs, PEs, TCE tables, EEH); undefined on x86_64 */
  readonly ppc64: Ppc64Platform | undefined;

  constructor(opts: HostOptions = {}) {
    this.arch = opts.arch ?? 'x86_64';
    this.version = opts.kernel ?? '4.1';
    if (this.arch !== 'x86_64' && this.arch !== 'ppc64') throw new Error(`unknown arch ${String(this.arch)}`);
    if (this.version !== '4.1' && this.version !== '6.12')
      throw new Error(`unknown kernel profile ${String(this.version)}`);
    const pageSize = this.arch === 'ppc64' ? (opts.pageSize ?? 65536) : 4096;
    this.kernel = new Kernel(this.version, { name: this.arch, pageSize, pageShift: Math.log2(pageSize) });
    const k = this.kernel;
    this.iommu = new IommuCore(k, {
      intrRemap: opts.iommu?.intrRemap ?? true,
      cacheCoherent: opts.iommu?.cacheCoherent ?? true,
      addressWidth: opts.iommu?.addressWidth ?? 39,
      pgsizeBitmap: opts.iommu?.pgsizeBitmap ?? 0x40201000n,
    });
    this.reservedRegions =
      opts.iommu?.reservedRegions ??
      (this.arch === 'x86_64' ? [{ start: 0xfee00000n, end: 0xfeefffffn, type: 'msi' }] : []);
    this.pci = new PciSubsystem(k);
    if (this.arch === 'x86_64')
      registerX86Iommu(this.iommu); /* intel_iommu_init: VT-d domains and fault reporting */
    this.ppc64 = this.arch === 'ppc64' ? setupPpc64(k, this.iommu, this.hostDmaHooks, opts) : undefined;
    k.inKernel(() => {
      setPciSubsystem(k, this.pci);
      this.iommu.attachBus(this.pci.bus, vfioCoreProfile(this.version).dmaOwnership);
      const stub = makePciStubDriver();
      this.hostDrivers.set(stub.name, stub);
      this.pci.registerDriver(stub);
      const port = makePcieportDriver([]);
      this.hostDrivers.set(port.name, port);
      this.pci.registerDriver(port);
      for (const m of installedModules(this.arch)) k.modules.install(m);
      /* boot: what the distribution's init would modprobe */
      this.modprobe('vfio');
      if (!vfioCoreProfile(this.version).requestIommuModules) {
        /* 6.12: MODULE_SOFTDEP("post: vfio_iommu_type1 vfio_iommu_spapr_tce") */
        this.modprobe('vfio_iommu_type1');
        this.modprobe('vfio_iommu_spapr_tce');
      }
      this.modprobe('vfio_pci');
    });
  }

  readonly reservedRegions: readonly ReservedRegion[];

  get pageSize(): number {
    return this.kernel.pageSize;
  }

  modprobe(name: string): number {
    return this.kernel.inKernel(() => this.kernel.modules.requestModule(name));
  }

  rmmod(name: string): number {
    return this.kernel.inKernel(() => this.kernel.modules.deleteModule(name));
  }

  /** run kernel code (module init, driver calls) as this host's kernel */
  inKernel<T>(fn: () => T): T {
    return this.kernel.inKernel(fn);
  }

  /* ---- devices ---- */

  addPciDevice(opts: AddPciDeviceOptions): PciDev {
    const loc = parseBdf(opts.bdf);
    if (loc === undefined) throw new Error(`bad PCI address "${opts.bdf}" (want dddd:bb:ss.f)`);
    if (this.pci.find(opts.bdf) !== undefined) throw new Error(`device ${opts.bdf} already exists`);
    const kind = opts.model ?? 'generic';
    const factory = Host.models.get(kind);
    if (factory === undefined)
      throw new Error(`unknown device model "${kind}" (known: ${[...Host.models.keys()].join(', ')})`);
    const model = factory(opts);
    const parent = opts.parent === undefined ? undefined : this.pci.find(opts.parent);
    if (opts.parent !== undefined && parent === undefined)
      throw new Error(`parent bridge ${opts.parent} not found`);
    return this.kernel.inKernel(() => {
      const pcie = opts.pcie ?? model.pcie ?? true;
      const pdev = new PciDev(loc.domain, loc.bus, loc.devfn, model, this.pci.bus, parent, pcie);
      parent?.subordinates.push(pdev);
      pdev.assignResources((len, io, mem64) => this.allocWindow(len, io, mem64));
      if ((model.interruptPin ?? 0) !== 0) pdev.irq = this.nextIrq++;
      model.realize(
        pdev.busInterface((delay, fn) => {
          const t = this.kernel.clock.schedule(delay, fn);
          return { cancel: () => this.kernel.clock.cancel(t) };
        }),
      );
      const driver = opts.driver ?? model.hostDriver;
      if (driver !== undefined && driver !== 'vfio-pci' && !this.hostDrivers.has(driver)) {
        const drv = makeHostDmaDriver(driver, [], this.hostDmaHooks);
        this.hostDrivers.set(driver, drv);
        this.pci.registerDriver(drv);
      }
      /* the boot-time binding: as if the driver's id table matched */
      if (driver !== undefined) pdev.driver_override = driver;
      this.pci.addDevice(pdev, () => {
        const group = this.iommuGroupFor(opts.iommuGroup);
        this.ppc64?.deviceAdded(pdev, group, opts); /* ppc64: the group's PE and its TCE table */
        this.iommu.groupAddDevice(group, pdev);
      });
      pdev.driver_override = undefined;
      return pdev;
    });
  }

  private iommuGroupFor(id: number | undefined): IommuGroup {
    let gid = id;
    if (gid === undefined) {
      gid = 0;
      while (this.iommu.groups.has(gid)) gid++;
    }
    const fresh = !this.iommu.groups.has(gid);
    const g = this.iommu.groupAlloc(gid);
    if (fresh) for (const r of this.reservedRegions) g.reservedRegions.push(r);
    return g;
  }

  private allocWindow(len: number, io: boolean, mem64: boolean): number {
    const align = (v: number, a: number): number => Math.ceil(v / a) * a;
    if (io) {
      const a = align(this.nextIo, len);
      this.nextIo = a + len;
      return a;
    }
    if (mem64) {
      const a = align(this.nextMem64, len);
      this.nextMem64 = a + len;
      return a;
    }
    const a = align(this.nextMem32, len);
    this.nextMem32 = a + len;
    return a;
  }

  device(bdf: string): PciDev | undefined {
    return this.pci.find(bdf);
  }

  /**
   * Bind bdf to a driver as a user does: unbind the current driver, write
   * driver_override, then drivers_probe. Returns 0 or -errno (-ENODEV when
   * the driver did not take the device; the probe's own error otherwise).
   */
  bind(bdf: string, driver: string): number {
    const k = this.kernel;
    const pdev = this.pci.find(bdf);
    if (pdev === undefined) return -ENODEV;
    if (pdev.driver?.name === driver) return 0;
    if (pdev.driver !== undefined) {
      const kt = this.unbind(bdf);
      if (kt.state !== 'done') return -EBUSY; /* the old driver still waits for its users */
    }
    return k.inKernel(() => {
      pdev.driver_override = driver;
      const drv = this.pci.bus.drivers.find((d) => d.name === driver);
      let r = -ENODEV;
      if (drv !== undefined) r = reallyProbe(pdev, drv);
      return r === -ENODEV || r === -ENXIO ? -ENODEV : r;
    });
  }

  /**
   * Unbind bdf from its driver. vfio-pci's remove waits while a user holds
   * the device open: the returned kthread is then 'sleeping' and completes
   * when the last device fd is closed.
   */
  unbind(bdf: string): Kthread<void> {
    const pdev = this.pci.find(bdf);
    if (pdev === undefined) throw new Error(`no device ${bdf}`);
    return this.kernel.inKernel(() => this.pci.unbind(pdev));
  }

  /* ---- processes ---- */

  spawn(opts: SpawnOptions = {}): Process {
    return new Process(this.kernel, opts, kernelProfile(this.version).defaultMemlock);
  }

  tasks(): Task[] {
    return [...this.kernel.tasks.values()];
  }

  /* ---- observation ---- */

  /** the kernel log, as dmesg prints it */
  dmesg(opts: { reasons?: boolean; debug?: boolean } = {}): string[] {
    const recs = this.kernel.log
      .all()
      .filter((r) =>
        r.reason === undefined ? r.level !== 'debug' || opts.debug === true : opts.reasons !== false,
      );
    return recs.map((r) => r.text);
  }

  liveObjects(): Record<string, number> {
    return this.kernel.objects.snapshot();
  }

  get halted(): boolean {
    return this.kernel.halted !== undefined;
  }
}
