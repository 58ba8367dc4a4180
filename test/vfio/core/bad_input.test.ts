import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host, KernelOops } from '../../../src/index.ts';
import {
  EAGAIN,
  EBADF,
  EFAULT,
  EFD_NONBLOCK,
  EINVAL,
  ENODEV,
  ENOTTY,
  O_RDONLY,
  O_RDWR,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_SET_IOMMU,
  vfio_group_status,
} from '../../../src/uapi/index.ts';
import {
  type CallLog,
  registerIommu,
  Scratch,
  TEST_IOMMU,
  testIommuOps,
  unregisterIommu,
  vfioHost,
} from '../../helpers/vfio_core.ts';

/* every kind of bad input is an errno, never an exception; a JS exception in kernel code is an oops */
const PROFILES = ['4.1', '6.12'] as const;
const BDF = '0000:00:03.0';
const VFIO_CMDS = [
  VFIO_GET_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_SET_IOMMU,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_GROUP_GET_DEVICE_FD,
];

/** a small deterministic PRNG (xorshift32) so failures reproduce */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

for (const kernel of PROFILES) {
  describe(`bad input (${kernel})`, () => {
    it('ioctl on negative, closed and absurd fds: -EBADF', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      for (const fd of [-1, -100, 0, 3, 1023, 1 << 30, 2 ** 31 - 1, 1.5, Number.NaN])
        assert.equal(p.ioctl(fd, VFIO_GET_API_VERSION), -EBADF, String(fd));
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      p.close(c);
      assert.equal(p.ioctl(c, VFIO_GET_API_VERSION), -EBADF);
      assert.equal(p.close(c), -EBADF);
      assert.equal(p.close(-1), -EBADF);
    });

    it('VFIO ioctls on the wrong kind of fd', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      const e = p.eventfd(0, 0);
      const sys = p.open('/sys/bus/pci/devices/0000:00:03.0/vendor', O_RDONLY);
      const dir = p.open('/sys/bus/pci/devices', O_RDONLY);
      /* group ioctls on a container without a driver: the default branch, -EINVAL */
      assert.equal(p.ioctl(c, VFIO_GROUP_GET_STATUS, s.addr), -EINVAL);
      assert.equal(p.ioctl(c, VFIO_GROUP_GET_DEVICE_FD, s.addr), -EINVAL);
      /* container ioctls on a group: -ENOTTY */
      assert.equal(p.ioctl(g, VFIO_GET_API_VERSION), -ENOTTY);
      assert.equal(p.ioctl(g, VFIO_CHECK_EXTENSION, TEST_IOMMU), -ENOTTY);
      /* files without an ioctl op */
      for (const fd of [e, sys, dir])
        for (const cmd of VFIO_CMDS) assert.equal(p.ioctl(fd, cmd, s.addr), -ENOTTY, `fd ${fd} cmd ${cmd}`);
      /* a group or an eventfd as the container of SET_CONTAINER */
      assert.ok(s.setContainer(g, e) < 0);
    });

    it('garbage arguments of every shape return an errno', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const s = new Scratch(p);
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const g = p.open('/dev/vfio/3', O_RDWR);
      const args: (number | bigint)[] = [
        0,
        1,
        -1,
        0.5,
        -0.5,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        2 ** 53,
        0n,
        -1n,
        1n << 64n,
        (1n << 64n) - 1n,
        -(1n << 70n),
        0x7fff_ffff_f000n,
        0x8000_0000_0000n,
        s.addr + 8191n,
      ];
      for (const arg of args) {
        for (const cmd of [VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD]) {
          const r = p.ioctl(g, cmd, arg);
          assert.ok(r < 0, `cmd ${cmd} arg ${arg}: ${r}`);
          assert.ok(r === -EFAULT || r === -EINVAL || r === -ENODEV, `cmd ${cmd} arg ${arg}: ${r}`);
        }
        assert.equal(p.ioctl(c, VFIO_GET_API_VERSION, arg), 0);
        assert.equal(p.ioctl(c, VFIO_SET_IOMMU, arg), -EINVAL);
        assert.equal(p.ioctl(c, VFIO_CHECK_EXTENSION, arg), 0);
      }
      /* argsz of every size */
      for (const argsz of [0, 1, 4, 7, 8, 9, 0x7fffffff, 0x80000000, 0xffffffff]) {
        p.mem.write(s.addr, vfio_group_status.encode({ argsz, flags: 0 }));
        assert.equal(p.ioctl(g, VFIO_GROUP_GET_STATUS, s.addr), argsz < 8 ? -EINVAL : 0, `argsz ${argsz}`);
      }
    });

    it('read/write with bad buffers and sizes: -EFAULT / -EINVAL, never a throw', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const buf = new Scratch(p).addr;
      const e = p.eventfd(5, EFD_NONBLOCK);
      /* access_ok fails before the eventfd is touched */
      assert.equal(p.read(e, 1n << 63n, 8), -EFAULT);
      assert.equal(p.read(e, -8n, 8), -EFAULT);
      assert.equal(p.read(e, buf, -1), -EFAULT);
      assert.equal(p.write(e, 0x7fff_ffff_fff8n, 16), -EFAULT);
      assert.equal(p.read(e, buf, 4), -EINVAL);
      assert.equal(p.pread(e, buf, 8, -1n), -EINVAL);
      assert.equal(p.read(99, buf, 8), -EBADF);
      /* an unmapped but plausible buffer: the count is consumed, then put_user faults */
      assert.equal(p.read(e, 0x1000n, 8), -EFAULT);
      assert.equal(p.read(e, buf, 8), -EAGAIN);
    });

    it('a randomised storm of calls on every fd leaves the host at its baseline', () => {
      const { host } = vfioHost(Host, kernel);
      const base = host.liveObjects();
      const p = host.spawn();
      const s = new Scratch(p);
      const next = rng(kernel === '4.1' ? 41 : 612);
      const fds = [p.open('/dev/vfio/vfio', O_RDWR), p.open('/dev/vfio/3', O_RDWR), p.eventfd(0, 0)];
      for (let i = 0; i < 3000; i++) {
        const r = next();
        const fd = r % 7 === 0 ? (next() % 12) - 2 : (fds[r % fds.length] ?? 0);
        const cmd = r % 5 === 0 ? next() : (VFIO_CMDS[next() % VFIO_CMDS.length] ?? 0);
        const pick = next() % 6;
        let arg: number | bigint;
        if (pick === 0) arg = s.addr + BigInt(next() % 8192);
        else if (pick === 1) arg = BigInt(next()) << 32n;
        else if (pick === 2) arg = TEST_IOMMU;
        else if (pick === 3) arg = s.addr;
        else arg = next() % 16;
        if (pick === 3) {
          /* a plausible argument: a fd, a status, or a device name */
          const w = next() % 3;
          if (w === 0) s.p.mem.write(s.addr, new Uint8Array(new Int32Array([next() % 8]).buffer));
          else if (w === 1) s.p.mem.write(s.addr, vfio_group_status.encode({ argsz: next() % 16, flags: 0 }));
          else s.p.mem.write(s.addr, new TextEncoder().encode(`${BDF}\0`));
        }
        const ret = p.ioctl(fd, cmd, arg);
        assert.equal(typeof ret, 'number');
        if (ret > 0 && cmd === VFIO_GROUP_GET_DEVICE_FD && next() % 2 === 0) p.close(ret);
      }
      p.exit();
      assert.deepEqual(host.liveObjects(), base);
      assert.equal(host.kernel.oopses.length, 0);
    });
  });

  describe(`KernelOops (${kernel})`, () => {
    for (const where of ['open', 'attach_group', 'ioctl'] as const) {
      it(`an IOMMU driver's ${where} throwing makes the syscall throw KernelOops, not return an errno`, () => {
        const { host, ops } = vfioHost(Host, kernel);
        unregisterIommu(host, ops);
        const log: CallLog = { calls: [] };
        registerIommu(host, testIommuOps(log, { name: 'boom', throwIn: where }));
        const p = host.spawn();
        const s = new Scratch(p);
        const c = p.open('/dev/vfio/vfio', O_RDWR);
        const g = p.open('/dev/vfio/3', O_RDWR);
        assert.equal(s.setContainer(g, c), 0);
        const call =
          where === 'ioctl'
            ? () => p.ioctl(c, VFIO_CHECK_EXTENSION, 1)
            : () => p.ioctl(c, VFIO_SET_IOMMU, TEST_IOMMU);
        assert.throws(call, (e: unknown) => {
          assert.ok(e instanceof KernelOops);
          assert.equal(e.syscall, 'ioctl');
          assert.ok(e.cause instanceof Error && e.cause.message.includes('exploded'));
          return true;
        });
        assert.equal(host.kernel.oopses.length, 1);
        assert.ok(
          host
            .dmesg()
            .some(
              (l) =>
                l.startsWith('Oops in ioctl') &&
                l.includes(`boom: ${where === 'attach_group' ? 'attach' : where} exploded`),
            ),
        );
        /* the oops is not a halt: other files still work */
        assert.equal(host.halted, false);
        assert.equal(p.ioctl(p.open('/dev/vfio/vfio', O_RDWR), VFIO_GET_API_VERSION), 0);
      });
    }

    it('misuse of a kernel lock inside a syscall is an oops too', () => {
      const { host } = vfioHost(Host, kernel);
      const p = host.spawn();
      const c = p.open('/dev/vfio/vfio', O_RDWR);
      const f = p.task.files.get(c);
      const container = f?.private_data as { group_lock: { downWrite(): void } };
      container.group_lock.downWrite();
      assert.throws(() => p.ioctl(c, VFIO_CHECK_EXTENSION, 1), KernelOops);
    });
  });
}
