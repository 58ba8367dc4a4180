import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { type HostDescription, HostDescriptionError, loadHostDescription } from '../host/index.ts';
import { VfioError } from '../lib/index.ts';
import { runDemoFlow } from './demo.ts';
import { builtinHost } from './hosts.ts';
import { type CliIo, EXIT_FAIL, EXIT_OK, EXIT_USAGE, Painter, processIo, UsageError } from './io.ts';
import { loadProgram, runProgram } from './run.ts';
import { graphFormatOf, printer, Session } from './session.ts';
import { topologyData, topologyLines } from './topology.ts';

/*
 * The vfio-ts command. Exit status: 0 when the command did what it says,
 * 1 when the run failed (a program's own non-zero status, a failed demo
 * step, an exception), 2 when the command line or a host file is wrong.
 */
const VERSION = '0.1.0';

interface HostOpts {
  host?: string;
  arch?: string;
  kernel?: string;
}

interface Machine {
  desc: HostDescription;
  file?: string;
  notes: string[];
}

function machineOf(o: HostOpts): Machine {
  if (o.arch !== undefined && o.arch !== 'x86_64' && o.arch !== 'ppc64')
    throw new UsageError(`--arch: "${o.arch}" is not x86_64 or ppc64`);
  if (o.kernel !== undefined && o.kernel !== '4.1' && o.kernel !== '6.12')
    throw new UsageError(`--kernel: "${o.kernel}" is not 4.1 or 6.12`);
  if (o.host === undefined) {
    const { desc, notes } = builtinHost(
      (o.arch ?? 'x86_64') as 'x86_64' | 'ppc64',
      o.kernel as '4.1' | '6.12' | undefined,
    );
    return { desc, notes };
  }
  const desc = loadHostDescription(o.host);
  if (o.arch !== undefined && o.arch !== desc.arch)
    throw new UsageError(`--arch ${o.arch} contradicts ${o.host}, which describes a ${desc.arch} host`);
  if (o.kernel === undefined || o.kernel === desc.kernel) return { desc, file: o.host, notes: [] };
  return { desc: { ...desc, kernel: o.kernel as '4.1' | '6.12' }, file: o.host, notes: [] };
}

/** --trace / --filter values: comma-separated glob patterns, repeatable */
function patterns(v: unknown): string[] | undefined {
  if (v === undefined || v === true || v === false) return undefined;
  const list = Array.isArray(v) ? v : [v];
  const out = list
    .flatMap((x) => String(x).split(','))
    .map((x) => x.trim())
    .filter((x) => x !== '');
  return out.length > 0 ? out : undefined;
}

function hostOptions(cmd: Command, withArch = true): Command {
  cmd.option('--host <file>', 'host description file (JSON, see schemas/host.schema.json)');
  if (withArch) {
    cmd.addOption(
      new Option('--arch <arch>', 'built-in machine: x86_64 (type1) or ppc64 (sPAPR TCE)').choices([
        'x86_64',
        'ppc64',
      ]),
    );
    cmd.addOption(new Option('--kernel <version>', 'kernel profile').choices(['4.1', '6.12']));
  }
  return cmd;
}

function sessionFor(m: Machine, trace: unknown, changes: boolean): Session {
  const filter = patterns(trace);
  return new Session({
    desc: m.desc,
    ...(m.file !== undefined ? { file: m.file } : {}),
    trace: trace !== undefined && trace !== false,
    ...(filter !== undefined ? { traceFilter: filter } : {}),
    changes,
  });
}

async function writeGraph(s: Session, file: string, format: string | undefined, io: CliIo): Promise<void> {
  const fmt = graphFormatOf(file, format);
  const text = await s.graph(fmt);
  if (file === '-') io.out(text.replace(/\n$/, ''));
  else {
    writeFileSync(file, text);
    io.err(`graph (${fmt}) written to ${file}`);
  }
}

