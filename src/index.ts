/*
 * vfio-ts: the package root. The raw API is Host + Process (open, ioctl,
 * mmap... returning what Linux returns) and every Linux constant under its
 * Linux name; the typed userspace library lives in ./lib.
 */

export { type AddPciDeviceOptions, Host, type HostOptions } from './host/index.ts';
export { KernelBug, KernelOops, Process, type SpawnOptions } from './kernel/index.ts';
export * from './lib/index.ts';
export * from './uapi/index.ts';
