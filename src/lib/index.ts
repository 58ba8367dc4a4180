/*
 * vfio-ts's userspace library: VFIO containers, groups and devices as
 * typed objects over the raw system calls (the Syscalls surface a Process
 * implements), in the manner of rust-vmm's vfio-ioctls. Imports uapi only.
 */
export { getLe, putLe, ScalarAccess, type Width } from './bytes.ts';
export * from './caps.ts';
export * from './container.ts';
export * from './device.ts';
export * from './dma.ts';
export { type CallSite, check, checkAddr, errorFor, VfioError, type VfioErrorInit } from './error.ts';
export * from './group.ts';
export * from './iova.ts';
export * from './irq.ts';
export * from './pci.ts';
export * from './region.ts';
