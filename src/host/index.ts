/* The machine: the public header of src/host. */
export { type AddPciDeviceOptions, Host, type HostOptions } from './host.ts';
export { type DeviceModelFactory, deviceModels } from './models.ts';
