import { errnoName, errnoOf, type Syscalls, strerror } from '../uapi/index.ts';

/*
 * The library's one error type. A failed system call becomes a VfioError
 * that says which call failed, on which fd, with which errno, and why in
 * words: the kernel's own reason when the Syscalls implementation can tell
 * (Syscalls.lastError, what the kernel's fail() recorded), else strerror.
 */
export interface VfioErrorInit {
  /** positive Linux errno (22) */
  readonly errno: number;
  /** the system call: 'ioctl', 'open', 'pread', 'mmap', ... */
  readonly syscall: string;
  /** the ioctl request by name ('VFIO_IOMMU_MAP_DMA'), when the call was an ioctl */
  readonly request?: string;
  /** the fd the call was made on */
  readonly fd?: number;
  /** how the argument reads in the message: '"0000:00:03.0"', 'iova 0x0 size 0x100000' */
  readonly arg?: string;
  /** the reason in words; strerror(errno) when absent */
  readonly reason?: string;
}

export class VfioError extends Error {
  override readonly name = 'VfioError';
  /** positive Linux errno */
  readonly errno: number;
  /** 'EINVAL' */
  readonly code: string;
  readonly syscall: string;
  readonly request: string | undefined;
  readonly fd: number | undefined;
  /** the kernel's reason (or strerror when the kernel gave none) */
  readonly reason: string;

  constructor(init: VfioErrorInit) {
    const code = errnoName(init.errno);
    const reason = init.reason ?? strerror(init.errno);
    const call = `${init.request ?? init.syscall}(${init.arg ?? ''})`;
    const on = init.fd === undefined ? '' : ` on fd ${init.fd}`;
    super(`${call}${on} failed: ${code} (${strerror(init.errno)}): ${reason}`);
    this.errno = init.errno;
    this.code = code;
    this.syscall = init.syscall;
    this.request = init.request;
    this.fd = init.fd;
    this.reason = reason;
  }
}

/** What a failing call is, for the error message. */
export interface CallSite {
  readonly syscall: string;
  readonly request?: string;
  readonly fd?: number;
  readonly arg?: string;
}

/**
 * The kernel's reason for the last failure, without the "REQUEST: " prefix
 * the kernel's messages carry (the error message names the request already).
 */
function kernelReason(sys: Syscalls, site: CallSite): string | undefined {
  const r = sys.lastError?.();
  if (r === undefined) return undefined;
  const prefix = `${site.request ?? site.syscall}: `;
  return r.startsWith(prefix) ? r.slice(prefix.length) : r;
}

/** The VfioError for a raw return value that is -errno. */
export function errorFor(sys: Syscalls, ret: number | bigint, site: CallSite): VfioError {
  const reason = kernelReason(sys, site);
  return new VfioError({ errno: errnoOf(ret), ...site, ...(reason !== undefined ? { reason } : {}) });
}

/** Return a non-negative syscall result; throw VfioError for -errno. */
export function check(sys: Syscalls, ret: number, site: CallSite): number {
  if (ret < 0) throw errorFor(sys, ret, site);
  return ret;
}

/** check() for calls returning an address (mmap). */
export function checkAddr(sys: Syscalls, ret: bigint, site: CallSite): bigint {
  if (errnoOf(ret) !== 0) throw errorFor(sys, ret, site);
  return ret;
}

export const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
