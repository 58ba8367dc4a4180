import { errnoName } from '../uapi/index.ts';
import { maybeCurrentKernel } from './current.ts';

/*
 * A function_graph tracer. Kernel functions that the seeds name are wrapped
 * with traced(); while no kernel traces, the wrapper costs one branch on a
 * module-level flag (bench/ measures it against an unwrapped build of the
 * same path).
 */
export interface TraceEvent {
  readonly depth: number;
  readonly fn: string;
  readonly args: string;
  /** undefined while the call is open; the formatted return otherwise */
  ret: string | undefined;
  readonly pid: number;
  readonly timeNs: number;
  /** virtual time at return (undefined while open) */
  endNs?: number;
  /** a trace_marker write (fn holds the text), not a call */
  readonly marker?: true;
}

let activeTracers = 0;

export class Tracer {
  private on = false;
  private depth = 0;
  private filter: RegExp | undefined;
  readonly events: TraceEvent[] = [];
  /** stop recording past this many events (a runaway loop must not eat memory) */
  limit = 200_000;
  pidOf: () => number = () => 0;
  timeOf: () => number = () => 0;

  get enabled(): boolean {
    return this.on;
  }

  start(filter?: RegExp): void {
    if (!this.on) activeTracers++;
    this.on = true;
    this.filter = filter;
  }

  stop(): void {
    if (this.on) activeTracers--;
    this.on = false;
  }

  clear(): void {
    this.events.length = 0;
    this.depth = 0;
  }

  /** @internal */
  enter(fn: string, args: string): TraceEvent | undefined {
    if (this.events.length >= this.limit) {
      this.depth++; /* exit() still pops it */
      return undefined;
    }
    const ev: TraceEvent = {
      depth: this.depth,
      fn,
      args,
      ret: undefined,
      pid: this.pidOf(),
      timeNs: this.timeOf(),
    };
    this.events.push(ev);
    this.depth++;
    return ev;
  }

  /** @internal */
  exit(ev: TraceEvent | undefined, ret: unknown): void {
    this.depth--;
    if (ev === undefined) return;
    ev.ret = formatRet(ret);
    ev.endNs = this.timeOf();
  }

  /** trace_marker: a line of text in the trace at the current depth (userspace annotations) */
  mark(text: string): void {
    if (!this.on || this.events.length >= this.limit) return;
    const t = this.timeOf();
    const pid = this.pidOf();
    this.events.push({
      depth: this.depth,
      fn: text,
      args: '',
      ret: undefined,
      pid,
      timeNs: t,
      endNs: t,
      marker: true,
    });
  }

  /** events matching the filter, with their subtrees */
  selected(): TraceEvent[] {
    const f = this.filter;
    if (f === undefined) return this.events;
    const out: TraceEvent[] = [];
    let inside = -1;
    for (const ev of this.events) {
      if (inside >= 0 && ev.depth > inside) {
        out.push(ev);
        continue;
      }
      inside = -1;
      if (f.test(ev.fn)) {
        out.push(ev);
        inside = ev.depth;
      }
    }
    return out;
  }
}

export function formatRet(ret: unknown): string {
  if (typeof ret === 'number') return ret < 0 && ret > -4096 ? `-${errnoName(-ret)}` : String(ret);
  if (typeof ret === 'bigint')
    return ret < 0n && ret > -4096n ? `-${errnoName(Number(-ret))}` : `0x${ret.toString(16)}`;
  if (ret === undefined) return '';
  if (typeof ret === 'boolean') return String(ret);
  if (ret === null) return 'NULL';
  if (typeof ret === 'object') {
    const ctor = (ret as { constructor?: { name?: string } }).constructor?.name;
    return ctor !== undefined && ctor !== 'Object' ? ctor : 'ptr';
  }
  return String(ret);
}

/** how many of the wrapper's fixed arguments the caller passed (trailing undefineds dropped) */
function arity(...xs: unknown[]): number {
  let n = xs.length;
  while (n > 0 && xs[n - 1] === undefined) n--;
  return n;
}

/**
 * Wrap a kernel function so calls appear in the function_graph trace.
 * `fmt` renders the arguments that matter ("arg=VFIO_SPAPR_TCE_IOMMU").
 */
export function traced<A extends unknown[], R>(
  name: string,
  fn: (...args: A) => R,
  fmt?: (...args: A) => string,
): (...args: A) => R {
  const slow = (args: A): R => {
    const t = maybeCurrentKernel()?.tracer;
    if (t === undefined || !t.enabled) return fn(...args);
    const ev = t.enter(name, fmt === undefined ? '' : fmt(...args));
    let ret: R;
    try {
      ret = fn(...args);
    } catch (e) {
      t.exit(ev, 'exception');
      throw e;
    }
    t.exit(ev, ret);
    return ret;
  };
  /*
   * While tracing is off the wrapper must cost next to nothing: a rest
   * parameter would allocate an array on every call, so functions whose
   * parameter list has no rest parameter and at most six names get a
   * fixed six-argument wrapper (missing arguments arrive as undefined,
   * which is what they would be anyway, and defaults still apply).
   */
  type F = (...args: unknown[]) => R;
  const f = fn as unknown as F;
  const s = slow as unknown as (args: unknown[]) => R;
  const src = Function.prototype.toString.call(fn);
  const head = src.slice(0, Math.max(0, src.search(/=>|\{/)));
  const fixed = !head.includes('...') && head.split(',').length <= 6;
  const w: F = fixed
    ? (a, b, c, d, e, g) =>
        activeTracers === 0 ? f(a, b, c, d, e, g) : s([a, b, c, d, e, g].slice(0, arity(a, b, c, d, e, g)))
    : (...args) => (activeTracers === 0 ? f(...args) : s(args));
  return w as unknown as (...args: A) => R;
}

/**
 * Render events in ftrace's function_graph shape:
 *   1)               |  vfio_fops_unl_ioctl(cmd=VFIO_SET_IOMMU) {
 *   1)               |    tce_iommu_open(arg=2) = ptr;
 */
export function formatFunctionGraph(events: readonly TraceEvent[]): string[] {
  const lines: string[] = [];
  const stack: TraceEvent[] = [];
  const base = events.length > 0 ? Math.min(...events.map((e) => e.depth)) : 0;
  const pad = (ev: TraceEvent): string =>
    `${String(ev.pid).padStart(3, ' ')})  ${'  '.repeat(ev.depth - base)}`;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i];
    if (ev === undefined) continue;
    while (stack.length > 0 && (stack[stack.length - 1]?.depth ?? 0) >= ev.depth) {
      const top = stack.pop();
      if (top !== undefined) lines.push(`${pad(top)}} ${retNote(top)}`.trimEnd());
    }
    const next = events[i + 1];
    const leaf = next === undefined || next.depth <= ev.depth;
    const call = `${ev.fn}(${ev.args})`;
    if (leaf) lines.push(`${pad(ev)}${call};${ev.ret ? ` /* = ${ev.ret} */` : ''}`);
    else {
      lines.push(`${pad(ev)}${call} {`);
      stack.push(ev);
    }
  }
  while (stack.length > 0) {
    const top = stack.pop();
    if (top !== undefined) lines.push(`${pad(top)}} ${retNote(top)}`.trimEnd());
  }
  return lines;
}

function retNote(ev: TraceEvent): string {
  return ev.ret ? `/* ${ev.fn} = ${ev.ret} */` : '';
}
