import { KernelTrace, type Snapshot, takeSnapshot } from '../debugfs/index.ts';
import { bootHost, type Host, type HostDescription } from '../host/index.ts';
import { buildGraph, renderSvg, toDot } from '../viz/index.ts';
import { type CliIo, Painter } from './io.ts';
import { Recorder, recordingProcess, type Step } from './steplog.ts';

/*
 * One CLI run against one machine: the booted host, the tracer when
 * --trace asked for it, the step recorder, and the snapshot the graph is
 * drawn from (the last checkpoint, else the end of the run).
 */
export interface SessionOptions {
  readonly desc: HostDescription;
  readonly file?: string;
  readonly trace: boolean;
  readonly traceFilter?: readonly string[];
  readonly changes: boolean;
}

export type Proc = ReturnType<Host['spawn']>;

export class Session {
  readonly host: Host;
  readonly trace: KernelTrace | undefined;
  readonly recorder: Recorder;
  /** the picture of the machine at its busiest point, for --graph */
  checkpointed: Snapshot | undefined;

  constructor(readonly opts: SessionOptions) {
    this.host = bootHost(opts.desc, opts.file);
    this.trace = opts.trace ? new KernelTrace(this.host.kernel) : undefined;
    this.trace?.start();
    this.recorder = new Recorder(this.host, this.trace, {
      changes: opts.changes,
      ...(opts.traceFilter !== undefined ? { traceFilter: opts.traceFilter } : {}),
    });
  }

  get arch(): string {
    return this.host.arch;
  }

  /** a user process with the description's limits, every syscall a step */
  spawn(comm?: string): { raw: Proc; sys: Proc } {
    const p = this.host.spawn({ ...this.opts.desc.process, ...(comm !== undefined ? { comm } : {}) });
    return { raw: p, sys: recordingProcess(p, this.recorder, this.host.arch) };
  }

  /** something root does on the host (bind a driver), as a step */
  admin(call: string, fn: () => number, explain?: (ret: number) => readonly string[]): number {
    return this.recorder.step(call, fn, {
      pid: 0,
      comm: 'root',
      ...(explain !== undefined ? { explain } : {}),
      reason: () => this.lastReason(),
    });
  }

  /** the newest fail() reason in the kernel log */
  lastReason(): string | undefined {
    const lines = this.host.dmesg({ reasons: true }).filter((l) => l.startsWith('vfio-ts: -'));
    return lines[lines.length - 1]?.replace(/^vfio-ts: -[A-Z0-9]+: /, '');
  }

  checkpoint(): void {
    this.checkpointed = takeSnapshot(this.host);
  }

  snapshot(): Snapshot {
    return this.checkpointed ?? takeSnapshot(this.host);
  }

  /** the live object graph in a format: 'svg', 'dot' or 'json' */
  async graph(format: 'svg' | 'dot' | 'json', snap: Snapshot = this.snapshot()): Promise<string> {
    const g = buildGraph(snap);
    if (format === 'json') return `${JSON.stringify(g, null, 2)}\n`;
    const dot = toDot(g);
    return format === 'dot' ? dot : renderSvg(dot);
  }
}

export function graphFormatOf(file: string, explicit?: string): 'svg' | 'dot' | 'json' {
  if (explicit === 'svg' || explicit === 'dot' || explicit === 'json') return explicit;
  if (file.endsWith('.dot') || file.endsWith('.gv')) return 'dot';
  if (file.endsWith('.json')) return 'json';
  return 'svg';
}

/* ---- printing ---- */

export interface PrintOptions {
  readonly changes: boolean;
  readonly trace: boolean;
}

export function stepLines(s: Step, paint: Painter, opts: PrintOptions): string[] {
  const res = s.ok ? paint.ok(s.result) : paint.bad(s.result);
  const lines = [
    `${paint.dim(`[${s.n}]`)} ${paint.bold(s.call)} = ${res}${s.out === '' ? '' : ` → ${s.out}`}`,
  ];
  if (s.reason !== undefined) lines.push(`    ${paint.bad('kernel:')} ${s.reason}`);
  for (const n of s.notes) lines.push(`    ${n}`);
  if (opts.changes)
    for (const c of s.changes) {
      const mark = c[0];
      const text = mark === '+' ? paint.ok(c) : mark === '-' ? paint.bad(c) : paint.warn(c);
      lines.push(`    ${text}`);
    }
  if (opts.trace) for (const t of s.trace) lines.push(`    ${paint.fn(t)}`);
  return lines;
}

export function printer(io: CliIo, opts: PrintOptions): (s: Step) => void {
  const paint = new Painter(io.color);
  return (s) => {
    for (const l of stepLines(s, paint, opts)) io.out(l);
  };
}
