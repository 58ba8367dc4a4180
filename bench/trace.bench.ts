// The cost of tracing when it is off. Kernel functions the seeds name are
// wrapped in traced(); with no tracer running the wrapper is one branch.
// This measures the ioctl path (VFIO_CHECK_EXTENSION on the container,
// VFIO_GROUP_GET_STATUS on the group: vfio_fops_unl_ioctl ->
// vfio_ioctl_check_extension -> the backend, vfio_group_fops_unl_ioctl ->
// vfio_group_ioctl_get_status) three ways in one process, rounds
// interleaved:
//   off      the normal build, tracer stopped
//   notrace  the same sources loaded a second time with traced(name, fn)
//            returning fn (bench/notrace_hooks.mjs): no wrapper at all
//   on       the normal build with the function_graph tracer recording
//
//   node --import tsx bench/trace.bench.ts

import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { Host as HostType } from '../src/host/index.ts';
import { progress } from './progress.ts';

const CALLS = 20_000;
const ROUNDS = 15;

type HostCtor = typeof HostType;
type Uapi = typeof import('../src/uapi/index.ts');

interface Machine {
  /** the ioctl paths measured: name -> n calls */
  readonly paths: Record<string, (n: number) => void>;
  readonly tracer: { start(): void; stop(): void; clear(): void; readonly events: unknown[] };
}

const PATHS = {
  'container VFIO_CHECK_EXTENSION': 'vfio_fops_unl_ioctl -> vfio_ioctl_check_extension -> backend',
  'group VFIO_GROUP_GET_STATUS': 'vfio_group_fops_unl_ioctl -> vfio_group_ioctl_get_status',
} as const;
type PathName = keyof typeof PATHS;

function machine(Host: HostCtor, u: Uapi): Machine {
  const host = new Host({ arch: 'x86_64', kernel: '4.1' });
  host.addPciDevice({ bdf: '0000:00:03.0', iommuGroup: 3, driver: 'vfio-pci' });
  const p = host.spawn({});
  const arg = p.mmap(0n, 4096, u.PROT_READ | u.PROT_WRITE, u.MAP_PRIVATE | u.MAP_ANONYMOUS, -1, 0n);
  const c = p.open('/dev/vfio/vfio', u.O_RDWR);
  const g = p.open('/dev/vfio/3', u.O_RDWR);
  p.mem.write(arg, u.vfio_group_status.encode({ argsz: u.vfio_group_status.size }));
  if (p.ioctl(g, u.VFIO_GROUP_GET_STATUS, arg) !== 0) throw new Error('GET_STATUS failed');
  const paths: Record<PathName, (n: number) => void> = {
    'container VFIO_CHECK_EXTENSION': (n) => {
      for (let i = 0; i < n; i++) p.ioctl(c, u.VFIO_CHECK_EXTENSION, u.VFIO_TYPE1_IOMMU);
    },
    'group VFIO_GROUP_GET_STATUS': (n) => {
      for (let i = 0; i < n; i++) p.ioctl(g, u.VFIO_GROUP_GET_STATUS, arg);
    },
  };
  return { paths, tracer: host.kernel.tracer };
}

/* the fastest round: the one least disturbed by GC and the machine */
function best(xs: readonly number[]): number {
  return Math.min(...xs);
}

export async function benchTrace(report: (line: string) => void): Promise<void> {
  register(pathToFileURL(new URL('./notrace_hooks.mjs', import.meta.url).pathname).href);
  const normal = await import('../src/host/index.ts');
  const uapi = await import('../src/uapi/index.ts');
  const bare = (await import(
    `${new URL('../src/host/index.ts', import.meta.url).href}?notrace`
  )) as typeof normal;
  if (bare.Host === normal.Host) throw new Error('the notrace build is the same module');

  const builds = {
    notrace: machine(bare.Host, uapi),
    off: machine(normal.Host, uapi),
    on: machine(normal.Host, uapi),
  };
  /* the untraced copy must really have no wrappers: its tracer sees nothing */
  const nt = builds.notrace;
  nt.tracer.start();
  for (const run of Object.values(nt.paths)) run(5);
  if (nt.tracer.events.length !== 0) throw new Error('the notrace build still traces');
  nt.tracer.stop();

  const names = Object.keys(PATHS) as PathName[];
  const times = new Map<string, number[]>();
  const events = new Map<string, number>();
  const bar = progress(ROUNDS, 'tracing cost: rounds');
  for (const b of Object.values(builds))
    for (const run of Object.values(b.paths)) run(CALLS / 4); /* warm up */
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of names)
      for (const [build, m] of Object.entries(builds)) {
        const run = m.paths[name] as (n: number) => void;
        if (build === 'on') {
          m.tracer.clear();
          m.tracer.start();
        }
        const t = performance.now();
        run(CALLS);
        const ms = performance.now() - t;
        if (build === 'on') {
          m.tracer.stop();
          events.set(name, m.tracer.events.length / CALLS);
        }
        const key = `${build} ${name}`;
        times.set(key, [...(times.get(key) ?? []), ms]);
      }
    bar.tick();
  }
  bar.done();
  const ns = (key: string): number => (best(times.get(key) ?? [0]) * 1e6) / CALLS;
  report(`ioctl paths, ${CALLS} calls per round, fastest of ${ROUNDS} rounds, same process:`);
  for (const name of names) {
    const bare0 = ns(`notrace ${name}`);
    const off = ns(`off ${name}`);
    const on = ns(`on ${name}`);
    report(`  ${name} (${PATHS[name]})`);
    report(`    build without traced()      ${bare0.toFixed(0).padStart(6)} ns/ioctl   (baseline)`);
    report(
      `    traced(), tracing off       ${off.toFixed(0).padStart(6)} ns/ioctl   ${(off / bare0).toFixed(3)}x`,
    );
    report(
      `    traced(), tracing on        ${on.toFixed(0).padStart(6)} ns/ioctl   ${(on / bare0).toFixed(3)}x   (${(events.get(name) ?? 0).toFixed(1)} calls recorded per ioctl)`,
    );
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchTrace((l) => console.log(l));
