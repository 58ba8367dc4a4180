// The VFIO core's syscall path against a real Linux syscall on the same
// machine, in the same run:
//
//   - ioctl(container, VFIO_GET_API_VERSION) and ioctl(group,
//     VFIO_GROUP_GET_STATUS) through the full Process syscall surface
//     (fd lookup, do_vfs_ioctl, f_op->unlocked_ioctl, the traced wrapper,
//     vfio_fops_unl_ioctl / vfio_group_fops_unl_ioctl, copy_{from,to}_user);
//   - a real ioctl(FIONREAD) on a pipe, measured by bench/fionread.c,
//     compiled with cc into a temporary directory when a C compiler exists;
//   - the same simulated path in a second copy of src/ whose traced() returns
//     the bare function (bench/notrace_hooks.mjs): tracing compiled out,
//     against compiled in but off, i.e. what the traced() wrapper costs.
//
// Rounds of all of them are interleaved, so a busy machine slows them alike;
// every figure is the fastest round. Ratios, never absolute targets.
//
//   node --import tsx bench/core.bench.ts

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as normal from '../src/index.ts';

type Api = typeof normal;

const ROUNDS = 9;
const API_CALLS = 1_000_000;
const STATUS_CALLS = 200_000;
const C_CALLS = 1_000_000;

/** one machine with a container and a group open, and the two calls measured */
function machine(m: Api): {
  api: () => number;
  status: () => number;
  tracer: Api['Host']['prototype']['kernel']['tracer'];
} {
  const host = new m.Host({ arch: 'x86_64', kernel: '4.1' });
  host.addPciDevice({ bdf: '0000:00:03.0', model: 'generic', iommuGroup: 3 });
  if (host.bind('0000:00:03.0', 'vfio-pci') !== 0) throw new Error('bind failed');
  const p = host.spawn();
  const container = p.open('/dev/vfio/vfio', m.O_RDWR);
  const group = p.open('/dev/vfio/3', m.O_RDWR);
  const buf = p.mmap(0n, 4096, m.PROT_READ | m.PROT_WRITE, m.MAP_PRIVATE | m.MAP_ANONYMOUS, -1, 0n);
  p.mem.write(buf, m.vfio_group_status.encode({ argsz: m.vfio_group_status.size, flags: 0 }));
  if (p.ioctl(group, m.VFIO_GROUP_GET_STATUS, buf) !== 0) throw new Error('GET_STATUS failed');
  return {
    api: () => p.ioctl(container, m.VFIO_GET_API_VERSION),
    status: () => p.ioctl(group, m.VFIO_GROUP_GET_STATUS, buf),
    tracer: host.kernel.tracer,
  };
}

/** calls per second of one timed round */
function round(fn: () => number, calls: number): number {
  let bad = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) if (fn() !== 0) bad++;
  const dt = Number(process.hrtime.bigint() - t0);
  if (bad !== 0) throw new Error(`${bad} calls failed`);
  return (calls / dt) * 1e9;
}

/** a compiled bench/fionread.c, or why there is none; the caller removes dir */
function compileBaseline(dir: string): string | { error: string } {
  const src = fileURLToPath(new URL('./fionread.c', import.meta.url));
  const exe = join(dir, 'fionread');
  const cc = spawnSync(process.env.CC ?? 'cc', ['-O2', '-o', exe, src], { encoding: 'utf8' });
  if (cc.error !== undefined) return { error: `no C compiler (${cc.error.message})` };
  if (cc.status !== 0) return { error: `cc failed: ${cc.stderr.trim()}` };
  return exe;
}

/** one round of real ioctl(FIONREAD) calls, in calls per second */
function realRound(exe: string): number {
  const run = spawnSync(exe, [String(C_CALLS), '1'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`fionread failed: ${run.stderr.trim()}`);
  const [calls, ns] = run.stdout.trim().split(/\s+/).map(Number);
  if (calls === undefined || ns === undefined || !(ns > 0))
    throw new Error(`fionread said "${run.stdout.trim()}"`);
  return (calls / ns) * 1e9;
}

const fmt = (perSec: number): string =>
  `${(perSec / 1e6).toFixed(2)} M calls/s (${(1e9 / perSec).toFixed(0)} ns/call)`;

export async function benchCore(report: (line: string) => void): Promise<void> {
  register(new URL('./notrace_hooks.mjs', import.meta.url).href);
  const bare = (await import(`${new URL('../src/index.ts', import.meta.url).href}?notrace`)) as Api;
  if (bare.Host === normal.Host) throw new Error('the notrace build is the same module');
  const on = machine(normal);
  const out = machine(bare);
  const dir = mkdtempSync(join(tmpdir(), 'vfio-ts-bench-'));
  try {
    const exe = compileBaseline(dir);
    const best = { api: 0, status: 0, apiOut: 0, statusOut: 0, real: 0 };
    for (const m of [on, out]) {
      round(m.api, API_CALLS / 10); /* warm up */
      round(m.status, STATUS_CALLS / 10);
    }
    for (let r = 0; r < ROUNDS; r++) {
      if (typeof exe === 'string') best.real = Math.max(best.real, realRound(exe));
      best.api = Math.max(best.api, round(on.api, API_CALLS));
      best.apiOut = Math.max(best.apiOut, round(out.api, API_CALLS));
      best.status = Math.max(best.status, round(on.status, STATUS_CALLS));
      best.statusOut = Math.max(best.statusOut, round(out.status, STATUS_CALLS));
    }
    on.tracer.start();
    const traced = round(() => {
      on.tracer.clear();
      return on.api();
    }, API_CALLS / 10);
    on.tracer.stop();
    report(`fastest of ${ROUNDS} interleaved rounds, this machine, this run:`);
    report(`simulated ioctl(VFIO_GET_API_VERSION)       ${fmt(best.api)}`);
    report(`simulated ioctl(VFIO_GROUP_GET_STATUS)      ${fmt(best.status)}`);
    if (typeof exe === 'string') {
      report(`real Linux ioctl(FIONREAD) on a pipe        ${fmt(best.real)}`);
      report(
        `ratio GET_API_VERSION / FIONREAD            ${(best.api / best.real).toFixed(2)}x  (target >= 2x: ${best.api / best.real >= 2 ? 'met' : 'NOT met'})`,
      );
      report(`ratio GET_STATUS / FIONREAD                 ${(best.status / best.real).toFixed(2)}x`);
    } else report(`real Linux ioctl(FIONREAD): not measured, ${exe.error}`);
    report(`GET_API_VERSION, tracing compiled out       ${fmt(best.apiOut)}`);
    report(`GET_STATUS, tracing compiled out            ${fmt(best.statusOut)}`);
    report(
      `traced() wrapper cost (compiled out / compiled in but off): GET_API_VERSION ${(best.apiOut / best.api).toFixed(2)}x, GET_STATUS ${(best.statusOut / best.status).toFixed(2)}x`,
    );
    report(`GET_API_VERSION with the tracer recording   ${fmt(traced)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchCore((l) => console.log(l));