export function buildProgram(io: CliIo, setStatus: (n: number) => void): Command {
  const paint = new Painter(io.color);
  const program = new Command('vfio-ts')
    .description(
      'The Linux VFIO framework in a simulated machine: run VFIO programs, watch the kernel do it (function_graph traces), draw its objects.',
    )
    .version(VERSION)
    .showHelpAfterError('(vfio-ts --help lists the commands)')
    .exitOverride()
    .configureOutput({
      writeOut: (t) => io.out(t.replace(/\n$/, '')),
      writeErr: (t) => io.err(t.replace(/\n$/, '')),
      outputError: (t, write) => write(t),
    });

  /* ---- demo ---- */
  hostOptions(
    program
      .command('demo')
      .description(
        "boot a machine, hand a device to vfio-pci, run the kernel documentation's VFIO sequence and an edu DMA with an MSI, and show every step",
      ),
  )
    .option(
      '--trace [patterns]',
      'show the kernel functions each step ran (function_graph), optionally only matching ones',
    )
    .option(
      '--graph <file>',
      'write the object graph at the busiest moment (.svg, .dot or .json)',
      'vfio-demo.svg',
    )
    .option('--no-graph', 'do not write the graph')
    .option('--no-changes', 'leave out the object changes under each step')
    .option('--json', 'print the steps and the result as JSON')
    .action(
      async (o: HostOpts & { trace?: unknown; graph: string | false; changes: boolean; json?: boolean }) => {
        const m = machineOf(o);
        const s = sessionFor(m, o.trace, o.changes);
        const json = o.json === true;
        if (!json) {
          io.out(paint.bold(`vfio-ts demo: ${s.arch}, kernel profile ${s.host.version}`));
          if (m.desc.description !== undefined) io.out(m.desc.description);
          for (const n of m.notes) io.out(paint.warn(`note: ${n}`));
          s.recorder.onStep = printer(io, { changes: o.changes, trace: s.trace !== undefined });
        }
        const r = runDemoFlow(s, (t) => {
          if (!json) io.out(`\n${paint.bold(`== ${t} ==`)}`);
        });
        const ok = r.completed && r.baseline;
        if (json) {
          io.out(
            JSON.stringify(
              {
                host: { arch: s.arch, kernel: s.host.version },
                notes: m.notes,
                steps: s.recorder.steps,
                result: r,
                dmesg: s.host.dmesg(),
              },
              null,
              2,
            ),
          );
        } else {
          io.out('');
          io.out(paint.bold('== summary =='));
          io.out(`${s.recorder.steps.length} steps, ${s.recorder.steps.filter((x) => !x.ok).length} failed`);
          if (r.stoppedAt !== undefined) io.out(paint.bad(`stopped at: ${r.stoppedAt}`));
          if (r.completed) {
            io.out(
              `DMA RAM -> device -> RAM through the IOMMU: ${r.dmaVerified ? paint.ok('bytes match') : paint.bad('MISMATCH')}`,
            );
            io.out(`MSIs delivered on the eventfd: ${r.msis}`);
            for (const f of r.faults) io.out(`IOMMU fault logged: ${f}`);
          }
          io.out(
            `host back to its baseline after exit: ${r.baseline ? paint.ok('yes') : paint.bad(`NO ${JSON.stringify(r.leaked)}`)}`,
          );
        }
        if (o.graph !== false) await writeGraph(s, o.graph, undefined, io);
        setStatus(ok ? EXIT_OK : EXIT_FAIL);
      },
    );

  /* ---- topology ---- */
  hostOptions(
    program
      .command('topology')
      .description(
        'what lspci -k and /sys/kernel/iommu_groups show: devices, drivers, IOMMU groups, and why a group is not viable',
      ),
  )
    .option('--json', 'print the topology as JSON')
    .action((o: HostOpts & { json?: boolean }) => {
      const m = machineOf(o);
      const s = sessionFor(m, undefined, false);
      const snap = s.snapshot();
      const t = topologyData(snap, m.desc);
      if (o.json === true) io.out(JSON.stringify(t, null, 2));
      else for (const l of topologyLines(t, snap, paint)) io.out(l);
      setStatus(EXIT_OK);
    });

  /* ---- run ---- */
  hostOptions(
    program
      .command('run')
      .description(
        "run a program (a module whose default export is (sys, ctx) => exit status) against a described machine; the exit status is the program's",
      )
      .argument('<program>', 'the program module (.ts or .js)')
      .argument('[args...]', 'arguments for the program (after --)'),
  )
    .option('--device <bdf>', 'the device to use (default: one on vfio-pci, else an edu, else the first)')
    .option('--no-bind', "do not bind the device's group to vfio-pci first")
    .option('--trace [patterns]', 'show the kernel functions each syscall ran')
    .option('--graph <file>', 'write the object graph (at ctx.checkpoint(), else at the end)')
    .option('--changes', 'show the object changes under each syscall')
    .option('-q, --quiet', "no step log (the program's own ctx.log lines still print)")
    .option('--json', 'print the steps and the exit status as JSON')
    .action(
      async (
        file: string,
        args: string[],
        o: HostOpts & {
          device?: string;
          bind: boolean;
          trace?: unknown;
          graph?: string;
          changes?: boolean;
          quiet?: boolean;
          json?: boolean;
        },
      ) => {
        const m = machineOf(o);
        const s = sessionFor(m, o.trace, o.changes === true);
        const prog = await loadProgram(file);
        const json = o.json === true;
        if (!json) {
          if (o.quiet !== true)
            s.recorder.onStep = printer(io, { changes: o.changes === true, trace: s.trace !== undefined });
          s.recorder.onNote = (t) => io.out(paint.dim(`# ${t}`));
        }
        const r = await runProgram(s, prog, {
          ...(o.device !== undefined ? { device: o.device } : {}),
          bind: o.bind,
          args,
          io,
        });
        if (r.error !== undefined) io.err(`vfio-ts: ${file}: ${errorText(r.error)}`);
        if (json)
          io.out(
            JSON.stringify(
              { status: r.status, steps: s.recorder.steps, notes: s.recorder.notes, dmesg: s.host.dmesg() },
              null,
              2,
            ),
          );
        if (o.graph !== undefined) await writeGraph(s, o.graph, undefined, io);
        setStatus(r.status);
      },
    );

  /* ---- trace ---- */
  hostOptions(
    program
      .command('trace')
      .description(
        "the kernel functions a run called, as ftrace's function_graph tracer prints them (the demo's VFIO sequence unless a program is given)",
      )
      .argument('[program]', 'a program module to trace instead of the demo'),
  )
    .option(
      '-f, --filter <patterns...>',
      'only these functions and what they call (globs, comma-separated; !glob hides)',
    )
    .option('--device <bdf>', 'the device a program uses')
    .option('--json', 'print the trace records as JSON')
    .action(
      async (
        file: string | undefined,
        o: HostOpts & { filter?: string[]; device?: string; json?: boolean },
      ) => {
        const m = machineOf(o);
        const s = sessionFor(m, true, false);
        const status = await runTarget(s, file, o.device, io);
        const filter = patterns(o.filter);
        const opts = filter === undefined ? {} : { filter };
        if (o.json === true) io.out(JSON.stringify(s.trace?.records(opts) ?? [], null, 2));
        else for (const l of s.trace?.lines(opts) ?? []) io.out(l);
        setStatus(status);
      },
    );

  /* ---- graph ---- */
  hostOptions(
    program
      .command('graph')
      .description(
        'the live VFIO objects (struct vfio, groups, containers, devices, iommu data, fds) as a graph, after the demo or a program',
      )
      .argument('[program]', 'a program module to run instead of the demo'),
  )
    .addOption(
      new Option('--format <format>', 'svg, dot or json (default: from -o, else dot)').choices([
        'svg',
        'dot',
        'json',
      ]),
    )
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .option('--device <bdf>', 'the device a program uses')
    .option('--at-end', 'draw the machine after the run has cleaned up, not at its busiest moment')
    .action(
      async (
        file: string | undefined,
        o: HostOpts & { format?: string; output?: string; device?: string; atEnd?: boolean },
      ) => {
        const m = machineOf(o);
        const s = sessionFor(m, undefined, false);
        const status = await runTarget(s, file, o.device, io);
        if (o.atEnd === true) s.checkpointed = undefined;
        await writeGraph(s, o.output ?? '-', o.format ?? (o.output === undefined ? 'dot' : undefined), io);
        setStatus(status);
      },
    );

  program.addHelpText(
    'after',
    `
Examples:
  vfio-ts demo                          the VFIO flow on x86_64 (type1), step by step
  vfio-ts demo --arch ppc64 --trace     the same on POWER (sPAPR TCE) with the kernel's call trees
  vfio-ts demo --graph vfio.svg         and a picture of the objects
  vfio-ts topology --host examples/hosts/non-viable.json
  vfio-ts run examples/canonical.raw.ts --trace 'vfio_ioctl_*'
  vfio-ts trace -f vfio_ioctl_set_iommu --arch ppc64
  vfio-ts graph --format svg -o vfio.svg`,
  );
  return program;
}

