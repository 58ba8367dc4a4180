/* The machine: the public header of src/host. */
export {
  bootHost,
  type DeviceDescription,
  type HostDescription,
  HostDescriptionError,
  hostOptionsOf,
  loadHostDescription,
  parseHostDescription,
  parseSize,
  validateHostDescription,
} from './description.ts';
export { type AddPciDeviceOptions, Host, type HostOptions } from './host.ts';
export { hostSchema, type RootSchema, type SchemaNode } from './host_schema.ts';
export { type DeviceModelFactory, deviceModels } from './models.ts';
