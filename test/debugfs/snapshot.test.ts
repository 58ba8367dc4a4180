import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeChanges,
  describeOpaque,
  diffSnapshots,
  takeSnapshot,
  toJson,
} from '../../src/debugfs/index.ts';
import { Host } from '../../src/host/index.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_CHECK_EXTENSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU,
} from '../../src/uapi/index.ts';
import {
  type VfioIommuDriverOps,
  vfioRegisterIommuDriver,
  vfioUnregisterIommuDriver,
} from '../../src/vfio/index.ts';

/*
 * The snapshot is Figure 0 as data: these tests build the figure's
 * objects through the raw syscalls and check every field and count the
 * snapshot reports, that taking it changes nothing, and that a backend's
 * debugSnapshot hook is what appears as iommu_data.
 */

/** an IOMMU backend that supports type 42 and describes its iommu_data through the hook */
const FAKE_TYPE = 42;
class FakeIommu {
  groups: number[] = [];
  debugSnapshot(): object {
    return {
      type: 'fake',
      groups: this.groups,
      mappings: 3,
      mappedBytes: 0x3000n,
      table: [{ iova: 0n, size: 4096n }],
    };
  }
}
const fakeOps: VfioIommuDriverOps = {
  name: 'fake-iommu',
  open: () => new FakeIommu(),
  release: () => {},
  ioctl: (_d, cmd, arg) => (cmd === VFIO_CHECK_EXTENSION ? (arg === BigInt(FAKE_TYPE) ? 1 : 0) : -25),
  attach_group: (d, g) => {
    (d as FakeIommu).groups.push(g.id);
    return 0;
  },
  detach_group: (d, g) => {
    const f = d as FakeIommu;
    f.groups = f.groups.filter((x) => x !== g.id);
  },
};

function machine(kernel: '4.1' | '6.12' = '4.1') {
  const host = new Host({ kernel });
  host.addPciDevice({ bdf: '0000:00:02.0', iommuGroup: 2, driver: 'e1000e' });
  host.addPciDevice({ bdf: '0000:00:03.0', iommuGroup: 3 });
  assert.equal(host.bind('0000:00:03.0', 'vfio-pci'), 0);
  host.inKernel(() => assert.equal(vfioRegisterIommuDriver(fakeOps), 0));
  const p = host.spawn({ comm: 'qemu' });
  const arg = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  return { host, p, arg };
}

function seedFigure(kernel: '4.1' | '6.12' = '4.1') {
  const m = machine(kernel);
  const { p, arg } = m;
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const group = p.open('/dev/vfio/3', O_RDWR);
  p.mem.write(arg, new Uint8Array(new Int32Array([container]).buffer));
  assert.equal(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, arg), 0);
  assert.equal(p.ioctl(container, VFIO_SET_IOMMU, FAKE_TYPE), 0);
  p.mem.write(arg, new TextEncoder().encode('0000:00:03.0\0'));
  const device = p.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, arg);
  assert.ok(device >= 0);
  return { ...m, container, group, device };
}

test('a fresh machine: struct vfio, the group vfio-pci made, devices and IOMMU groups', () => {
  const { host } = machine();
  const s = takeSnapshot(host);
  assert.deepEqual(s.host, { arch: 'x86_64', kernel: '4.1', pageSize: 4096, clockNs: 0 });
  assert.deepEqual(s.vfio?.iommuDrivers[0], {
    id: 'iommu_driver:fake-iommu',
    name: 'fake-iommu',
    module: null,
    moduleRefcnt: null,
  });
  assert.deepEqual(s.vfio?.groups, ['group:3']);
  assert.deepEqual(s.groups, [
    {
      id: 'group:3',
      iommuGroup: 3,
      minor: 0,
      devnode: '/dev/vfio/3',
      kref: 1,
      containerUsers: 0,
      opened: 0,
      openedFile: null,
      viable: true,
      container: null,
      devices: ['vfio_device:0000:00:03.0'],
      unbound: [],
    },
  ]);
  const nic = s.devices.find((d) => d.bdf === '0000:00:02.0');
  assert.equal(nic?.driver, 'e1000e');
  assert.equal(nic?.vfio, null);
  const edu = s.devices.find((d) => d.bdf === '0000:00:03.0');
  assert.equal(edu?.driver, 'vfio-pci');
  assert.equal(edu?.vfio?.ops, 'vfio-pci');
  assert.equal(edu?.vfio?.kref, 1);
  assert.equal(edu?.vfio?.group, 'group:3');
  const g2 = s.iommuGroups.find((g) => g.number === 2);
  assert.equal(g2?.viable, false);
  assert.deepEqual(g2?.blockers, [{ device: 'pci:0000:00:02.0', driver: 'e1000e' }]);
  assert.equal(s.iommuGroups.find((g) => g.number === 3)?.vfioGroup, 'group:3');
  assert.deepEqual(s.containers, []);
  assert.deepEqual(s.processes[0]?.fds, []);
});

