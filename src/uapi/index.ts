// src/uapi: the Linux ABI as seen by both sides (errno, ioctl numbers,
// linux/vfio.h constants and struct layouts, the syscall surface). Imports nothing
// outside this folder.
export * from './capchain.ts';
export * from './errno.ts';
export * from './ioctl.ts';
export * from './linux.ts';
export * from './struct.ts';
export * from './syscalls.ts';
export * from './vfio.ts';
export * from './vfio_structs.ts';
