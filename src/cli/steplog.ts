import {
  describeChanges,
  diffSnapshots,
  type KernelTrace,
  type Snapshot,
  type SnapshotSource,
  takeSnapshot,
} from '../debugfs/index.ts';
import { isErr, type PollFd, type Syscalls } from '../uapi/index.ts';
import { describeIoctl, type FdKind, mapFlags, openFlags, protText, retText } from './syscall_text.ts';

/*
 * The step log: every syscall a program makes, its result, the kernel's
 * reason when it failed, what it changed in the kernel's objects (a diff
 * of debugfs snapshots taken around it) and, when tracing, the kernel
 * functions it ran.
 */
export interface Step {
  readonly n: number;
  readonly call: string;
  readonly result: string;
  readonly ok: boolean;
  /** fields the kernel wrote into the argument struct */
  readonly out: string;
  /** fail()'s reason in words for a failed call */
  readonly reason: string | undefined;
  /** what the step means, in the seed's terms (written by the demo) */
  readonly notes: string[];
  /** object changes, computed from snapshots */
  readonly changes: string[];
  /** function_graph lines of the kernel code this step ran */
  readonly trace: string[];
}

export interface RecorderOptions {
  readonly changes: boolean;
  /** set_graph_function patterns for the per-step trace */
  readonly traceFilter?: readonly string[];
}

export class Recorder {
  readonly steps: Step[] = [];
  private last: Snapshot | undefined;
  /** called after each step (the CLI prints steps as they happen) */
  onStep: (s: Step) => void = () => {};
  /** lines a program logs between its steps ({ after: step number, text }) */
  readonly notes: { after: number; text: string }[] = [];
  onNote: (text: string) => void = () => {};
  /** inside a step: nested syscalls (a library call's own) are not steps of their own */
  private depth = 0;
  /** notes for the next step, from whoever knows what it means */
  private pending: ((ret: number | bigint) => readonly string[]) | undefined;

  constructor(
    readonly machine: SnapshotSource,
    readonly trace: KernelTrace | undefined,
    readonly opts: RecorderOptions,
  ) {}

  snapshot(): Snapshot {
    return takeSnapshot(this.machine);
  }

  /**
   * Run one step. `fn` does the call and returns its raw result; `reason`
   * reads the kernel's reason for a failure; `explain` turns the result
   * into notes.
   */
  step<T extends number | bigint>(
    call: string,
    fn: () => T,
    more: {
      pid?: number;
      comm?: string;
      reason?: () => string | undefined;
      out?: () => string;
      explain?: (ret: T) => readonly string[];
      /** log this call even if it fails in a way the caller expects */
      quietOk?: boolean;
    } = {},
  ): T {
    if (this.depth > 0) return fn();
    const before = this.opts.changes ? (this.last ?? this.snapshot()) : undefined;
    const tr = this.trace;
    const from = tr?.position ?? 0;
    tr?.mark(call, more.pid, more.comm);
    this.depth++;
    let ret: T;
    try {
      ret = fn();
    } finally {
      this.depth--;
    }
    const ok = !isErr(ret);
    const pending = this.pending;
    this.pending = undefined;
    const after = this.opts.changes ? this.snapshot() : undefined;
    this.last = after;
    const trace =
      tr === undefined
        ? []
        : tr.lines(
            {
              header: false,
              ...(this.opts.traceFilter !== undefined ? { filter: this.opts.traceFilter } : {}),
            },
            from,
          );
    const s: Step = {
      n: this.steps.length + 1,
      call,
      result: retText(ret),
      ok,
      out: ok ? (more.out?.() ?? '') : '',
      reason: ok ? undefined : more.reason?.(),
      notes: [...(more.explain?.(ret) ?? []), ...(pending?.(ret) ?? [])],
      changes:
        before !== undefined && after !== undefined ? describeChanges(diffSnapshots(before, after)) : [],
      trace,
    };
    this.steps.push(s);
    this.onStep(s);
    return ret;
  }

  /** a program's own line in the log */
  note(text: string): void {
    this.notes.push({ after: this.steps.length, text });
    this.onNote(text);
  }

  /** explain the next step: lines, or a function of its result (several calls add up) */
  explainNext(notes: readonly string[] | ((ret: number | bigint) => readonly string[])): void {
    const next = typeof notes === 'function' ? notes : () => notes;
    const before = this.pending;
    this.pending = before === undefined ? next : (r) => [...before(r), ...next(r)];
  }

