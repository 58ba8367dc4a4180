import { errnoName } from '../uapi/index.ts';
import { maybeCurrentKernel } from './current.ts';

/*
 * The ERR_PTR idiom: kernel functions that return an object return
 * `T | number`, the number being a negative errno.
 */
export type ErrPtr<T> = T | number;

export function IS_ERR<T>(p: ErrPtr<T>): p is number {
  return typeof p === 'number';
}

export function PTR_ERR(p: number): number {
  return p;
}

/**
 * Returns -errno as the kernel does and records why in the kernel log, so
 * the userspace library can say what went wrong. `reason` should read like
 * a kernel comment: "argsz < minsz", "group is not viable".
 */
export function fail(errno: number, reason: string): number {
  const k = maybeCurrentKernel();
  if (k !== undefined) k.logReason(errno, reason);
  return -errno;
}

/** The kernel's BUG()/BUG_ON(): the machine stops. */
export class KernelBug extends Error {
  override readonly name = 'KernelBug';
}

/** A JavaScript exception escaped kernel code: a bug in vfio-ts, never an errno. */
export class KernelOops extends Error {
  override readonly name = 'KernelOops';
  constructor(
    readonly syscall: string,
    override readonly cause: unknown,
  ) {
    super(`kernel oops in ${syscall}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

export function errStr(ret: number | bigint): string {
  const n = Number(ret);
  return n < 0 ? `-${errnoName(-n)}` : String(ret);
}
