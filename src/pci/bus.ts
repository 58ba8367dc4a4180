import {
  BUS_NOTIFY_ADD_DEVICE,
  BUS_NOTIFY_BOUND_DRIVER,
  BUS_NOTIFY_DEL_DEVICE,
  BUS_NOTIFY_UNBOUND_DRIVER,
  type BusType,
  currentKernel,
  type Device,
  deviceAttach,
  deviceReleaseDriver,
  driverRegister,
  type Kernel,
  type Kthread,
  reallyProbe,
} from '../kernel/index.ts';
import { EINVAL, ENODEV, ENXIO } from '../uapi/index.ts';
import { pciRouteIntx } from './irq.ts';
import { createPciBusType, type PciDev, type PciDriver, toPciDev } from './pci.ts';

/*
 * The PCI subsystem of one kernel: pci_bus_type, device registration with
 * its sysfs directory, driver registration with bind/unbind/new_id, and
 * driver_override + drivers_probe, which is how a user hands a device to
 * vfio-pci.
 */
export class PciSubsystem {
  readonly bus: BusType = createPciBusType();
  /** unbinds still waiting in a driver's remove (vfio_del_group_dev) */
  readonly pendingUnbinds = new Map<string, Kthread<void>>();
  /** interrupt vectors the platform can hand to MSI/MSI-X (x86: about 200 per CPU) */
  msiVectorBudget = 224;
  msiVectorsInUse = 0;
  /** the next interrupt line number for an MSI vector */
  nextMsiIrq = 128;
  /** MSI-X vectors can be added while enabled (6.x x86 irq domains: MSI_FLAG_PCI_MSIX_ALLOC_DYN) */
  msixDynamicAlloc: boolean;

  constructor(readonly kernel: Kernel) {
    this.msixDynamicAlloc = kernel.version !== '4.1' && kernel.arch.name === 'x86_64';
    const vfs = kernel.vfs;
    vfs.mkdirp('/sys/bus/pci/devices');
    vfs.mkdirp('/sys/bus/pci/drivers');
    vfs.add('/sys/bus/pci/drivers_probe', {
      kind: 'attr',
      mode: 0o200,
      store: (text) => {
        const dev = this.find(text.trim());
        if (dev === undefined) return -ENODEV;
        deviceAttach(dev);
        return text.length;
      },
    });
    /* keep the sysfs "driver" link in step with binding */
    this.bus.notifier.register({
      priority: 100,
      notifier_call: (_nb, action, dev) => {
        if (action === BUS_NOTIFY_BOUND_DRIVER && dev.driver !== undefined)
          vfs.link(`${dev.sysfsPath}/driver`, `/sys/bus/pci/drivers/${dev.driver.name}`);
        if (action === BUS_NOTIFY_UNBOUND_DRIVER) vfs.remove(`${dev.sysfsPath}/driver`);
        return 0;
      },
    });
  }

  find(name: string): PciDev | undefined {
    for (const d of this.bus.devices) if (d.name === name) return toPciDev(d);
    return undefined;
  }

  devices(): PciDev[] {
    return this.bus.devices.map((d) => toPciDev(d)).filter((d): d is PciDev => d !== undefined);
  }

  /** pci_device_add + device_add: sysfs entries, bus notifier, then probe */
  /**
   * pci_device_add + device_add. `onAdded` runs where the kernel's
   * BUS_NOTIFY_ADD_DEVICE subscribers run (the IOMMU core puts the device in
   * its group there), before any driver probes it.
   */
  addDevice(pdev: PciDev, onAdded?: () => void): void {
    const vfs = this.kernel.vfs;
    const parent =
      pdev.bridge?.sysfsPath ??
      `/sys/devices/pci${pdev.domain.toString(16).padStart(4, '0')}:${pdev.busnr.toString(16).padStart(2, '0')}`;
    pdev.sysfsPath = `${parent}/${pdev.name}`;
    const hex = (v: number, w: number): string => `0x${v.toString(16).padStart(w, '0')}\n`;
    vfs.mkdirp(pdev.sysfsPath);
    const attrs: [string, () => string][] = [
      ['vendor', () => hex(pdev.vendor, 4)],
      ['device', () => hex(pdev.device, 4)],
      ['class', () => hex(pdev.class, 6)],
      ['subsystem_vendor', () => hex(pdev.model.subsystemVendor ?? 0, 4)],
      ['subsystem_device', () => hex(pdev.model.subsystem ?? 0, 4)],
      ['irq', () => `${pdev.irq}\n`],
      [
        'resource',
        () =>
          `${pdev.resource
            .map((r) => {
              const end = r.len > 0 ? r.start + r.len - 1 : 0;
              return `${hex(r.start, 16).trim()} ${hex(end, 16).trim()} ${hex(r.flags, 16).trim()}`;
            })
            .join('\n')}\n`,
      ],
    ];
    for (const [name, show] of attrs)
      vfs.add(`${pdev.sysfsPath}/${name}`, { kind: 'attr', mode: 0o444, show });
    vfs.add(`${pdev.sysfsPath}/driver_override`, {
      kind: 'attr',
      mode: 0o644,
      show: () => `${pdev.driver_override ?? '(null)'}\n`,
      store: (text) => {
        if (text.length > 4096) return -EINVAL;
        const v = text.replace(/\n$/, '');
        pdev.driver_override = v.length > 0 ? v : undefined;
        return text.length;
      },
    });
    vfs.link(`/sys/bus/pci/devices/${pdev.name}`, pdev.sysfsPath);
    pciRouteIntx(pdev);
    this.bus.devices.push(pdev);
    this.bus.notifier.call(BUS_NOTIFY_ADD_DEVICE, pdev);
    onAdded?.();
    deviceAttach(pdev);
  }

