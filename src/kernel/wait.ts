import type { Timer, VirtualClock } from './clock.ts';

/*
 * Wait queues and kernel threads. A kernel path that sleeps
 * (wait_event in vfio_del_group_dev) is written as a generator that yields a
 * WaitRequest; the kthread runner parks it on the queue and resumes it from
 * wake_up(), or from the clock when its timeout expires, exactly where the
 * kernel would have continued.
 */
export interface WaitRequest {
  readonly wq: WaitQueueHead;
  readonly cond: () => boolean;
  /** undefined: wait forever */
  readonly timeoutNs?: number;
}

/** the value a wait resumes with: true = condition met, false = timed out */
export type KthreadBody<R> = Generator<WaitRequest, R, boolean>;

interface Waiter {
  cond: () => boolean;
  resume: (met: boolean) => void;
}

export class WaitQueueHead {
  private waiters: Waiter[] = [];
  constructor(readonly name: string) {}

  add(w: Waiter): void {
    this.waiters.push(w);
  }
  remove(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
  }
  get length(): number {
    return this.waiters.length;
  }

  /** wake_up: every sleeper whose condition now holds resumes, in order */
  wakeUp(): void {
    for (const w of [...this.waiters]) {
      if (this.waiters.includes(w) && w.cond()) {
        this.remove(w);
        w.resume(true);
      }
    }
  }
}

export type KthreadState = 'running' | 'sleeping' | 'done';

export class Kthread<R> {
  state: KthreadState = 'running';
  result: R | undefined;
  private readonly onDone: ((r: R) => void)[] = [];
  constructor(readonly name: string) {}

  whenDone(fn: (r: R) => void): void {
    if (this.state === 'done') fn(this.result as R);
    else this.onDone.push(fn);
  }

  /** @internal */
  finish(r: R): void {
    this.state = 'done';
    this.result = r;
    for (const fn of this.onDone.splice(0)) fn(r);
  }
}

/**
 * Drive a generator until it finishes or sleeps. `inContext` wraps every
 * step so that it runs as the kthread's task, whoever woke it.
 */
export function runKthread<R>(
  name: string,
  body: KthreadBody<R>,
  clock: VirtualClock,
  inContext: (fn: () => void) => void,
): Kthread<R> {
  const kt = new Kthread<R>(name);
  const step = (value: boolean): void => {
    inContext(() => {
      for (;;) {
        const r = body.next(value);
        if (r.done === true) {
          kt.finish(r.value);
          return;
        }
        const req = r.value;
        if (req.cond()) {
          value = true;
          continue;
        }
        kt.state = 'sleeping';
        let timer: Timer | undefined;
        const waiter: Waiter = {
          cond: req.cond,
          resume: (met) => {
            if (timer !== undefined) clock.cancel(timer);
            kt.state = 'running';
            step(met);
          },
        };
        req.wq.add(waiter);
        if (req.timeoutNs !== undefined) {
          timer = clock.schedule(req.timeoutNs, () => {
            req.wq.remove(waiter);
            kt.state = 'running';
            step(req.cond());
          });
        }
        return;
      }
    });
  };
  step(true);
  return kt;
}
