import { currentKernel, type EventfdCtx, eventfdCtxFdget, eventfdCtxPut, fail } from '../../kernel/index.ts';
import { EBUSY } from '../../uapi/index.ts';

/*
 * virqfd (drivers/vfio/virqfd.c): an eventfd the user signals to make the
 * kernel act, the mirror image of an interrupt eventfd. vfio-pci uses one
 * to unmask INTx: the user (or KVM's resample irqfd) writes the eventfd,
 * the handler unmasks, and when the device is still asserting the thread
 * re-sends the interrupt. The work runs as soon as the eventfd is written.
 */
export interface Virqfd {
  readonly eventfd: EventfdCtx;
  readonly wake: (ctx: EventfdCtx) => void;
}

/** where a virqfd pointer lives (struct virqfd **pvirqfd) */
export interface VirqfdSlot {
  get(): Virqfd | undefined;
  set(v: Virqfd | undefined): void;
}

export type VirqfdHandler = () => number;
export type VirqfdThread = () => void;

export function vfioVirqfdEnable(
  handler: VirqfdHandler | undefined,
  thread: VirqfdThread | undefined,
  slot: VirqfdSlot,
  fd: number,
): number {
  const ctx = eventfdCtxFdget(fd);
  if (typeof ctx === 'number') return ctx;
  if (slot.get() !== undefined) {
    eventfdCtxPut(ctx);
    return fail(EBUSY, 'virqfd: an unmask eventfd is already attached');
  }
  const run = (): void => {
    if ((handler === undefined || handler() !== 0) && thread !== undefined) thread();
  };
  const virqfd: Virqfd = { eventfd: ctx, wake: () => run() };
  currentKernel().objects.alloc('virqfd');
  slot.set(virqfd);
  ctx.wakeCallbacks.add(virqfd.wake);
  /* an event pending before we registered counts as if we had seen it */
  if (ctx.count > 0n) run();
  return 0;
}

export function vfioVirqfdDisable(slot: VirqfdSlot): void {
  const v = slot.get();
  if (v === undefined) return;
  slot.set(undefined);
  v.eventfd.wakeCallbacks.delete(v.wake);
  eventfdCtxPut(v.eventfd);
  currentKernel().objects.free('virqfd');
}
