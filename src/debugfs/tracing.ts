import { current, type Kernel, type TraceEvent } from '../kernel/index.ts';
import { decodeTraceArgs } from './names.ts';

/*
 * /sys/kernel/debug/tracing for the function_graph tracer: start and stop
 * the kernel's tracer, annotate it from userspace (trace_marker), and read
 * it back in the shape of ftrace's `trace` file with the funcgraph-proc,
 * funcgraph-retval and funcgraph-args options on:
 *
 *   # tracer: function_graph
 *   #
 *   # CPU  TASK/PID         DURATION                  FUNCTION CALLS
 *   # |     |    |           |   |                     |   |   |   |
 *    0)   proc100-100   |               |  vfio_fops_unl_ioctl(cmd=VFIO_SET_IOMMU) {
 *    0)   proc100-100   |               |    vfio_ioctl_set_iommu(arg=VFIO_TYPE1_IOMMU) {
 *    0)   proc100-100   |               |      vfio_iommu_type1_open(); /* = vfio_iommu *\/
 *
 * Durations are virtual time: the clock only moves while something waits
 * (a poll for a device interrupt), so a call that took no virtual time
 * leaves the column blank rather than printing a meaningless 0.000 us.
 */

/** one traced call or marker, as plain data (`vfio-ts trace --json`) */
export interface TraceRecord {
  readonly cpu: number;
  readonly pid: number;
  readonly comm: string;
  readonly depth: number;
  readonly fn: string;
  readonly args: string;
  /** formatted return: '0x0', '-EINVAL', 'vfio_container', or '' for void */
  readonly ret: string;
  readonly durationNs: number;
  readonly marker: boolean;
}

export interface FtraceOptions {
  /**
   * set_graph_function: glob patterns ('vfio_ioctl_*'); a call matching
   * one is shown with everything it calls. '!pattern' is set_graph_notrace:
   * the call and its subtree are hidden. A marker is kept when a shown call follows it.
   */
  readonly filter?: readonly string[];
  /** print the `# tracer` header (default true) */
  readonly header?: boolean;
  /** prefer the sPAPR or type1 name where they share an ioctl number */
  readonly arch?: string;
  /** include trace_marker lines (default true) */
  readonly markers?: boolean;
}

export class KernelTrace {
  /** comm of every pid seen while tracing (tasks may exit before the trace is read) */
  private readonly comms = new Map<number, string>();

  constructor(readonly kernel: Kernel) {}

  get tracing(): boolean {
    return this.kernel.tracer.enabled;
  }

  start(): void {
    const t = this.kernel.tracer;
    const comms = this.comms;
    t.pidOf = () => {
      const task = current();
      if (!comms.has(task.pid)) comms.set(task.pid, task.comm);
      return task.pid;
    };
    t.start();
  }

  stop(): void {
    this.kernel.tracer.stop();
  }

  clear(): void {
    this.kernel.tracer.clear();
  }

  /** echo text > trace_marker, on behalf of a task */
  mark(text: string, pid = 0, comm = 'user'): void {
    const t = this.kernel.tracer;
    const saved = t.pidOf;
    this.comms.set(pid, comm);
    t.pidOf = () => pid;
    t.mark(text);
    t.pidOf = saved;
  }

  /** a position in the trace, to read what happened after it */
  get position(): number {
    return this.kernel.tracer.events.length;
  }

  records(opts: FtraceOptions = {}, from = 0, to?: number): TraceRecord[] {
    let events = select(this.kernel.tracer.events.slice(from, to), opts.filter ?? []);
    if (opts.markers === false) events = events.filter((e) => e.marker !== true);
    /* with a filter, a marker is context for the calls after it: alone it is noise */ else if (
      (opts.filter ?? []).length > 0
    )
      events = events.filter(
        (e, i) => e.marker !== true || (events[i + 1] !== undefined && events[i + 1]?.marker !== true),
      );
    return events.map((e) => ({
      cpu: 0,
      pid: e.pid,
      comm: this.comms.get(e.pid) ?? (e.pid === 0 ? 'swapper' : String(e.pid)),
      depth: e.depth,
      fn: e.fn,
      args: e.marker === true ? '' : decodeTraceArgs(e.fn, e.args, opts.arch ?? this.kernel.arch.name),
      ret: ftraceRet(e.ret ?? ''),
      durationNs: e.endNs === undefined ? 0 : e.endNs - e.timeNs,
      marker: e.marker === true,
    }));
  }

  /** the `trace` file: header and function_graph lines */
  lines(opts: FtraceOptions = {}, from = 0, to?: number): string[] {
    return formatFtrace(this.records(opts, from, to), opts.header ?? true);
  }
}

/** funcgraph-retval prints non-errors in hex; errors keep their name (-EINVAL) */
function ftraceRet(ret: string): string {
  if (/^\d+$/.test(ret)) return `0x${Number(ret).toString(16)}`;
  /* a returned object is a pointer to a struct: name it as C would (VfioGroup -> &vfio_group) */
  if (/^[A-Z][A-Za-z0-9]*$/.test(ret))
    return `&${ret
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
      .toLowerCase()}`;
  return ret;
}

/* ---- selection (set_graph_function / set_graph_notrace) ---- */

