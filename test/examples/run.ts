import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EXAMPLE_MEMLOCK, exampleHost } from '../../examples/setup.ts';
import type { Host, HostOptions, Process } from '../../src/index.ts';

/* The hosts the example tests run the examples on. */
export const CONFIGS: readonly { readonly arch: 'x86_64' | 'ppc64'; readonly kernel: '4.1' | '6.12' }[] = [
  { arch: 'x86_64', kernel: '4.1' },
  { arch: 'x86_64', kernel: '6.12' },
  { arch: 'ppc64', kernel: '4.1' },
  { arch: 'ppc64', kernel: '6.12' },
];

export interface ExampleRun {
  readonly host: Host;
  readonly p: Process;
  /** liveObjects() right after the spawn */
  readonly spawned: Record<string, number>;
  /** liveObjects() before the spawn */
  readonly baseline: Record<string, number>;
}

export function exampleMachine(opts: HostOptions, model: string, bdf: string, group: number): ExampleRun {
  const host = exampleHost(opts, [{ bdf, model, iommuGroup: group }]);
  const baseline = host.liveObjects();
  const p = host.spawn({ rlimitMemlock: EXAMPLE_MEMLOCK });
  return { host, p, baseline, spawned: host.liveObjects() };
}

/** The example closed everything it opened; the process exits and the host is as before it. */
export function assertTidy(r: ExampleRun): void {
  assert.deepEqual(
    r.host.liveObjects(),
    r.spawned,
    'every fd, mapping and pin released by the example itself',
  );
  assert.equal(r.p.lockedVm, 0);
  r.p.exit();
  assert.deepEqual(r.host.liveObjects(), r.baseline);
}

/** Run an example as a program (its CLI entry: examples/<name>), return its stdout. */
export function runCli(name: string, args: readonly string[] = []): string {
  const file = fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `${name} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
