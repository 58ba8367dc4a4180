import { ENOENT } from '../uapi/index.ts';
import { currentKernel } from './current.ts';
import type { Vma } from './mm.ts';
import { type Module, modulePut, tryModuleGet } from './module.ts';

/*
 * struct file, struct inode and struct file_operations. Drivers implement
 * FileOperations exactly where the kernel's would: vfio_fops,
 * vfio_group_fops, vfio_device_fops are objects of this type.
 */
export const FMODE_READ = 0x1;
export const FMODE_WRITE = 0x2;
export const FMODE_LSEEK = 0x4;
export const FMODE_PREAD = 0x8;
export const FMODE_PWRITE = 0x10;

export interface Inode {
  readonly kind: 'chr' | 'anon' | 'pseudo';
  /** i_rdev for character devices */
  readonly major: number;
  readonly minor: number;
  readonly mode: number;
  i_private: unknown;
}

export interface FilePos {
  pos: bigint;
}

export interface PollTable {
  /** the caller wants a wake-up on this queue (poll_wait) */
  readonly waits: unknown[];
}

export interface FileOperations {
  readonly owner?: Module | undefined;
  readonly name: string;
  open?(inode: Inode, file: File): number;
  release?(inode: Inode, file: File): number;
  read?(file: File, buf: number, count: number, ppos: FilePos): number;
  write?(file: File, buf: number, count: number, ppos: FilePos): number;
  unlocked_ioctl?(file: File, cmd: number, arg: bigint): number;
  mmap?(file: File, vma: Vma): number;
  poll?(file: File): number;
  llseek?(file: File, offset: bigint, whence: number): bigint;
}

let nextFileId = 1;

export class File {
  f_count = 1;
  f_pos = 0n;
  private_data: unknown;
  readonly id = nextFileId++;
  constructor(
    public f_op: FileOperations,
    readonly f_inode: Inode,
    public f_mode: number,
    public f_flags: number,
    /** the path it was opened by, or "anon_inode:[name]" */
    readonly path: string,
  ) {}
}

/** fput: drop a file reference; the last one runs ->release and frees it */
export function fput(file: File): void {
  if (--file.f_count > 0) return;
  file.f_op.release?.(file.f_inode, file);
  modulePut(file.f_op.owner);
  currentKernel().objects.free('file');
}

export function getFile(file: File): File {
  file.f_count++;
  return file;
}

/**
 * anon_inode_getfile: a file on the shared anonymous inode. Like the
 * kernel's, it pins fops->owner (fput drops that reference), and fails with
 * -ENOENT when the module is going away.
 */
export function anonInodeGetfile(
  name: string,
  fops: FileOperations,
  priv: unknown,
  flags: number,
): File | number {
  if (!tryModuleGet(fops.owner)) return -ENOENT;
  const inode: Inode = { kind: 'anon', major: 0, minor: 0, mode: 0o600, i_private: undefined };
  const acc = flags & 3;
  const fmode = (acc === 0 || acc === 2 ? FMODE_READ : 0) | (acc === 1 || acc === 2 ? FMODE_WRITE : 0);
  const f = new File(fops, inode, fmode, flags, `anon_inode:${name}`);
  f.private_data = priv;
  currentKernel().objects.alloc('file');
  return f;
}
