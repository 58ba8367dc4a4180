/* Blocking notifier chains (include/linux/notifier.h). */
export const NOTIFY_DONE = 0x0000;
export const NOTIFY_OK = 0x0001;
export const NOTIFY_STOP_MASK = 0x8000;
export const NOTIFY_BAD = NOTIFY_STOP_MASK | 0x0002;

export interface NotifierBlock<D> {
  notifier_call: (nb: NotifierBlock<D>, action: number, data: D) => number;
  priority?: number;
}

export class BlockingNotifierHead<D> {
  private chain: NotifierBlock<D>[] = [];

  register(nb: NotifierBlock<D>): number {
    if (this.chain.includes(nb)) return 0;
    const prio = nb.priority ?? 0;
    const at = this.chain.findIndex((n) => (n.priority ?? 0) < prio);
    if (at < 0) this.chain.push(nb);
    else this.chain.splice(at, 0, nb);
    return 0;
  }

  unregister(nb: NotifierBlock<D>): number {
    const i = this.chain.indexOf(nb);
    if (i < 0) return -2; /* -ENOENT, as notifier_chain_unregister */
    this.chain.splice(i, 1);
    return 0;
  }

  /** returns the last notifier's result, stopping on NOTIFY_STOP_MASK */
  call(action: number, data: D): number {
    let ret = NOTIFY_DONE;
    for (const nb of [...this.chain]) {
      ret = nb.notifier_call(nb, action, data);
      if (ret & NOTIFY_STOP_MASK) break;
    }
    return ret;
  }

  get length(): number {
    return this.chain.length;
  }
}