/** the demo's flow (quietly) or a program, for trace and graph */
async function runTarget(
  s: Session,
  file: string | undefined,
  device: string | undefined,
  io: CliIo,
): Promise<number> {
  if (file === undefined) {
    const r = runDemoFlow(s, () => {});
    return r.completed ? EXIT_OK : EXIT_FAIL;
  }
  const prog = await loadProgram(file);
  const r = await runProgram(s, prog, {
    ...(device !== undefined ? { device } : {}),
    bind: true,
    args: [],
    io,
  });
  if (r.error !== undefined) io.err(`vfio-ts: ${file}: ${errorText(r.error)}`);
  return r.status;
}

function errorText(e: unknown): string {
  if (e instanceof VfioError) return e.message;
  if (e instanceof Error) return e.stack ?? e.message;
  return String(e);
}

/** run the CLI with argv (without node and the script); resolves to the exit status */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let status = EXIT_OK;
  const program = buildProgram(io, (n) => {
    status = n;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return status;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT_OK;
      return EXIT_USAGE;
    }
    if (e instanceof HostDescriptionError || e instanceof UsageError) {
      io.err(`vfio-ts: ${e.message}`);
      return EXIT_USAGE;
    }
    io.err(`vfio-ts: ${errorText(e)}`);
    return EXIT_FAIL;
  }
}

const script = process.argv[1];
if (script !== undefined && import.meta.url === pathToFileURL(script).href) {
  process.exitCode = await runCli(process.argv.slice(2));
}
