import { EBUSY, ENODEV } from '../uapi/index.ts';
import { fail } from './err.ts';
import type { Module } from './module.ts';
import { BlockingNotifierHead } from './notifier.ts';
import type { KthreadBody } from './wait.ts';

/*
 * The driver core (drivers/base): struct device, struct device_driver,
 * struct bus_type, probing and unbinding, and the bus notifier that the
 * IOMMU core turns into iommu-group notifications.
 */
export const BUS_NOTIFY_ADD_DEVICE = 0x00000001;
export const BUS_NOTIFY_DEL_DEVICE = 0x00000002;
export const BUS_NOTIFY_REMOVED_DEVICE = 0x00000003;
export const BUS_NOTIFY_BIND_DRIVER = 0x00000004;
export const BUS_NOTIFY_BOUND_DRIVER = 0x00000005;
export const BUS_NOTIFY_UNBIND_DRIVER = 0x00000006;
export const BUS_NOTIFY_UNBOUND_DRIVER = 0x00000007;
export const BUS_NOTIFY_DRIVER_NOT_BOUND = 0x00000008;

/** what the IOMMU core hangs off a device; typed by the iommu layer */
export interface IommuGroupHandle {
  readonly id: number;
}

export class Device {
  driver: DeviceDriver | undefined;
  driver_data: unknown;
  driver_override: string | undefined;
  iommu_group: IommuGroupHandle | undefined;
  /** the sysfs directory of this device */
  sysfsPath = '';
  /** set while an unbind is blocked in the driver's remove */
  unbinding = false;
  constructor(
    readonly name: string,
    readonly bus: BusType,
    readonly parent: Device | undefined,
  ) {}
}

export function devName(dev: Device): string {
  return dev.name;
}

export interface DeviceDriver {
  readonly name: string;
  readonly owner?: Module | undefined;
  /** 6.x: the driver manages DMA ownership itself (vfio-pci) */
  readonly driver_managed_dma?: boolean;
  probe(dev: Device): number;
  /** may sleep (vfio_del_group_dev waits for the last user): a generator then */
  remove(dev: Device): void | KthreadBody<void>;
}

export interface BusType {
  readonly name: string;
  readonly drivers: DeviceDriver[];
  readonly devices: Device[];
  readonly notifier: BlockingNotifierHead<Device>;
  match(dev: Device, drv: DeviceDriver): boolean;
  /** 6.x: claim the default DMA domain before probe (pci_dma_configure) */
  dma_configure?(dev: Device, drv: DeviceDriver): number;
  dma_cleanup?(dev: Device, drv: DeviceDriver): void;
}

export function newBus(name: string, match: BusType['match']): BusType {
  return { name, drivers: [], devices: [], notifier: new BlockingNotifierHead<Device>(), match };
}

/** really_probe: bind drv to dev; 0 or -errno, dev left unbound on error */
export function reallyProbe(dev: Device, drv: DeviceDriver): number {
  const bus = dev.bus;
  if (bus.dma_configure !== undefined) {
    const r = bus.dma_configure(dev, drv);
    if (r < 0) return r;
  }
  dev.driver = drv;
  bus.notifier.call(BUS_NOTIFY_BIND_DRIVER, dev);
  const ret = drv.probe(dev);
  if (ret !== 0) {
    dev.driver = undefined;
    dev.driver_data = undefined;
    bus.dma_cleanup?.(dev, drv);
    bus.notifier.call(BUS_NOTIFY_DRIVER_NOT_BOUND, dev);
    return ret;
  }
  bus.notifier.call(BUS_NOTIFY_BOUND_DRIVER, dev);
  return 0;
}

/** driver_probe_device after driver_match_device */
export function driverProbeDevice(drv: DeviceDriver, dev: Device): number {
  if (dev.driver !== undefined) return -EBUSY;
  if (!dev.bus.match(dev, drv)) return -ENODEV;
  return reallyProbe(dev, drv);
}

/** device_attach (drivers_probe): first matching driver that probes wins */
export function deviceAttach(dev: Device): number {
  if (dev.driver !== undefined) return 1;
  for (const drv of dev.bus.drivers) {
    if (!dev.bus.match(dev, drv)) continue;
    const r = reallyProbe(dev, drv);
    if (r === 0) return 1;
  }
  return 0;
}

/** driver_attach on driver registration */
export function driverRegister(drv: DeviceDriver, bus: BusType): number {
  if (bus.drivers.some((d) => d.name === drv.name))
    return fail(EBUSY, `driver ${drv.name} already registered`);
  bus.drivers.push(drv);
  for (const dev of bus.devices) {
    if (dev.driver === undefined && bus.match(dev, drv)) reallyProbe(dev, drv);
  }
  return 0;
}

/**
 * __device_release_driver: the driver's remove may sleep; the caller runs
 * this as a kernel thread and the unbind completes when it returns.
 */
export function* deviceReleaseDriver(dev: Device): KthreadBody<void> {
  const drv = dev.driver;
  if (drv === undefined) return;
  dev.unbinding = true;
  dev.bus.notifier.call(BUS_NOTIFY_UNBIND_DRIVER, dev);
  const r = drv.remove(dev);
  if (r !== undefined) yield* r;
  dev.bus.dma_cleanup?.(dev, drv);
  dev.driver = undefined;
  dev.driver_data = undefined;
  dev.unbinding = false;
  dev.bus.notifier.call(BUS_NOTIFY_UNBOUND_DRIVER, dev);
}

export function* driverUnregister(drv: DeviceDriver, bus: BusType): KthreadBody<void> {
  for (const dev of [...bus.devices]) {
    if (dev.driver === drv) yield* deviceReleaseDriver(dev);
  }
  const i = bus.drivers.indexOf(drv);
  if (i >= 0) bus.drivers.splice(i, 1);
}

export function dev_set_drvdata(dev: Device, data: unknown): number {
  dev.driver_data = data;
  return 0;
}

export function dev_get_drvdata(dev: Device): unknown {
  return dev.driver_data;
}
