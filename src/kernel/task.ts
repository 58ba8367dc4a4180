import { RLIM_INFINITY, RLIMIT_MEMLOCK, RLIMIT_NOFILE } from '../uapi/index.ts';
import { FdTable } from './fdtable.ts';
import type { MmStruct } from './mm.ts';

/*
 * task_struct, reduced to what VFIO touches: the address space (mm, with
 * locked_vm), the fd table, resource limits and capabilities.
 */
export interface Rlimit {
  cur: bigint;
  max: bigint;
}

export class Task {
  readonly files = new FdTable();
  readonly rlimits = new Map<number, Rlimit>();
  exited = false;
  /** the reason fail() gave during this task's current (or last) syscall: what Syscalls.lastError() reports */
  lastError: string | undefined;
  constructor(
    readonly pid: number,
    readonly comm: string,
    /** null for kernel threads, and for an exiting task after exit_mm */
    public mm: MmStruct | null,
    readonly capabilities: Set<number>,
    readonly uid: number,
    readonly gid: number,
  ) {
    this.files.nofile = () => Number(this.rlimit(RLIMIT_NOFILE).cur);
  }

  rlimit(resource: number): Rlimit {
    return this.rlimits.get(resource) ?? { cur: RLIM_INFINITY, max: RLIM_INFINITY };
  }

  /** rlimit(RLIMIT_MEMLOCK) in bytes, as the kernel's rlimit() helper */
  memlockLimit(): bigint {
    return this.rlimit(RLIMIT_MEMLOCK).cur;
  }
}

/** capable(cap) for the current task */
export function capable(task: Task, cap: number): boolean {
  return task.capabilities.has(cap);
}
