import type { Kernel } from './kernel.ts';
import type { Task } from './task.ts';

/*
 * The kernel's `current`: the task on whose behalf kernel code runs. The
 * model is single-threaded, so one slot is enough; syscall entry, kthreads,
 * timers and host administration set it and restore the previous value on
 * exit, which makes nesting (a device interrupt during an ioctl) safe.
 */
let curKernel: Kernel | undefined;
let curTask: Task | undefined;

export function current(): Task {
  if (curTask === undefined) throw new Error('current used outside any task context');
  return curTask;
}

export function currentKernel(): Kernel {
  if (curKernel === undefined) throw new Error('kernel code ran outside any kernel context');
  return curKernel;
}

export function maybeCurrentKernel(): Kernel | undefined {
  return curKernel;
}

/** current, or undefined outside any task context (for code that may run anywhere) */
export function maybeCurrent(): Task | undefined {
  return curTask;
}

export function runAs<T>(kernel: Kernel, task: Task, fn: () => T): T {
  const pk = curKernel;
  const pt = curTask;
  curKernel = kernel;
  curTask = task;
  try {
    return fn();
  } finally {
    curKernel = pk;
    curTask = pt;
  }
}

/* Fast-path entry used by the syscall layer: returns the previous context. */
export function enter(kernel: Kernel, task: Task): [Kernel | undefined, Task | undefined] {
  const prev: [Kernel | undefined, Task | undefined] = [curKernel, curTask];
  curKernel = kernel;
  curTask = task;
  return prev;
}

export function leave(prev: [Kernel | undefined, Task | undefined]): void {
  curKernel = prev[0];
  curTask = prev[1];
}
