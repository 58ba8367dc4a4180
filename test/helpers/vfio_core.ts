import type { Host, Process } from '../../src/index.ts';
import type { IommuGroup } from '../../src/iommu/index.ts';
import type { Module } from '../../src/kernel/index.ts';
import { definePciDriver } from '../../src/pci/index.ts';
import {
  O_RDWR,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_RESET,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU,
  vfio_group_status,
} from '../../src/uapi/index.ts';
import {
  type VfioContainer,
  type VfioDeviceOps,
  type VfioGroup,
  type VfioIommuDriverOps,
  vfioAddGroupDev,
  vfioDelGroupDev,
  vfioOf,
  vfioRegisterIommuDriver,
  vfioUnregisterIommuDriver,
} from '../../src/vfio/index.ts';
import { putCString, putS32, userAlloc } from './user.ts';

/*
 * Helpers for the VFIO core tests: a scriptable IOMMU driver that records
 * every call, hosts with devices in groups, and the usual open/attach steps
 * done through the raw syscalls.
 */
export const TEST_IOMMU = 0x7e57n;

export interface CallLog {
  readonly calls: string[];
}

export interface TestIommuOptions {
  readonly name?: string;
  /** extension ids this driver answers CHECK_EXTENSION with 1 for */
  readonly types?: readonly bigint[];
  /** open fails with this -errno */
  readonly openErr?: number;
  /** attach_group fails with this -errno on the n-th attach (1-based) */
  readonly attachFailAt?: number;
  readonly attachErr?: number;
  /** answer for ioctls other than CHECK_EXTENSION */
  readonly ioctl?: (data: object | null, cmd: number, arg: bigint) => number;
  readonly read?: VfioIommuDriverOps['read'];
  readonly write?: VfioIommuDriverOps['write'];
  readonly mmap?: VfioIommuDriverOps['mmap'];
  readonly owner?: Module;
  /** throw from this op (to test the oops path) */
  readonly throwIn?: 'open' | 'attach_group' | 'ioctl';
}

export class TestIommuData {
  readonly groups: IommuGroup[] = [];
  constructor(readonly arg: bigint) {}
}

export function testIommuOps(log: CallLog, o: TestIommuOptions = {}): VfioIommuDriverOps {
  const name = o.name ?? 'test_iommu';
  const types = o.types ?? [TEST_IOMMU];
  let attaches = 0;
  const ops: VfioIommuDriverOps = {
    name,
    owner: o.owner,
    open(arg) {
      log.calls.push(`${name}.open(${arg})`);
      if (o.throwIn === 'open') throw new Error(`${name}: open exploded`);
      if (o.openErr !== undefined) return o.openErr;
      return new TestIommuData(arg);
    },
    release(data) {
      log.calls.push(`${name}.release(${(data as TestIommuData).arg})`);
    },
    ioctl(data, cmd, arg) {
      if (o.throwIn === 'ioctl') throw new Error(`${name}: ioctl exploded`);
      if (cmd === VFIO_CHECK_EXTENSION) {
        log.calls.push(`${name}.check(${data === null ? 'null' : 'data'},${arg})`);
        return types.includes(arg) ? 1 : 0;
      }
      log.calls.push(`${name}.ioctl(0x${cmd.toString(16)},${arg})`);
      return o.ioctl?.(data, cmd, arg) ?? -25;
    },
    attach_group(data, group) {
      attaches++;
      log.calls.push(`${name}.attach(${group.id})`);
      if (o.throwIn === 'attach_group') throw new Error(`${name}: attach exploded`);
      if (o.attachFailAt !== undefined && attaches === o.attachFailAt) return o.attachErr ?? -16;
      (data as TestIommuData).groups.push(group);
      return 0;
    },
    detach_group(data, group) {
      log.calls.push(`${name}.detach(${group.id})`);
      const d = data as TestIommuData;
      const i = d.groups.indexOf(group);
      if (i >= 0) d.groups.splice(i, 1);
    },
  };
  if (o.read !== undefined) Object.assign(ops, { read: o.read });
  if (o.write !== undefined) Object.assign(ops, { write: o.write });
  if (o.mmap !== undefined) Object.assign(ops, { mmap: o.mmap });
  return ops;
}

export function registerIommu(host: Host, ops: VfioIommuDriverOps): number {
  return host.inKernel(() => vfioRegisterIommuDriver(ops));
}

export function unregisterIommu(host: Host, ops: VfioIommuDriverOps): void {
  host.inKernel(() => vfioUnregisterIommuDriver(ops));
}

/** a host with the test IOMMU driver and vfio-pci devices in the given groups */
export function vfioHost(
  HostCtor: typeof Host,
  kernel: '4.1' | '6.12',
  devices: readonly { bdf: string; group: number; driver?: string }[] = [{ bdf: '0000:00:03.0', group: 3 }],
): { host: Host; log: CallLog; ops: VfioIommuDriverOps } {
  const host = new HostCtor({ arch: 'x86_64', kernel });
  /* start from an empty IOMMU driver registry: the real backends answer their own types */
  for (const d of [...(vfioOf(host.kernel)?.iommu_drivers_list ?? [])]) unregisterIommu(host, d.ops);
  const log: CallLog = { calls: [] };
  const ops = testIommuOps(log);
  registerIommu(host, ops);
  for (const d of devices) {
    host.addPciDevice({ bdf: d.bdf, model: 'generic', iommuGroup: d.group });
    const r = host.bind(d.bdf, d.driver ?? 'vfio-pci');
    if (r !== 0) throw new Error(`bind ${d.bdf}: ${r}`);
  }
  return { host, log, ops };
}

