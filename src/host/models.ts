import {
  CopyEngineModel,
  EduModel,
  GenericPciModel,
  PcieRootPortModel,
  SerialModel,
} from '../devices/index.ts';
import type { PciDeviceModel } from '../pci/index.ts';
import type { AddPciDeviceOptions } from './host.ts';

/** builds a device model from a host description entry */
export type DeviceModelFactory = (opts: AddPciDeviceOptions) => PciDeviceModel;

/* The device models a host description may name ('model' of addPciDevice). */
export const deviceModels = new Map<string, DeviceModelFactory>([
  [
    'generic',
    (o) =>
      new GenericPciModel({
        ...(o.vendor !== undefined ? { vendor: o.vendor } : {}),
        ...(o.device !== undefined ? { device: o.device } : {}),
        ...(o.class !== undefined ? { classCode: o.class } : {}),
        ...(o.driver !== undefined ? { hostDriver: o.driver } : {}),
        ...(o.pcie !== undefined ? { pcie: o.pcie } : {}),
        ...(typeof o.flr === 'boolean' ? { flr: o.flr } : {}),
      }),
  ],
  ['edu', (o) => new EduModel(o.dmaMask !== undefined ? { dmaMask: o.dmaMask } : {})],
  ['copy-engine', () => new CopyEngineModel()],
  ['serial', () => new SerialModel()],
  ['pcie-root-port', () => new PcieRootPortModel()],
]);
