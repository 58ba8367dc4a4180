import assert from 'node:assert/strict';
import { Host, type Process } from '../../src/index.ts';
import {
  copyFromUser,
  copyToUser,
  currentKernel,
  type FilePos,
  fail,
  uarg,
  type Vma,
} from '../../src/kernel/index.ts';
import { definePciDriver, type PciDev, pciRegisterDriver } from '../../src/pci/index.ts';
import {
  type FieldTable,
  type StructLayout,
  type StructValue,
  VFIO_CHECK_EXTENSION,
} from '../../src/uapi/index.ts';
import {
  type VfioDeviceOps,
  type VfioIommuDriverOps,
  vfioAddGroupDev,
  vfioDelGroupDev,
  vfioRegisterIommuDriver,
} from '../../src/vfio/index.ts';

/*
 * A scripted kernel side for the library's tests: an IOMMU driver and a
 * VFIO bus driver whose ioctls, read/write and mmap are closures written
 * by each test, so every argument the library builds can be checked byte
 * by byte and every answer (short argsz, ENOSPC with a count, a positive
 * SET_IRQS) can be produced on demand. They register with the real VFIO
 * core, so the container, group and device fds are the kernel's own.
 */
export const SCRIPTED_IOMMU = 0x7e57;
export const SCRIPTED_BDF = '0000:00:07.0';
export const SCRIPTED_GROUP = 7;

export interface Script {
  /** container ioctls after SET_IOMMU (arg is the user pointer or value) */
  container?(cmd: number, arg: bigint): number;
  device?(cmd: number, arg: bigint): number;
  read?(buf: number, count: number, pos: bigint): number;
  write?(buf: number, count: number, pos: bigint): number;
  /** the bytes behind an mmap of the device fd (default: no mmap, -EINVAL) */
  mmapBacking?: Uint8Array;
  /** the device fd's release (the last close) */
  release?(): void;
}

export interface Scripted {
  readonly host: Host;
  readonly p: Process;
  /** every call the scripted drivers saw, in order */
  readonly calls: string[];
  readonly baseline: Record<string, number>;
  readonly spawned: Record<string, number>;
}

/** A user struct, read as the kernel's copy_from_user would. */
export function fromUser<F extends FieldTable>(
  arg: bigint,
  layout: StructLayout<F>,
  len = layout.size,
): StructValue<F> {
  const b = new Uint8Array(layout.size);
  assert.equal(copyFromUser(b, uarg(arg), Math.min(len, layout.size)), 0);
  return layout.decode(b);
}

export function bytesFromUser(addr: bigint | number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  assert.equal(copyFromUser(b, typeof addr === 'bigint' ? uarg(addr) : addr, len), 0);
  return b;
}

export function toUser(addr: bigint | number, bytes: Uint8Array): void {
  assert.equal(copyToUser(typeof addr === 'bigint' ? uarg(addr) : addr, bytes), 0);
}

export function scriptedMachine(script: Script, kernel: '4.1' | '6.12' = '4.1'): Scripted {
  const host = new Host({ arch: 'x86_64', kernel });
  const calls: string[] = [];
  const iommu: VfioIommuDriverOps = {
    name: 'scripted-iommu',
    open: (arg) => (arg === BigInt(SCRIPTED_IOMMU) ? {} : -22),
    release: () => {},
    ioctl(data, cmd, arg) {
      if (cmd === VFIO_CHECK_EXTENSION) return arg === BigInt(SCRIPTED_IOMMU) ? 1 : 0;
      calls.push(`container 0x${cmd.toString(16)}`);
      if (data === null || script.container === undefined) return fail(25, 'scripted: no container script');
      return script.container(cmd, arg);
    },
    attach_group: () => 0,
    detach_group: () => {},
  };
  const ops: VfioDeviceOps = {
    name: 'scripted',
    open: () => 0,
    release: () => script.release?.(),
    ioctl(_d, cmd, arg) {
      calls.push(`device 0x${cmd.toString(16)}`);
      return script.device === undefined ? fail(25, 'scripted: no device script') : script.device(cmd, arg);
    },
    read(_d, buf: number, count: number, ppos: FilePos) {
      calls.push(`read ${count} @0x${ppos.pos.toString(16)}`);
      return script.read === undefined ? -22 : script.read(buf, count, ppos.pos);
    },
    write(_d, buf: number, count: number, ppos: FilePos) {
      calls.push(`write ${count} @0x${ppos.pos.toString(16)}`);
      return script.write === undefined ? -22 : script.write(buf, count, ppos.pos);
    },
    mmap(_d, vma: Vma) {
      const backing = script.mmapBacking;
      calls.push(`mmap pgoff 0x${vma.vm_pgoff.toString(16)} len 0x${vma.length.toString(16)}`);
      const base = vma.vm_pgoff * currentKernel().pageSize;
      /* as vfio-pci: only BARs (index < 6) are mmappable */
      if (backing === undefined || base >= 6 * 2 ** 40) return fail(22, 'scripted: not mmappable');
      vma.vm_ops = {
        name: 'scripted_mmap',
        access(_v, off, buf, write) {
          calls.push(`mmio ${write ? 'write' : 'read'} ${buf.length} @0x${(base + off).toString(16)}`);
          if (write) backing.set(buf, off);
          else buf.set(backing.subarray(off, off + buf.length));
        },
      };
      return 0;
    },
  };
  host.inKernel(() => {
    assert.equal(vfioRegisterIommuDriver(iommu), 0);
    assert.equal(
      pciRegisterDriver(
        definePciDriver({
          name: 'vfio-scripted',
          driver_managed_dma: true,
          probe: (pdev: PciDev) => vfioAddGroupDev(pdev, ops, {}),
          *remove(pdev: PciDev) {
            yield* vfioDelGroupDev(pdev);
          },
        }),
      ),
      0,
    );
  });
  host.addPciDevice({ bdf: SCRIPTED_BDF, model: 'generic', iommuGroup: SCRIPTED_GROUP });
  assert.equal(host.bind(SCRIPTED_BDF, 'vfio-scripted'), 0);
  const baseline = host.liveObjects();
  const p = host.spawn({ rlimitMemlock: 64n << 20n });
  return { host, p, calls, baseline, spawned: host.liveObjects() };
}