/** vfio_group of an iommu group id, as the core sees it */
export function groupOf(host: Host, id: number): VfioGroup | undefined {
  return vfioOf(host.kernel)?.group_list.find((g) => g.iommu_group?.id === id);
}

export function containerOf(p: Process, fd: number): VfioContainer {
  const f = p.task.files.get(fd);
  if (f === undefined) throw new Error(`fd ${fd} not open`);
  return f.private_data as VfioContainer;
}

/** user scratch memory for ioctl arguments */
export class Scratch {
  readonly addr: bigint;
  constructor(readonly p: Process) {
    this.addr = userAlloc(p, 8192);
  }
  status(fd: number): { ret: number; argsz: number; flags: number } {
    this.p.mem.write(this.addr, vfio_group_status.encode({ argsz: vfio_group_status.size, flags: 0xdead }));
    const ret = this.p.ioctl(fd, VFIO_GROUP_GET_STATUS, this.addr);
    const v = vfio_group_status.decode(this.p.mem.read(this.addr, vfio_group_status.size));
    return { ret, argsz: v.argsz, flags: v.flags };
  }
  setContainer(groupFd: number, containerFd: number): number {
    putS32(this.p, this.addr, containerFd);
    return this.p.ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, this.addr);
  }
  deviceFd(groupFd: number, name: string): number {
    putCString(this.p, this.addr, name);
    return this.p.ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, this.addr);
  }
}

/** open container + group, attach, SET_IOMMU(TEST_IOMMU), get the device fd */
export function fullSetup(
  p: Process,
  group: number,
  bdf: string,
): { s: Scratch; container: number; groupFd: number; device: number } {
  const s = new Scratch(p);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const groupFd = p.open(`/dev/vfio/${group}`, O_RDWR);
  const r1 = s.setContainer(groupFd, container);
  const r2 = p.ioctl(container, VFIO_SET_IOMMU, TEST_IOMMU);
  const device = s.deviceFd(groupFd, bdf);
  if (container < 0 || groupFd < 0 || r1 !== 0 || r2 !== 0 || device < 0)
    throw new Error(`setup failed: ${container} ${groupFd} ${r1} ${r2} ${device}`);
  return { s, container, groupFd, device };
}

/* ---- a VFIO bus driver of the tests' own, with scriptable device ops ---- */

export interface TestDeviceData {
  readonly name: string;
  opens: number;
  releases: number;
  readonly requests: { count: number; timeNs: number }[];
}

export interface TestBusOptions {
  /** ops->open fails with this -errno */
  openErr?: number;
  /** device ops implement read/write/mmap/ioctl */
  rw?: boolean;
  /** implement ->request */
  request?: boolean;
}

/** register a "test-vfio" PCI driver whose probe/remove call vfio_add_group_dev/vfio_del_group_dev */
export function registerTestBusDriver(
  host: Host,
  log: CallLog,
  o: TestBusOptions = {},
): Map<string, TestDeviceData> {
  const datas = new Map<string, TestDeviceData>();
  const ops: VfioDeviceOps = {
    name: 'test-vfio',
    open(d) {
      const td = d as TestDeviceData;
      log.calls.push(`open(${td.name})`);
      if (o.openErr !== undefined) return o.openErr;
      td.opens++;
      return 0;
    },
    release(d) {
      const td = d as TestDeviceData;
      log.calls.push(`release(${td.name})`);
      td.releases++;
    },
  };
  if (o.rw === true) {
    Object.assign(ops, {
      read: (_d: unknown, _b: number, count: number, ppos: { pos: bigint }) => count + Number(ppos.pos),
      write: (_d: unknown, _b: number, count: number) => count,
      ioctl: (_d: unknown, cmd: number) => (cmd === VFIO_DEVICE_RESET ? 0 : -25),
    });
  }
  if (o.request === true) {
    Object.assign(ops, {
      request: (d: unknown, count: number) => {
        const td = d as TestDeviceData;
        log.calls.push(`request(${td.name},${count})`);
        td.requests.push({ count, timeNs: host.kernel.clock.now });
      },
    });
  }
  const drv = definePciDriver({
    name: 'test-vfio',
    driver_managed_dma: true,
    probe: (pdev) => {
      const td: TestDeviceData = { name: pdev.name, opens: 0, releases: 0, requests: [] };
      const r = vfioAddGroupDev(pdev, ops, td);
      if (r === 0) datas.set(pdev.name, td);
      return r;
    },
    remove: function* (pdev) {
      yield* vfioDelGroupDev(pdev);
      datas.delete(pdev.name);
    },
  });
  host.inKernel(() => host.pci.registerDriver(drv));
  return datas;
}
