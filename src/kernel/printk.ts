import { maybeCurrentKernel } from './current.ts';

/*
 * The kernel log (dmesg). Error sites record why they failed here, which is
 * where the userspace library and the CLI find "the reason in words"; the
 * raw syscall result stays exactly what Linux returns.
 */
export type LogLevel = 'emerg' | 'alert' | 'crit' | 'err' | 'warn' | 'notice' | 'info' | 'debug';

export interface LogRecord {
  readonly seq: number;
  readonly timeNs: number;
  readonly level: LogLevel;
  readonly text: string;
  /** pid of `current` when logged; 0 for kernel context */
  readonly pid: number;
  /** true for records written by fail(): a reason attached to an errno */
  readonly reason?: { errno: number; fn: string };
}

export class KernelLog {
  private records: LogRecord[] = [];
  private seq = 0;
  /** dmesg keeps a bounded ring, as the kernel's log buffer does */
  constructor(private readonly capacity = 8192) {}

  add(
    level: LogLevel,
    text: string,
    timeNs: number,
    pid: number,
    reason?: { errno: number; fn: string },
  ): void {
    const rec: LogRecord =
      reason === undefined
        ? { seq: this.seq++, timeNs, level, text, pid }
        : { seq: this.seq++, timeNs, level, text, pid, reason };
    this.records.push(rec);
    /* trim in batches: dropping one record per add would move the whole ring every time */
    if (this.records.length > 2 * this.capacity) this.records = this.records.slice(-this.capacity);
  }

  all(): readonly LogRecord[] {
    return this.records.length > this.capacity ? this.records.slice(-this.capacity) : this.records;
  }

  get lastSeq(): number {
    return this.seq;
  }

  since(seq: number): LogRecord[] {
    return this.all().filter((r) => r.seq >= seq);
  }

  /** dmesg's text: "[    1.000000] message" */
  lines(): string[] {
    return this.all().map((r) => `[${formatTime(r.timeNs)}] ${r.text}`);
  }
}

function formatTime(ns: number): string {
  const s = Math.floor(ns / 1e9);
  const us = Math.floor((ns % 1e9) / 1e3);
  return `${String(s).padStart(5, ' ')}.${String(us).padStart(6, '0')}`;
}

/* pr_*() as in the kernel: they log to the current kernel's ring */
export function pr_err(text: string): void {
  maybeCurrentKernel()?.printk('err', text);
}
export function pr_warn(text: string): void {
  maybeCurrentKernel()?.printk('warn', text);
}
export function pr_notice(text: string): void {
  maybeCurrentKernel()?.printk('notice', text);
}
export function pr_info(text: string): void {
  maybeCurrentKernel()?.printk('info', text);
}
export function pr_debug(text: string): void {
  maybeCurrentKernel()?.printk('debug', text);
}
/** WARN(cond, ...): logs a warning with the kernel's marker, returns cond */
export function WARN(cond: boolean, text: string): boolean {
  if (cond) maybeCurrentKernel()?.printk('warn', `WARNING: ${text}`);
  return cond;
}
export function WARN_ON(cond: boolean, what = 'WARN_ON'): boolean {
  return WARN(cond, what);
}
