import type { KernelVersion } from './kernel.ts';

/*
 * Where the simulated kernel's own primitives (mm, VFS, processes) behave
 * differently in 4.1 and 6.12: one named row each; docs/profiles.md lists
 * them.
 */
export interface KernelProfile {
  /** do_mmap's file_mmap_ok (4.17+): a file mapping past MAX_LFS_FILESIZE is -EOVERFLOW */
  readonly mmapFileSizeCheck: boolean;
  /** MAP_SHARED_VALIDATE (4.15+) is a mapping type; 4.1 refuses it with -EINVAL */
  readonly mapSharedValidate: boolean;
  /** RLIMIT_MEMLOCK a new process gets (64 KiB until 5.16, 8 MiB since) */
  readonly defaultMemlock: bigint;
}

const V4_1: KernelProfile = {
  mmapFileSizeCheck: false,
  mapSharedValidate: false,
  defaultMemlock: 64n * 1024n,
};

const V6_12: KernelProfile = {
  mmapFileSizeCheck: true,
  mapSharedValidate: true,
  defaultMemlock: 8n * 1024n * 1024n,
};

export function kernelProfile(v: KernelVersion): KernelProfile {
  return v === '4.1' ? V4_1 : V6_12;
}
