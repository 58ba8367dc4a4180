// The syscall surface userspace (src/lib, examples) programs against. The
// kernel's Process implements it; every call returns like the raw syscall:
// >= 0 on success, -errno on failure (bigint for address-returning calls).
import { MAX_ERRNO } from './errno.ts';

/** struct pollfd; revents is filled in by poll() (callers may leave it out) */
export interface PollFd {
  fd: number;
  events: number;
  revents?: number;
}

export interface StatResult {
  mode: number;
  rdevMajor: number;
  rdevMinor: number;
  size: bigint;
}

/** The process touching its own memory; throws SegmentationFault on unmapped or protected addresses. */
export interface UserMemoryView {
  read(addr: bigint, len: number): Uint8Array;
  write(addr: bigint, bytes: Uint8Array): void;
}

export interface Syscalls {
  readonly pid: number;
  readonly pageSize: number;
  readonly mem: UserMemoryView;
  open(path: string, flags: number): number;
  close(fd: number): number;
  dup(fd: number): number;
  ioctl(fd: number, request: number, arg?: number | bigint): number;
  read(fd: number, buf: bigint, count: number): number;
  write(fd: number, buf: bigint, count: number): number;
  pread(fd: number, buf: bigint, count: number, offset: bigint): number;
  pwrite(fd: number, buf: bigint, count: number, offset: bigint): number;
  lseek(fd: number, offset: bigint, whence: number): bigint;
  mmap(
    addr: bigint,
    length: number | bigint,
    prot: number,
    flags: number,
    fd: number,
    offset: bigint,
  ): bigint;
  munmap(addr: bigint, length: number | bigint): number;
  mprotect(addr: bigint, length: number | bigint, prot: number): number;
  eventfd(initval: number, flags: number): number;
  poll(fds: PollFd[], timeoutMs: number): number;
  stat(path: string): StatResult | number;
  getrlimit(resource: number): { cur: bigint; max: bigint } | number;
  setrlimit(resource: number, cur: bigint, max: bigint): number;
  /** readlink(2) of a sysfs/procfs link: the target (relative, as sysfs shows it) or -errno */
  readlink?(path: string): string | number;
  /**
   * The kernel's reason in words for the calling process's last failed
   * syscall (what fail() recorded), undefined when none was recorded.
   */
  lastError?(): string | undefined;
}

const U64_ERR_MIN = (1n << 64n) - BigInt(MAX_ERRNO);

/**
 * IS_ERR_VALUE: -4095..-1. For bigint also the same values seen as u64
 * (0xffff_ffff_ffff_f001..0xffff_ffff_ffff_ffff), as a raw register would hold them.
 */
export function isErr(ret: number | bigint): boolean {
  if (typeof ret === 'bigint') return (ret < 0n && ret >= -BigInt(MAX_ERRNO)) || ret >= U64_ERR_MIN;
  return ret < 0 && ret >= -MAX_ERRNO;
}

/** The positive errno carried by a syscall return, 0 when it is not an error. */
export function errnoOf(ret: number | bigint): number {
  if (!isErr(ret)) return 0;
  if (typeof ret === 'number') return -ret;
  return ret < 0n ? Number(-ret) : Number((1n << 64n) - ret);
}

/** What UserMemoryView (and the kernel's fault path) throws for a bad user access: SIGSEGV. */
export class SegmentationFault extends Error {
  readonly addr: bigint;
  readonly access: 'read' | 'write';
  constructor(addr: bigint, access: 'read' | 'write', reason = 'unmapped') {
    super(`segmentation fault: ${access} at 0x${addr.toString(16)} (${reason})`);
    this.name = 'SegmentationFault';
    this.addr = addr;
    this.access = access;
  }
}
