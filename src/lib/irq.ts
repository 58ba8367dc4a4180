import {
  EAGAIN,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  POLLIN,
  type Syscalls,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
} from '../uapi/index.ts';
import { getLe } from './bytes.ts';
import { check, VfioError, type VfioErrorInit } from './error.ts';
import { Scratch } from './scratch.ts';

/** VFIO_DEVICE_GET_IRQ_INFO, flags decoded. */
export interface IrqInfo {
  readonly index: number;
  readonly flags: number;
  /** vectors (0: the device has no interrupt of this kind) */
  readonly count: number;
  readonly eventfd: boolean;
  readonly maskable: boolean;
  readonly automasked: boolean;
  readonly noresize: boolean;
}

export function irqFlags(flags: number): Pick<IrqInfo, 'eventfd' | 'maskable' | 'automasked' | 'noresize'> {
  return {
    eventfd: (flags & VFIO_IRQ_INFO_EVENTFD) !== 0,
    maskable: (flags & VFIO_IRQ_INFO_MASKABLE) !== 0,
    automasked: (flags & VFIO_IRQ_INFO_AUTOMASKED) !== 0,
    noresize: (flags & VFIO_IRQ_INFO_NORESIZE) !== 0,
  };
}

const SET_FLAG_NAMES: readonly [number, string][] = [
  [VFIO_IRQ_SET_DATA_NONE, 'DATA_NONE'],
  [VFIO_IRQ_SET_DATA_BOOL, 'DATA_BOOL'],
  [VFIO_IRQ_SET_DATA_EVENTFD, 'DATA_EVENTFD'],
  [VFIO_IRQ_SET_ACTION_MASK, 'ACTION_MASK'],
  [VFIO_IRQ_SET_ACTION_UNMASK, 'ACTION_UNMASK'],
  [VFIO_IRQ_SET_ACTION_TRIGGER, 'ACTION_TRIGGER'],
];

/** 0x24 -> 'DATA_EVENTFD|ACTION_TRIGGER' (unknown bits in hex). */
export function irqSetFlagNames(flags: number): string {
  const names = SET_FLAG_NAMES.filter(([bit]) => flags & bit).map(([, n]) => n);
  const rest = flags & ~SET_FLAG_NAMES.reduce((m, [bit]) => m | bit, 0);
  if (rest !== 0) names.push(`0x${rest.toString(16)}`);
  return names.join('|') || '0';
}

/** SET_IRQS enabled fewer MSI/MSI-X vectors than asked: the kernel returned how many it could. */
export class VfioVectorsError extends VfioError {
  constructor(
    init: VfioErrorInit,
    readonly requested: number,
    /** the positive count SET_IRQS returned */
    readonly granted: number,
  ) {
    super(init);
  }
}

/**
 * One interrupt vector delivered on an eventfd (non-blocking, close-on-exec):
 * wait for it with poll, consume it with read. Owns the eventfd.
 */
export class Interrupt implements Disposable {
  private readonly scratch: Scratch;
  private closed = false;

  private constructor(
    private readonly sys: Syscalls,
    readonly fd: number,
    /** the VFIO IRQ index (VFIO_PCI_MSI_IRQ_INDEX, ...) */
    readonly index: number,
    /** the vector within the index */
    readonly vector: number,
  ) {
    this.scratch = Scratch.acquire(sys);
  }

  /** A fresh eventfd for vector `vector` of `index`. */
  static create(sys: Syscalls, index: number, vector: number): Interrupt {
    const fd = check(sys, sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), {
      syscall: 'eventfd2',
      arg: '0, EFD_NONBLOCK|EFD_CLOEXEC',
    });
    return new Interrupt(sys, fd, index, vector);
  }

  /**
   * poll() the eventfd for up to timeoutMs of the host's (virtual) time:
   * true once the interrupt fired. Device work runs while the process waits.
   */
  wait(timeoutMs: number): boolean {
    this.assertOpen('wait');
    const fds = [{ fd: this.fd, events: POLLIN, revents: 0 }];
    const n = check(this.sys, this.sys.poll(fds, timeoutMs), {
      syscall: 'poll',
      fd: this.fd,
      arg: `${timeoutMs}`,
    });
    return n > 0 && ((fds[0]?.revents ?? 0) & POLLIN) !== 0;
  }

  /** read() the eventfd: how many times it fired since the last read (0 when none). */
  count(): bigint {
    this.assertOpen('count');
    const addr = this.scratch.buf(8);
    const n = this.sys.read(this.fd, addr, 8);
    if (n === -EAGAIN) return 0n;
    check(this.sys, n, { syscall: 'read', fd: this.fd, arg: `${this.fd}, buf, 8` });
    return getLe(this.sys.mem.read(addr, 8), 8);
  }

  /** wait(timeoutMs), then count(): 0 when it did not fire in time. */
  next(timeoutMs: number): bigint {
    return this.wait(timeoutMs) ? this.count() : 0n;
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new Error(`interrupt ${what}: eventfd ${this.fd} was closed by this library`);
  }

  /** Close the eventfd (idempotent); the kernel keeps its own reference while the vector is set. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.scratch.release();
    check(this.sys, this.sys.close(this.fd), { syscall: 'close', arg: String(this.fd) });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
