import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Presets, SingleBar } from 'cli-progress';
import * as lib from '../lib/index.ts';
import type { Syscalls } from '../uapi/index.ts';
import { type CliIo, UsageError } from './io.ts';
import type { Proc, Session } from './session.ts';

/*
 * `vfio-ts run PROGRAM`: a user program against a described machine. The
 * program is a module whose default export (or `main`) is
 *
 *   (sys: Syscalls, ctx: RunContext) => number | void | Promise<number | void>
 *
 * `sys` is a process of the machine (every call logged as a step); `ctx`
 * says which device and group to use, which IOMMU type the machine has,
 * and carries the userspace library. Its return value is the exit status.
 */
export interface RunContext {
  /** the device to use (a bdf) and its IOMMU group number */
  readonly device: string;
  readonly group: number;
  /** the container IOMMU type of this machine */
  readonly iommu: 'type1' | 'spapr';
  readonly arch: string;
  readonly kernel: string;
  /** arguments after `--` on the command line */
  readonly args: readonly string[];
  /** the typed userspace library (VfioContainer, VfioGroup, VfioDevice, ...) */
  readonly lib: typeof lib;
  /** a line for the step log */
  log(line: string): void;
  /** draw --graph from the machine as it is now (default: at the end of the run) */
  checkpoint(): void;
  /** a progress bar on stderr (only on a terminal) for long loops */
  progress(total: number, label?: string): { tick(n?: number): void; done(): void };
  /** the kernel log */
  dmesg(): string[];
}

export type Program = (sys: Syscalls, ctx: RunContext) => number | undefined | Promise<number | undefined>;

export async function loadProgram(file: string): Promise<Program> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(resolve(file)))
      throw new UsageError(`${file}: no such program`);
    throw e;
  }
  const fn = mod.default ?? mod.main ?? mod.run;
  if (typeof fn !== 'function')
    throw new UsageError(
      `${file}: exports no function (export default, main or run): (sys, ctx) => exit status`,
    );
  return fn as Program;
}

/** the device a run or the demo uses: --device, else one on vfio-pci, else an edu, else the first */
export function targetDevice(s: Session, want?: string): { bdf: string; group: number } {
  const devs = s.opts.desc.devices;
  const d =
    want !== undefined
      ? devs.find((x) => x.bdf === want.toLowerCase())
      : (devs.find((x) => x.driver === 'vfio-pci') ??
        devs.find((x) => x.model === 'edu') ??
        devs.find((x) => x.driver === undefined) ??
        devs[0]);
  if (d === undefined)
    throw new UsageError(
      want === undefined ? 'the host has no PCI devices' : `--device ${want}: no such device`,
    );
  const group = s.host.device(d.bdf)?.iommu_group?.id;
  if (group === undefined) throw new UsageError(`${d.bdf} has no IOMMU group`);
  return { bdf: d.bdf, group };
}

export function progressBar(io: CliIo, total: number, label = ''): { tick(n?: number): void; done(): void } {
  if (!io.progress || total <= 0) return { tick: () => {}, done: () => {} };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total}`,
      stream: process.stderr,
      clearOnComplete: true,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  let v = 0;
  return {
    tick: (n = 1) => {
      v += n;
      bar.update(v);
    },
    done: () => bar.stop(),
  };
}

export async function runProgram(
  s: Session,
  program: Program,
  o: { device?: string; bind: boolean; args: readonly string[]; io: CliIo; comm?: string },
): Promise<{ status: number; error: unknown }> {
  const { bdf, group } = targetDevice(s, o.device);
  if (o.bind && s.host.device(bdf)?.driver?.name !== 'vfio-pci') {
    /* bind every function of the group, as an administrator must for the group to be viable */
    for (const d of s.opts.desc.devices) {
      const dev = s.host.device(d.bdf);
      if (dev?.iommu_group?.id !== group || dev.driver?.name === 'vfio-pci') continue;
      s.admin(`bind ${d.bdf} -> vfio-pci (driver_override, drivers_probe)`, () =>
        s.host.bind(d.bdf, 'vfio-pci'),
      );
    }
  }
  const { raw, sys } = s.spawn(o.comm);
  const ctx: RunContext = {
    device: bdf,
    group,
    iommu: s.arch === 'ppc64' ? 'spapr' : 'type1',
    arch: s.arch,
    kernel: s.host.version,
    args: o.args,
    lib,
    log: (line) => s.recorder.note(line),
    checkpoint: () => s.checkpoint(),
    progress: (total, label) => progressBar(o.io, total, label),
    dmesg: () => s.host.dmesg(),
  };
  let status = 0;
  let error: unknown;
  try {
    const r = await program(sys as Proc, ctx);
    status = typeof r === 'number' ? r : 0;
  } catch (e) {
    error = e;
    status = 1;
  }
  if (s.checkpointed === undefined) s.checkpoint();
  s.recorder.step(
    `exit_group(${status})`,
    () => {
      raw.exit();
      return 0;
    },
    { pid: raw.pid, comm: raw.task.comm },
  );
  return { status, error };
}