export function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

function select(events: readonly TraceEvent[], filter: readonly string[]): TraceEvent[] {
  const want = filter.filter((p) => !p.startsWith('!')).map(globToRegExp);
  const hide = filter.filter((p) => p.startsWith('!')).map((p) => globToRegExp(p.slice(1)));
  if (want.length === 0 && hide.length === 0) return rebase([...events]);
  const out: TraceEvent[] = [];
  let inside = -1; /* depth of the matched call we are inside, or -1 */
  let hidden = -1; /* depth of the hidden call we are inside, or -1 */
  for (const ev of events) {
    if (hidden >= 0 && ev.depth > hidden && ev.marker !== true) continue;
    hidden = -1;
    if (inside >= 0 && ev.depth <= inside) inside = -1;
    if (ev.marker === true) {
      out.push(ev);
      continue;
    }
    if (hide.some((r) => r.test(ev.fn))) {
      hidden = ev.depth;
      continue;
    }
    if (want.length === 0 || inside >= 0) {
      out.push(ev);
      continue;
    }
    if (want.some((r) => r.test(ev.fn))) {
      out.push(ev);
      inside = ev.depth;
    }
  }
  return rebase(out);
}

/**
 * Re-indent so each top-level call starts at depth 0 (as set_graph_function
 * does), and markers sit at the depth of the call around them.
 */
function rebase(events: TraceEvent[]): TraceEvent[] {
  const out: TraceEvent[] = [];
  const stack: { orig: number; depth: number }[] = [];
  for (const ev of events) {
    if (ev.marker === true) {
      while (stack.length > 0 && (stack[stack.length - 1]?.orig ?? 0) >= ev.depth) stack.pop();
      out.push({ ...ev, depth: stack.length });
      continue;
    }
    while (stack.length > 0 && (stack[stack.length - 1]?.orig ?? 0) >= ev.depth) stack.pop();
    const depth = stack.length;
    stack.push({ orig: ev.depth, depth });
    out.push(depth === ev.depth ? ev : { ...ev, depth });
  }
  return out;
}

/* ---- the trace file's shape ---- */

const HEADER = [
  '# tracer: function_graph',
  '#',
  '# CPU  TASK/PID         DURATION                  FUNCTION CALLS',
  '# |     |    |           |   |                     |   |   |   |',
];

/** ftrace's TRACE_GRAPH_PROCINFO_LENGTH: comm (7 chars) and pid centred in 14 columns */
function procColumn(comm: string, pid: number): string {
  const text = `${comm.slice(0, 7)}-${pid}`;
  const spaces = Math.max(0, 14 - text.length);
  const left = Math.floor(spaces / 2);
  return `${' '.repeat(left)}${text}${' '.repeat(spaces - left)}`;
}

/** trace_print_graph_duration with its overhead mark ('+' > 10 us, '!' > 100 us, ...) */
export function durationColumn(ns: number): string {
  if (ns <= 0) return '              |  ';
  const mark =
    ns > 1e9 ? '$' : ns > 1e8 ? '@' : ns > 1e7 ? '*' : ns > 1e6 ? '#' : ns > 1e5 ? '!' : ns > 1e4 ? '+' : ' ';
  const us = Math.floor(ns / 1000);
  let text = String(us);
  if (text.length < 7) {
    const frac = String(Math.floor(ns % 1000)).padStart(3, '0');
    text += `.${frac.slice(0, Math.min(3, 7 - text.length))}`;
  }
  return `${mark} ${text} us ${' '.repeat(Math.max(0, 8 - text.length))}|  `;
}

export function formatFtrace(records: readonly TraceRecord[], header = true): string[] {
  const lines: string[] = header ? [...HEADER] : [];
  const stack: TraceRecord[] = [];
  const prefix = (r: TraceRecord, durNs: number): string =>
    ` ${r.cpu}) ${procColumn(r.comm, r.pid)} | ${durationColumn(durNs)}${'  '.repeat(r.depth)}`;
  const close = (r: TraceRecord): void => {
    const ret = r.ret === '' ? `/* ${r.fn} */` : `/* ${r.fn} = ${r.ret} */`;
    lines.push(`${prefix(r, r.durationNs)}} ${ret}`);
  };
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as TraceRecord;
    while (stack.length > 0 && (stack[stack.length - 1]?.depth ?? 0) >= r.depth && !r.marker) {
      close(stack.pop() as TraceRecord);
    }
    if (r.marker) {
      while (stack.length > 0 && (stack[stack.length - 1]?.depth ?? 0) >= r.depth)
        close(stack.pop() as TraceRecord);
      lines.push(`${prefix(r, 0)}/* ${r.fn} */`);
      continue;
    }
    const next = records[i + 1];
    const leaf = next === undefined || next.marker || next.depth <= r.depth;
    const call = `${r.fn}(${r.args})`;
    if (leaf) lines.push(`${prefix(r, r.durationNs)}${call};${r.ret === '' ? '' : ` /* = ${r.ret} */`}`);
    else {
      lines.push(`${prefix(r, 0)}${call} {`);
      stack.push(r);
    }
  }
  while (stack.length > 0) close(stack.pop() as TraceRecord);
  return lines;
}