  /** pci_stop_and_remove_bus_device: unbind (may wait), then forget the device */
  removeDevice(pdev: PciDev): Kthread<void> {
    return this.kernel.runKthread(`remove-${pdev.name}`, this.removeBody(pdev));
  }

  private *removeBody(pdev: PciDev) {
    yield* deviceReleaseDriver(pdev);
    this.bus.notifier.call(BUS_NOTIFY_DEL_DEVICE, pdev);
    const i = this.bus.devices.indexOf(pdev);
    if (i >= 0) this.bus.devices.splice(i, 1);
    this.kernel.vfs.remove(`/sys/bus/pci/devices/${pdev.name}`);
    this.kernel.vfs.remove(pdev.sysfsPath);
  }

  registerDriver(drv: PciDriver): number {
    const vfs = this.kernel.vfs;
    const dir = `/sys/bus/pci/drivers/${drv.name}`;
    vfs.mkdirp(dir);
    vfs.add(`${dir}/bind`, { kind: 'attr', mode: 0o200, store: (t) => this.bindStore(drv, t) });
    vfs.add(`${dir}/unbind`, { kind: 'attr', mode: 0o200, store: (t) => this.unbindStore(drv, t) });
    vfs.add(`${dir}/new_id`, { kind: 'attr', mode: 0o200, store: (t) => this.newIdStore(drv, t) });
    return driverRegister(drv, this.bus);
  }

  unregisterDriver(drv: PciDriver): Kthread<void> {
    const bus = this.bus;
    const vfs = this.kernel.vfs;
    return this.kernel.runKthread(
      `unregister-${drv.name}`,
      (function* () {
        for (const dev of [...bus.devices]) if (dev.driver === drv) yield* deviceReleaseDriver(dev);
        const i = bus.drivers.indexOf(drv);
        if (i >= 0) bus.drivers.splice(i, 1);
        vfs.remove(`/sys/bus/pci/drivers/${drv.name}`);
      })(),
    );
  }

  /* bind_store: -ENODEV unless the device is unbound and matches */
  private bindStore(drv: PciDriver, text: string): number {
    const dev = this.find(text.trim());
    if (dev === undefined || dev.driver !== undefined || !this.bus.match(dev, drv)) return -ENODEV;
    const r = reallyProbe(dev, drv);
    if (r === 0) return text.length;
    return r === -ENODEV || r === -ENXIO ? -ENODEV : r;
  }

  /* unbind_store: the write returns at once; a remove that waits completes later */
  private unbindStore(drv: PciDriver, text: string): number {
    const dev = this.find(text.trim());
    if (dev === undefined || dev.driver !== drv) return -ENODEV;
    this.unbind(dev);
    return text.length;
  }

  unbind(dev: Device): Kthread<void> {
    /* a second unbind would wait on the device lock the first one holds: it is the same wait */
    const pending = this.pendingUnbinds.get(dev.name);
    if (pending !== undefined) return pending;
    const kt = this.kernel.runKthread(`unbind-${dev.name}`, deviceReleaseDriver(dev));
    if (kt.state !== 'done') {
      this.pendingUnbinds.set(dev.name, kt);
      kt.whenDone(() => this.pendingUnbinds.delete(dev.name));
    }
    return kt;
  }

  private newIdStore(drv: PciDriver, text: string): number {
    const parts = text.trim().split(/\s+/);
    const vendor = Number.parseInt(parts[0] ?? '', 16);
    const device = Number.parseInt(parts[1] ?? '', 16);
    if (Number.isNaN(vendor) || Number.isNaN(device)) return -EINVAL;
    drv.dynids.push({ vendor, device });
    for (const d of this.bus.devices)
      if (d.driver === undefined && this.bus.match(d, drv)) reallyProbe(d, drv);
    return text.length;
  }
}

const subsystems = new WeakMap<Kernel, PciSubsystem>();

export function setPciSubsystem(kernel: Kernel, pci: PciSubsystem): void {
  subsystems.set(kernel, pci);
}

/** the PCI core of the running kernel (pci_register_driver and friends reach it so) */
export function pciSubsystem(): PciSubsystem {
  const p = subsystems.get(currentKernel());
  if (p === undefined) throw new Error('no PCI subsystem in this kernel');
  return p;
}

export function pciRegisterDriver(drv: PciDriver): number {
  return pciSubsystem().registerDriver(drv);
}

export function pciUnregisterDriver(drv: PciDriver): Kthread<void> {
  return pciSubsystem().unregisterDriver(drv);
}
