import { errnoName } from '../uapi/index.ts';
import { CharDevices } from './chrdev.ts';
import { VirtualClock } from './clock.ts';
import { enter, leave, maybeCurrent, runAs } from './current.ts';
import { KernelBug } from './err.ts';
import { ModuleLoader } from './module.ts';
import { ObjectCounter } from './objects.ts';
import { PhysicalMemory } from './physmem.ts';
import { KernelLog, type LogLevel } from './printk.ts';
import { Task } from './task.ts';
import { Tracer } from './trace.ts';
import { Vfs } from './vfs.ts';
import { type Kthread, type KthreadBody, runKthread } from './wait.ts';

/*
 * One simulated kernel: its version profile, architecture, log, clock,
 * modules, pseudo filesystems, character devices, physical memory, tasks
 * and tracer. Host (src/host) builds one per machine.
 */
export type KernelVersion = '4.1' | '6.12';
export type ArchName = 'x86_64' | 'ppc64';

export interface ArchInfo {
  readonly name: ArchName;
  readonly pageSize: number;
  readonly pageShift: number;
}

export class Kernel {
  readonly log = new KernelLog();
  readonly objects = new ObjectCounter();
  readonly clock = new VirtualClock();
  readonly modules = new ModuleLoader();
  readonly vfs = new Vfs();
  readonly chrdev = new CharDevices(this.vfs);
  readonly phys = new PhysicalMemory();
  readonly tracer = new Tracer();
  readonly tasks = new Map<number, Task>();
  /** kthreadd: the context of kernel threads, timers and host administration */
  readonly kthreadd: Task;
  private nextPid = 100;
  /** set once BUG() fired: the machine is stopped */
  halted: KernelBug | undefined;
  readonly oopses: unknown[] = [];
  /** record fail() reasons in the log (on by default; the CLI may hide them) */
  logReasons = true;

  constructor(
    readonly version: KernelVersion,
    readonly arch: ArchInfo,
  ) {
    this.kthreadd = new Task(2, 'kthreadd', null, new Set(), 0, 0);
    this.clock.runner = (fn) => runAs(this, this.kthreadd, fn);
    this.tracer.pidOf = () => 0;
    this.tracer.timeOf = () => this.clock.now;
    /* every run of physical pages is an object: pinned pages outlive their mapping */
    this.phys.onAlloc = () => this.objects.alloc('phys_pages');
    this.phys.onFree = () => this.objects.free('phys_pages');
  }

  get pageSize(): number {
    return this.arch.pageSize;
  }

  get pageShift(): number {
    return this.arch.pageShift;
  }

  allocPid(): number {
    return this.nextPid++;
  }

  printk(level: LogLevel, text: string): void {
    this.log.add(level, text, this.clock.now, 0);
  }

  logReason(errno: number, reason: string): void {
    const task = maybeCurrent();
    if (task !== undefined) task.lastError = reason;
    if (!this.logReasons) return;
    this.log.add('debug', `vfio-ts: -${errnoName(errno)}: ${reason}`, this.clock.now, 0, { errno, fn: '' });
  }

  /** BUG(): log, stop the machine, unwind the caller with KernelBug */
  bug(text: string): never {
    this.printk('emerg', `kernel BUG: ${text}`);
    const b = new KernelBug(text);
    this.halted = b;
    throw b;
  }

  /** run fn as kernel context (a kthread); used by host administration */
  inKernel<T>(fn: () => T): T {
    return runAs(this, this.kthreadd, fn);
  }

  runKthread<R>(name: string, body: KthreadBody<R>): Kthread<R> {
    return runKthread(name, body, this.clock, (fn) => runAs(this, this.kthreadd, fn));
  }

  /** fast syscall entry for Process */
  enter(task: Task): ReturnType<typeof enter> {
    task.lastError = undefined;
    return enter(this, task);
  }

  leave(prev: ReturnType<typeof enter>): void {
    leave(prev);
  }
}
