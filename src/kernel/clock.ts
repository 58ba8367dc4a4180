/*
 * The host's virtual clock. Nothing in vfio-ts uses wall-clock time: device
 * work and kernel timeouts are timers on this clock, which advances only
 * while a process waits (poll, a blocking read) or a test advances it, so
 * every run is deterministic.
 */
export interface Timer {
  readonly deadline: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export const NSEC_PER_MSEC = 1_000_000;
export const NSEC_PER_SEC = 1_000_000_000;

export class VirtualClock {
  now = 0;
  private timers: Timer[] = [];
  private seq = 0;
  /** runs a timer callback in kernel context; set by the Kernel */
  runner: (fn: () => void) => void = (fn) => fn();

  schedule(delayNs: number, fn: () => void): Timer {
    const t: Timer = { deadline: this.now + Math.max(0, delayNs), seq: this.seq++, fn, cancelled: false };
    /* few timers are ever pending: keep them sorted, insert by deadline then seq */
    let i = this.timers.length;
    while (i > 0) {
      const prev = this.timers[i - 1];
      if (prev === undefined || prev.deadline <= t.deadline) break;
      i--;
    }
    this.timers.splice(i, 0, t);
    return t;
  }

  cancel(t: Timer): void {
    t.cancelled = true;
    const i = this.timers.indexOf(t);
    if (i >= 0) this.timers.splice(i, 1);
  }

  pending(): number {
    return this.timers.length;
  }

  nextDeadline(): number | undefined {
    return this.timers[0]?.deadline;
  }

  /** Run every timer due at or before now + ns, then set now = now + ns. */
  advance(ns: number): void {
    this.runUntil(() => false, ns);
  }

  /**
   * Advance until cond() holds or maxNs elapsed (Infinity: until no timer is
   * left). Returns whether cond() held. This is how a waiting task lets time
   * pass: the clock jumps from one timer to the next.
   */
  runUntil(cond: () => boolean, maxNs: number): boolean {
    const end = this.now + maxNs;
    for (;;) {
      if (cond()) return true;
      const t = this.timers[0];
      if (t === undefined || t.deadline > end) break;
      this.timers.shift();
      if (t.deadline > this.now) this.now = t.deadline;
      this.runner(t.fn);
    }
    if (cond()) return true;
    if (Number.isFinite(end) && end > this.now) this.now = end;
    return false;
  }
}
