import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../../src/index.ts';
import {
  type File,
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_READ,
  FMODE_WRITE,
} from '../../../src/kernel/index.ts';
import {
  EFAULT,
  EINVAL,
  EIO,
  EMFILE,
  ENODEV,
  ENOTTY,
  ESPIPE,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  RLIMIT_NOFILE,
  SEEK_CUR,
  SEEK_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_RESET,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_SET_IOMMU,
} from '../../../src/uapi/index.ts';
import type { VfioDevice } from '../../../src/vfio/index.ts';
import { userAlloc } from '../../helpers/user.ts';
import {
  type CallLog,
  groupOf,
  registerTestBusDriver,
  Scratch,
  TEST_IOMMU,
  vfioHost,
} from '../../helpers/vfio_core.ts';

/* VFIO_GROUP_GET_DEVICE_FD and the device fd it returns */
const PROFILES = ['4.1', '6.12'] as const;
const BDF = '0000:00:03.0';

function testBusHost(kernel: '4.1' | '6.12', o: Parameters<typeof registerTestBusDriver>[2] = {}) {
  const { host, log: iommuLog } = vfioHost(Host, kernel, []);
  const log: CallLog = { calls: [] };
  const datas = registerTestBusDriver(host, log, o);
  host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
  assert.equal(host.bind(BDF, 'test-vfio'), 0);
  const td = datas.get(BDF);
  if (td === undefined) throw new Error('probe did not register the device');
  return { host, log, iommuLog, td };
}

/** container + group attached, IOMMU set (unless told otherwise) */
function attached(host: Host, setIommu = true) {
  const p = host.spawn();
  const s = new Scratch(p);
  const c = p.open('/dev/vfio/vfio', O_RDWR);
  const g = p.open('/dev/vfio/3', O_RDWR);
  assert.equal(s.setContainer(g, c), 0);
  if (setIommu) assert.equal(p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU), 0);
  return { p, s, c, g };
}

