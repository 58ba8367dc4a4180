/*
 * Simulated kernel primitives: the public header of src/kernel for the
 * subsystems above it (pci, iommu, vfio, devices, host).
 */
export * from './chrdev.ts';
export { NSEC_PER_MSEC, NSEC_PER_SEC, type Timer, VirtualClock } from './clock.ts';
export { current, currentKernel, maybeCurrentKernel, runAs } from './current.ts';
export * from './device.ts';
export * from './err.ts';
export * from './eventfd.ts';
export { FdTable } from './fdtable.ts';
export * from './fs.ts';
export { Idr } from './idr.ts';
export { type ArchInfo, type ArchName, Kernel, type KernelVersion } from './kernel.ts';
export { Atomic, Kref } from './kref.ts';
export { Mutex, RwSem } from './locking.ts';
export * from './mm.ts';
export * from './module.ts';
export * from './notifier.ts';
export { ObjectCounter } from './objects.ts';
export { PhysicalMemory, PhysObject } from './physmem.ts';
export * from './printk.ts';
export { Process, type SpawnOptions } from './process.ts';
export { type KernelProfile, kernelProfile } from './profile.ts';
export { capable, type Rlimit, Task } from './task.ts';
export { formatFunctionGraph, formatRet, type TraceEvent, Tracer, traced } from './trace.ts';
export * from './uaccess.ts';
export { type AttrNode, type DevNode, type DirNode, type LinkNode, Vfs, type VfsNode } from './vfs.ts';
export { Kthread, type KthreadBody, WaitQueueHead, type WaitRequest } from './wait.ts';