test("the seed's figure: every holder and every count", () => {
  const { host, container, group, device } = seedFigure();
  const s = takeSnapshot(host);
  const c = s.containers[0];
  /* the container file's initial reference + the group's vfio_container_get */
  assert.equal(c?.kref, 2);
  assert.deepEqual(c?.groups, ['group:3']);
  assert.equal(c?.iommuDriver, 'fake-iommu');
  assert.deepEqual(c?.iommuData, {
    type: 'fake',
    groups: [3],
    mappings: 3,
    mappedBytes: '0x3000',
    table: [{ iova: '0x0', size: '0x1000' }],
  });
  const g = s.groups[0];
  /* the vfio device (its registration) + the group fd + the device fd's vfio_device_get */
  assert.equal(g?.kref, 3);
  /* the group in the container + the device fd */
  assert.equal(g?.containerUsers, 2);
  assert.equal(g?.opened, 1);
  assert.equal(g?.container, c?.id);
  const dev = s.devices.find((d) => d.bdf === '0000:00:03.0')?.vfio;
  assert.equal(dev?.kref, 2);
  const p = s.processes[0];
  assert.equal(p?.comm, 'qemu');
  const byFd = new Map(p?.fds.map((f) => [f.fd, s.files.find((x) => x.id === f.file)]));
  assert.deepEqual(
    [container, group, device].map((fd) => {
      const f = byFd.get(fd);
      return [f?.kind, f?.object, f?.fops, f?.fCount];
    }),
    [
      ['container', c?.id, 'vfio_fops', 1],
      ['group', 'group:3', 'vfio_group_fops', 1],
      ['device', 'vfio_device:0000:00:03.0', 'vfio_device_fops', 1],
    ],
  );
  assert.equal(p?.fds.find((f) => f.fd === device)?.cloexec, true);
});

test('6.12: opened_file instead of opened', () => {
  const { host, group } = seedFigure('6.12');
  const s = takeSnapshot(host);
  const g = s.groups[0];
  assert.equal(g?.opened, null);
  const file = s.processes[0]?.fds.find((f) => f.fd === group)?.file;
  assert.equal(g?.openedFile, file);
});

test('taking a snapshot changes nothing and leaves no trace', () => {
  const { host } = seedFigure();
  host.kernel.tracer.start();
  const before = host.kernel.tracer.events.length;
  const objects = host.liveObjects();
  const a = takeSnapshot(host);
  const b = takeSnapshot(host);
  assert.deepEqual(a, b);
  assert.deepEqual(host.liveObjects(), objects);
  assert.equal(host.kernel.tracer.events.length, before);
  assert.ok(host.kernel.tracer.enabled);
  host.kernel.tracer.stop();
  assert.deepEqual(JSON.parse(JSON.stringify(a)), a, 'plain JSON data');
});

test('ids are stable while an object lives; the diff names what changed', () => {
  const { host, p, container, group, device } = seedFigure();
  const a = takeSnapshot(host);
  assert.equal(p.close(device), 0);
  const b = takeSnapshot(host);
  const lines = describeChanges(diffSnapshots(a, b));
  /* the bus driver's device_data is vfio-pci's business: only its refcnt is asserted here */
  const vdev = lines.find((l) => l.startsWith('~ vfio_device:'));
  assert.match(vdev ?? '', /^~ vfio_device:0000:00:03\.0: kref 2 → 1, device_data\.refcnt 1 → 0/);
  assert.deepEqual(
    lines.filter((l) => l !== vdev),
    [
      '~ group:3: kref 3 → 2, container_users 2 → 1',
      `~ pid:${p.pid}: fd ${device} file:3(anon_inode:[vfio-device]) → ∅`,
      '~ module:vfio: refcnt 3 → 2',
      '~ module:vfio_pci: refcnt 1 → 0',
      '- file:3',
    ],
  );
  p.close(group);
  p.close(container);
  const c = takeSnapshot(host);
  assert.deepEqual(c.containers, []);
  assert.equal(c.groups[0]?.kref, 1);
  p.exit();
  host.inKernel(() => vfioUnregisterIommuDriver(fakeOps));
});

test('opaque objects: the hook, else the struct name and its kernel fields; plain data only', () => {
  assert.deepEqual(describeOpaque(undefined), null);
  class tce_like {
    it_size = 4;
    enabled = true;
    helperState = 'hidden';
    nested = { x: 1 };
  }
  assert.deepEqual(describeOpaque(new tce_like()), { type: 'tce_like', it_size: 4, enabled: true });
  assert.deepEqual(describeOpaque({ debugSnapshot: () => ({ n: 1n << 40n }) }), { n: '0x10000000000' });
  assert.deepEqual(
    describeOpaque({
      debugSnapshot: () => {
        throw new Error('boom');
      },
    }),
    { error: 'debugSnapshot() threw: boom' },
  );
  const long = toJson(Array.from({ length: 100 }, (_, i) => i)) as unknown[];
  assert.equal(long.length, 65);
  assert.equal(long[64], '… 36 more');
  assert.deepEqual(toJson(new Map([[1, 2n]])), { 1: '0x2' });
  assert.deepEqual(toJson(new Uint8Array(8)), '<8 bytes>');
});
