import { EAGAIN, EBADF, EFAULT, EINTR, EINVAL, POLLERR, POLLIN, POLLOUT } from '../uapi/index.ts';
import { current, currentKernel } from './current.ts';
import { fail } from './err.ts';
import type { File, FileOperations, FilePos } from './fs.ts';
import { Kref } from './kref.ts';

/*
 * eventfd: the object VFIO signals interrupts through. Kernel code holds an
 * eventfd_ctx (eventfd_ctx_fdget) and calls eventfdSignal(); userspace
 * reads the counter or polls the fd. Wake callbacks stand for the custom
 * wait-queue entries virqfd installs to learn that userspace wrote the fd.
 */
export const EFD_SEMAPHORE = 1;
const ULLONG_MAX = 0xffff_ffff_ffff_ffffn;

export class EventfdCtx {
  readonly kref = new Kref();
  count: bigint;
  readonly wakeCallbacks = new Set<(ctx: EventfdCtx) => void>();
  constructor(
    initval: bigint,
    readonly semaphore: boolean,
  ) {
    this.count = initval;
  }
}

export function eventfdSignal(ctx: EventfdCtx, n = 1n): bigint {
  if (ULLONG_MAX - ctx.count < n) n = ULLONG_MAX - ctx.count;
  ctx.count += n;
  if (n > 0n) for (const cb of [...ctx.wakeCallbacks]) cb(ctx);
  return n;
}

export function eventfdCtxGet(ctx: EventfdCtx): EventfdCtx {
  ctx.kref.get();
  return ctx;
}

export function eventfdCtxPut(ctx: EventfdCtx): void {
  ctx.kref.put(() => currentKernel().objects.free('eventfd_ctx'));
}

export function isEventfdFile(f: File): boolean {
  return f.f_op === eventfdFops;
}

/** eventfd_ctx_fdget: -EBADF for a closed fd, -EINVAL for a file that is not an eventfd */
export function eventfdCtxFdget(fd: number): EventfdCtx | number {
  const f = fd < 0 ? undefined : current().files.get(fd);
  if (f === undefined) return fail(EBADF, `eventfd_ctx_fdget: fd ${fd} is not open`);
  if (!isEventfdFile(f)) return fail(EINVAL, `eventfd_ctx_fdget: fd ${fd} is not an eventfd`);
  return eventfdCtxGet(f.private_data as EventfdCtx);
}

function ctxOf(f: File): EventfdCtx {
  return f.private_data as EventfdCtx;
}

export const eventfdFops: FileOperations = {
  name: 'eventfd_fops',
  release(_inode, file) {
    eventfdCtxPut(ctxOf(file));
    return 0;
  },
  read(file: File, buf: number, count: number, _ppos: FilePos): number {
    const ctx = ctxOf(file);
    if (count < 8) return -EINVAL;
    if (ctx.count === 0n) {
      if (file.f_flags & 0o4000) return -EAGAIN;
      /* sleep: the virtual clock runs pending device work until we are signalled */
      const k = currentKernel();
      if (!k.clock.runUntil(() => ctx.count > 0n, Number.POSITIVE_INFINITY))
        return fail(EINTR, 'eventfd read would block forever: nothing pending on the virtual clock');
    }
    /* eventfd_ctx_do_read consumes the count before put_user: a bad buffer loses it */
    const v = ctx.semaphore ? 1n : ctx.count;
    ctx.count -= v;
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, v, true);
    const mm = current().mm;
    if (mm === null || mm.copyTo(buf, out, 0, 8) !== 0) return -EFAULT;
    return 8;
  },
  write(file: File, buf: number, count: number): number {
    const ctx = ctxOf(file);
    if (count < 8) return -EINVAL;
    const inb = new Uint8Array(8);
    const mm = current().mm;
    if (mm === null || mm.copyFrom(buf, inb, 0, 8) !== 0) return -EFAULT;
    const v = new DataView(inb.buffer).getBigUint64(0, true);
    if (v === ULLONG_MAX) return -EINVAL;
    if (ULLONG_MAX - ctx.count <= v) {
      if (file.f_flags & 0o4000) return -EAGAIN;
      return fail(EINTR, 'eventfd write would block forever');
    }
    if (v > 0n) eventfdSignal(ctx, v);
    return 8;
  },
  poll(file: File): number {
    const ctx = ctxOf(file);
    let mask = 0;
    if (ctx.count > 0n) mask |= POLLIN;
    if (ctx.count === ULLONG_MAX) mask |= POLLERR;
    if (ULLONG_MAX - 1n > ctx.count) mask |= POLLOUT;
    return mask;
  },
};