for (const kernel of PROFILES) {
  describe(`VFIO_GROUP_GET_DEVICE_FD preconditions (${kernel})`, () => {
    it('group not in a container: -EINVAL; unknown name there: 4.1 -EINVAL, 6.12 -ENODEV', () => {
      const { host, log } = testBusHost(kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const g = p.open('/dev/vfio/3', O_RDWR);
      assert.equal(s.deviceFd(g, BDF), -EINVAL);
      assert.equal(s.deviceFd(g, '0000:00:09.0'), kernel === '4.1' ? -EINVAL : -ENODEV);
      assert.equal(log.calls.length, 0);
    });

    it('attached without an IOMMU set: -EINVAL; unknown name: 4.1 -EINVAL, 6.12 -ENODEV', () => {
      const { host, log, td } = testBusHost(kernel);
      const { s, g } = attached(host, false);
      assert.equal(s.deviceFd(g, BDF), -EINVAL);
      assert.equal(s.deviceFd(g, 'nope'), kernel === '4.1' ? -EINVAL : -ENODEV);
      assert.equal(td.opens, 0);
      assert.ok(!log.calls.some((x) => x.startsWith('open')));
      assert.equal(groupOf(host, 3)?.container_users.read(), 1);
    });

    it('no device by that name: -ENODEV; names compare exactly', () => {
      const { host, td } = testBusHost(kernel);
      const { s, g } = attached(host);
      assert.equal(s.deviceFd(g, '0000:00:03.1'), -ENODEV);
      assert.equal(s.deviceFd(g, '0000:00:03.0 '), -ENODEV);
      assert.equal(s.deviceFd(g, ''), -ENODEV);
      assert.equal(s.deviceFd(g, '0000:00:03'), -ENODEV);
      assert.equal(td.opens, 0);
    });

    it('the name must be readable and NUL-terminated within PAGE_SIZE', () => {
      const { host } = testBusHost(kernel);
      const { p, s, g } = attached(host);
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, 0), -EFAULT);
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, 0x1000), -EFAULT);
      const two = userAlloc(p, 8192);
      /* 4096 non-NUL bytes: too long, whatever follows */
      p.mem.write(two, new Uint8Array(4096).fill(0x41));
      p.mem.write(two + 4096n, new Uint8Array([0]));
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, two), -EINVAL);
      /* 4095 bytes and a NUL fit: looked up (and not found) */
      p.mem.write(two + 4095n, new Uint8Array([0]));
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, two), -ENODEV);
      /* a string running into unmapped memory before its NUL faults */
      const last = userAlloc(p, 4096);
      p.mem.write(last + 4090n, new Uint8Array(6).fill(0x42));
      assert.equal(p.munmap(last + 4096n, 4096), 0);
      assert.equal(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, last + 4090n), -EFAULT);
      void s;
    });

    it('ops->open failing: its error, no fd, no container user, state unchanged', () => {
      const { host, td, log } = testBusHost(kernel, { openErr: -EIO });
      const { p, s, g } = attached(host);
      const before = host.liveObjects();
      assert.equal(s.deviceFd(g, BDF), -EIO);
      assert.deepEqual(log.calls, [`open(${BDF})`]);
      assert.equal(td.opens, 0);
      assert.equal(groupOf(host, 3)?.container_users.read(), 1);
      assert.deepEqual(host.liveObjects(), before);
      /* the next fd number is still the lowest free one */
      assert.equal(p.eventfd(0, 0), 2);
    });

    it('no free fd: -EMFILE; 4.1 opened the device first and releases it again', () => {
      const { host, td, log } = testBusHost(kernel);
      const { p, s, g } = attached(host);
      /* fds 0..2 are container, group, the scratch mapping has none: limit 3 */
      assert.equal(p.setrlimit(RLIMIT_NOFILE, 2n, 2n), 0);
      log.calls.length = 0;
      assert.equal(s.deviceFd(g, BDF), -EMFILE);
      if (kernel === '4.1') assert.deepEqual(log.calls, [`open(${BDF})`, `release(${BDF})`]);
      else assert.deepEqual(log.calls, []);
      assert.equal(td.opens - td.releases, 0);
      assert.equal(groupOf(host, 3)?.container_users.read(), 1);
    });
  });

  describe(`device fd (${kernel})`, () => {
    it('is the lowest free fd, close-on-exec, O_RDWR, with the profile f_mode', () => {
      const { host } = testBusHost(kernel);
      const { p, s, g, c } = attached(host);
      p.close(c); /* fd 0 is free again */
      const d = s.deviceFd(g, BDF);
      assert.equal(d, 0);
      assert.equal(p.task.files.isCloexec(d), true);
      const f = p.task.files.get(d) as File;
      assert.equal(f.path, 'anon_inode:[vfio-device]');
      assert.equal(f.f_flags & 3, O_RDWR);
      const mode =
        FMODE_READ | FMODE_WRITE | FMODE_PREAD | FMODE_PWRITE | (kernel === '4.1' ? FMODE_LSEEK : 0);
      assert.equal(f.f_mode, mode);
      assert.equal((f.private_data as VfioDevice).dev.name, BDF);
      assert.equal(O_CLOEXEC, 0o2000000);
    });

    it('lseek is -ESPIPE (no llseek op in either kernel)', () => {
      const { host } = testBusHost(kernel, { rw: true });
      const { p, s, g } = attached(host);
      const d = s.deviceFd(g, BDF);
      assert.equal(p.lseek(d, 0n, SEEK_SET), BigInt(-ESPIPE));
      assert.equal(p.lseek(d, 16n, SEEK_CUR), BigInt(-ESPIPE));
    });

    it('pread/pwrite reach the bus driver with the offset; read without an op is -EINVAL', () => {
      const { host } = testBusHost(kernel, { rw: true });
      const { p, s, g } = attached(host);
      const d = s.deviceFd(g, BDF);
      assert.equal(p.pread(d, s.addr, 4, 0x1000n), 4 + 0x1000);
      assert.equal(p.pwrite(d, s.addr, 4, 0x1000n), 4);
      assert.equal(p.read(d, s.addr, 4), 4);
      assert.equal(p.ioctl(d, VFIO_DEVICE_RESET), 0);
      assert.equal(p.ioctl(d, VFIO_DEVICE_GET_INFO, s.addr), -ENOTTY);

      const plain = testBusHost(kernel);
      const a = attached(plain.host);
      const d2 = a.s.deviceFd(a.g, BDF);
      assert.equal(a.p.pread(d2, a.s.addr, 4, 0n), -EINVAL);
      assert.equal(a.p.pwrite(d2, a.s.addr, 4, 0n), -EINVAL);
      assert.equal(a.p.ioctl(d2, VFIO_DEVICE_RESET), -EINVAL);
      assert.equal(a.p.mmap(0n, 4096, PROT_READ, MAP_SHARED, d2, 0n), BigInt(-EINVAL));
    });

    it('ops->open per fd (4.1) or on the first fd (6.12); container_users per fd or per device', () => {
      const { host, td, log } = testBusHost(kernel);
      const { p, s, g } = attached(host);
      log.calls.length = 0;
      const d1 = s.deviceFd(g, BDF);
      const d2 = s.deviceFd(g, BDF);
      assert.ok(d1 >= 0 && d2 === d1 + 1);
      const group = groupOf(host, 3);
      const device = group?.device_list[0];
      if (kernel === '4.1') {
        assert.deepEqual(log.calls, [`open(${BDF})`, `open(${BDF})`]);
        assert.equal(group?.container_users.read(), 3);
        /* the driver's reference plus one per fd */
        assert.equal(device?.kref.refcount, 3);
      } else {
        assert.deepEqual(log.calls, [`open(${BDF})`]);
        assert.equal(group?.container_users.read(), 2);
        assert.equal(device?.open_count, 2);
        assert.equal(device?.registration, 3);
        /* each device's first open holds the group file */
        assert.equal(group?.opened_file?.f_count, 2);
      }
      log.calls.length = 0;
      p.close(d1);
      assert.deepEqual(log.calls, kernel === '4.1' ? [`release(${BDF})`] : []);
      log.calls.length = 0;
      p.close(d2);
      assert.deepEqual(log.calls, [`release(${BDF})`]);
      assert.equal(td.opens, td.releases);
      assert.equal(group?.container_users.read(), 1);
      if (kernel === '4.1') assert.equal(device?.kref.refcount, 1);
      else assert.equal(device?.registration, 1);
    });

    it('device fd ioctl with a bus driver that has no ioctl op: -EINVAL', () => {
      const { host } = testBusHost(kernel);
      const { p, s, g } = attached(host);
      const d = s.deviceFd(g, BDF);
      assert.equal(p.ioctl(d, VFIO_DEVICE_GET_INFO, s.addr), -EINVAL);
    });
  });
}

describe('not viable (4.1 checks at GET_DEVICE_FD)', () => {
  it('a device bound to a DMA driver in the group: SET_CONTAINER works, GET_DEVICE_FD is -EINVAL', () => {
    const { host } = testBusHost('4.1');
    host.addPciDevice({ bdf: '0000:00:03.1', model: 'generic', iommuGroup: 3, driver: 'e1000e' });
    const { s, g } = attached(host);
    assert.equal(s.status(g).flags, 2);
    assert.equal(s.deviceFd(g, BDF), -EINVAL);
    assert.ok(host.dmesg().some((l) => l.includes('not viable') && l.includes('0000:00:03.1')));
  });
});
