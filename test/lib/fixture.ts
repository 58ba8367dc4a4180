import assert from 'node:assert/strict';
import { Host, type HostOptions, type Process } from '../../src/index.ts';
import { VfioError } from '../../src/lib/index.ts';

/*
 * Shared setup of the library tests: a host with devices bound to
 * vfio-pci, a process, and assertions on VfioError.
 */
export interface Machine {
  readonly host: Host;
  readonly p: Process;
  /** liveObjects() before the process was spawned */
  readonly baseline: Record<string, number>;
  /** liveObjects() right after the process was spawned (nothing open yet) */
  readonly spawned: Record<string, number>;
}

export interface DeviceSpec {
  readonly bdf: string;
  readonly group: number;
  readonly model?: string;
  /** bind to this host driver instead of vfio-pci */
  readonly driver?: string;
  readonly [extra: string]: unknown;
}

export function machine(
  devices: readonly DeviceSpec[],
  opts: HostOptions = {},
  memlock = 256n << 20n,
): Machine {
  const host = new Host({ arch: 'x86_64', kernel: '4.1', ...opts });
  for (const d of devices) {
    const { bdf, group, model, driver, ...rest } = d;
    host.addPciDevice({
      ...rest,
      bdf,
      model: model ?? 'generic',
      iommuGroup: group,
      ...(driver !== undefined ? { driver } : {}),
    });
    if (driver === undefined) assert.equal(host.bind(bdf, 'vfio-pci'), 0, `bind ${bdf}`);
  }
  const baseline = host.liveObjects();
  const p = host.spawn({ rlimitMemlock: memlock });
  return { host, p, baseline, spawned: host.liveObjects() };
}

/** Everything the library opened is closed: the host is as right after the spawn. */
export function assertClosed(m: Machine): void {
  assert.deepEqual(m.host.liveObjects(), m.spawned);
}

/** Exit the process and check the host is back where it was before the process. */
export function assertBaseline(m: Machine): void {
  m.p.exit();
  assert.deepEqual(m.host.liveObjects(), m.baseline);
}

export interface ExpectedError {
  readonly errno: number;
  readonly code: string;
  readonly syscall?: string;
  readonly request?: string;
  readonly fd?: number;
  readonly message?: string | RegExp;
}

/** fn throws a VfioError with exactly these fields. */
export function throwsVfio(fn: () => unknown, want: ExpectedError): VfioError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof VfioError, `expected a VfioError, got ${String(caught)}`);
  assert.equal(caught.errno, want.errno);
  assert.equal(caught.code, want.code);
  if (want.syscall !== undefined) assert.equal(caught.syscall, want.syscall);
  if (want.request !== undefined) assert.equal(caught.request, want.request);
  if (want.fd !== undefined) assert.equal(caught.fd, want.fd);
  if (typeof want.message === 'string') assert.equal(caught.message, want.message);
  else if (want.message !== undefined) assert.match(caught.message, want.message);
  return caught;
}