  /** forget the cached snapshot (something outside the log changed the machine) */
  resync(): void {
    this.last = undefined;
  }
}

/** the syscalls of a process, each one logged as a step */
export function recordingProcess<P extends Syscalls>(p: P, rec: Recorder, arch: string): P {
  const kinds = new Map<number, FdKind>();
  const comm = (p as { task?: { comm?: string } }).task?.comm ?? 'user';
  const reason = (): string | undefined => p.lastError?.();
  const base = { pid: p.pid, comm, reason };
  const fdKind = (fd: number): FdKind => kinds.get(fd) ?? 'file';
  const wrapped: Partial<Syscalls> = {
    open: (path, flags) =>
      rec.step(
        `open(${JSON.stringify(path)}, ${openFlags(flags)})`,
        () => {
          const fd = p.open(path, flags);
          if (fd >= 0)
            kinds.set(
              fd,
              path === '/dev/vfio/vfio' ? 'container' : /^\/dev\/vfio\/\d+$/.test(path) ? 'group' : 'file',
            );
          return fd;
        },
        base,
      ),
    close: (fd) =>
      rec.step(
        `close(${fd})`,
        () => {
          const r = p.close(fd);
          if (r === 0) kinds.delete(fd);
          return r;
        },
        base,
      ),
    ioctl: (fd, request, arg = 0) => {
      const d = describeIoctl(p, fd, fdKind(fd), request, arg, arch);
      return rec.step(
        d.call,
        () => {
          const r = p.ioctl(fd, request, arg);
          if (d.name === 'VFIO_GROUP_GET_DEVICE_FD' && r >= 0) kinds.set(r, 'device');
          return r;
        },
        { ...base, out: () => d.after() },
      );
    },
    mmap: (addr, length, prot, flags, fd, offset) =>
      rec.step(
        `mmap(0x${addr.toString(16)}, 0x${BigInt(length).toString(16)}, ${protText(prot)}, ${mapFlags(flags)}, ${fd}, 0x${offset.toString(16)})`,
        () => p.mmap(addr, length, prot, flags, fd, offset),
        base,
      ),
    munmap: (addr, length) =>
      rec.step(
        `munmap(0x${addr.toString(16)}, 0x${BigInt(length).toString(16)})`,
        () => p.munmap(addr, length),
        base,
      ),
    eventfd: (initval, flags) =>
      rec.step(
        `eventfd(${initval}, ${flags})`,
        () => {
          const fd = p.eventfd(initval, flags);
          if (fd >= 0) kinds.set(fd, 'eventfd');
          return fd;
        },
        base,
      ),
    read: (fd, buf, count) =>
      rec.step(`read(${fd}, 0x${buf.toString(16)}, ${count})`, () => p.read(fd, buf, count), base),
    write: (fd, buf, count) =>
      rec.step(`write(${fd}, 0x${buf.toString(16)}, ${count})`, () => p.write(fd, buf, count), base),
    pread: (fd, buf, count, offset) =>
      rec.step(
        `pread64(${fd}, 0x${buf.toString(16)}, ${count}, 0x${offset.toString(16)})`,
        () => p.pread(fd, buf, count, offset),
        base,
      ),
    pwrite: (fd, buf, count, offset) =>
      rec.step(
        `pwrite64(${fd}, 0x${buf.toString(16)}, ${count}, 0x${offset.toString(16)})`,
        () => p.pwrite(fd, buf, count, offset),
        base,
      ),
    poll: (fds: PollFd[], timeoutMs: number) =>
      rec.step(
        `poll([${fds.map((f) => `{fd=${f.fd}, events=0x${f.events.toString(16)}}`).join(', ')}], ${timeoutMs})`,
        () => p.poll(fds, timeoutMs),
        base,
      ),
    dup: (fd) =>
      rec.step(
        `dup(${fd})`,
        () => {
          const r = p.dup(fd);
          if (r >= 0) kinds.set(r, fdKind(fd));
          return r;
        },
        base,
      ),
  };
  return new Proxy(p, {
    get(target, prop, receiver) {
      const w = (wrapped as Record<string | symbol, unknown>)[prop];
      if (w !== undefined) return w;
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
