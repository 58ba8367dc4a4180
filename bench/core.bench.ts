// The VFIO core's syscall path against a real Linux syscall on the same
// machine, in the same run:
//
//   - ioctl(container, VFIO_GET_API_VERSION) and ioctl(group,
//     VFIO_GROUP_GET_STATUS) through the full Process syscall surface
//     (fd lookup, do_vfs_ioctl, f_op->unlocked_ioctl, the traced wrapper,
//     vfio_fops_unl_ioctl / vfio_group_fops_unl_ioctl, copy_{from,to}_user);
//   - a real ioctl(FIONREAD) on a pipe, measured by bench/fionread.c,
//     compiled with cc into a temporary directory when a C compiler exists;
//   - the same simulated path with tracing compiled out (VFIO_TS_NO_TRACE=1,
//     in a child process, since traced() decides when a module loads)
//     against compiled in but off: what the traced() wrapper costs.
//
// Every figure is the best of several rounds; ratios, never absolute targets.
//
//   node --import tsx bench/core.bench.ts

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  Host,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_STATUS,
  vfio_group_status,
} from '../src/index.ts';

const ROUNDS = 5;
const API_CALLS = 2_000_000;
const STATUS_CALLS = 300_000;
const C_CALLS = 1_000_000;

interface Rates {
  /** calls per second */
  readonly api: number;
  readonly status: number;
  /** GET_API_VERSION with the function_graph tracer recording (compiled-in run only) */
  readonly apiTraced?: number;
}

/** best-of-rounds rate of fn, in calls per second */
function rate(fn: () => number, calls: number, expect: number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    let bad = 0;
    for (let i = 0; i < calls; i++) if (fn() !== expect) bad++;
    const dt = Number(process.hrtime.bigint() - t0);
    if (bad !== 0) throw new Error(`${bad} calls did not return ${expect}`);
    best = Math.min(best, dt);
  }
  return (calls / best) * 1e9;
}

function measure(withTracer: boolean): Rates {
  const host = new Host({ arch: 'x86_64', kernel: '4.1' });
  host.addPciDevice({ bdf: '0000:00:03.0', model: 'generic', iommuGroup: 3 });
  if (host.bind('0000:00:03.0', 'vfio-pci') !== 0) throw new Error('bind failed');
  const p = host.spawn();
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const group = p.open('/dev/vfio/3', O_RDWR);
  const buf = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  p.mem.write(buf, vfio_group_status.encode({ argsz: vfio_group_status.size, flags: 0 }));
  const api = rate(() => p.ioctl(container, VFIO_GET_API_VERSION), API_CALLS, 0);
  const status = rate(() => p.ioctl(group, VFIO_GROUP_GET_STATUS, buf), STATUS_CALLS, 0);
  if (!withTracer) return { api, status };
  host.kernel.tracer.start();
  const apiTraced = rate(
    () => {
      host.kernel.tracer.clear();
      return p.ioctl(container, VFIO_GET_API_VERSION);
    },
    API_CALLS / 10,
    0,
  );
  host.kernel.tracer.stop();
  return { api, status, apiTraced };
}

/** the compiled-out figures, from a child process started with VFIO_TS_NO_TRACE=1 */
function measureCompiledOut(): Rates | string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child'], {
    env: { ...process.env, VFIO_TS_NO_TRACE: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) return `child failed: ${r.stderr.trim().split('\n').pop() ?? r.status}`;
  return JSON.parse(r.stdout) as Rates;
}

/** calls per second of a real ioctl(FIONREAD) on a pipe, or why it was not measured */
function measureRealIoctl(): number | string {
  const src = fileURLToPath(new URL('./fionread.c', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'vfio-ts-bench-'));
  try {
    const exe = join(dir, 'fionread');
    const cc = spawnSync(process.env.CC ?? 'cc', ['-O2', '-o', exe, src], { encoding: 'utf8' });
    if (cc.error !== undefined) return `no C compiler (${cc.error.message})`;
    if (cc.status !== 0) return `cc failed: ${cc.stderr.trim()}`;
    const run = spawnSync(exe, [String(C_CALLS), String(ROUNDS)], { encoding: 'utf8' });
    if (run.status !== 0) return `fionread failed: ${run.stderr.trim()}`;
    const [calls, ns] = run.stdout.trim().split(/\s+/).map(Number);
    if (calls === undefined || ns === undefined || !(ns > 0))
      return `unexpected output "${run.stdout.trim()}"`;
    return (calls / ns) * 1e9;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (perSec: number): string =>
  `${(perSec / 1e6).toFixed(2)} M calls/s (${(1e9 / perSec).toFixed(0)} ns/call)`;

export async function benchCore(report: (line: string) => void): Promise<void> {
  const real = measureRealIoctl();
  const on = measure(true);
  const out = measureCompiledOut();
  report(`simulated ioctl(VFIO_GET_API_VERSION)       ${fmt(on.api)}`);
  report(`simulated ioctl(VFIO_GROUP_GET_STATUS)      ${fmt(on.status)}`);
  if (typeof real === 'number') {
    report(`real Linux ioctl(FIONREAD) on a pipe        ${fmt(real)}`);
    report(
      `ratio GET_API_VERSION / FIONREAD            ${(on.api / real).toFixed(2)}x  (target >= 2x: ${on.api / real >= 2 ? 'met' : 'NOT met'})`,
    );
    report(`ratio GET_STATUS / FIONREAD                 ${(on.status / real).toFixed(2)}x`);
  } else report(`real Linux ioctl(FIONREAD): not measured, ${real}`);
  if (typeof out === 'string') report(`tracing compiled out: not measured, ${out}`);
  else {
    report(`GET_API_VERSION, tracing compiled out       ${fmt(out.api)}`);
    report(`GET_STATUS, tracing compiled out            ${fmt(out.status)}`);
    report(
      `traced() wrapper (compiled out / in but off) GET_API_VERSION ${(out.api / on.api).toFixed(2)}x, GET_STATUS ${(out.status / on.status).toFixed(2)}x`,
    );
  }
  if (on.apiTraced !== undefined) report(`GET_API_VERSION with the tracer recording   ${fmt(on.apiTraced)}`);
}

if (process.argv.includes('--child')) process.stdout.write(JSON.stringify(measure(false)));
else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  await benchCore((l) => console.log(l));
