import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import { current, type File, type FileOperations } from '../../src/kernel/index.ts';
import {
  CAP_SYS_ADMIN,
  EACCES,
  EBADF,
  EFAULT,
  EINVAL,
  EISDIR,
  EMFILE,
  ENOENT,
  ENOIOCTLCMD,
  ENOTTY,
  EOPNOTSUPP,
  EPERM,
  EPIPE,
  FIFREEZE,
  FIGETBSZ,
  FIOASYNC,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  FIOQSIZE,
  FITHAW,
  FS_IOC_FIEMAP,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  RLIMIT_NOFILE,
} from '../../src/uapi/index.ts';
import { putS32, userAlloc } from '../helpers/user.ts';

/* the fd table, open/close/dup/passFd, and the ioctls the VFS answers itself */

interface TestDev {
  releases: { mmNull: boolean; pid: number }[];
  ioctls: [number, bigint][];
}

/** a misc device /dev/testdev whose fops record what they see */
function testDev(host: Host): TestDev {
  const t: TestDev = { releases: [], ioctls: [] };
  const fops: FileOperations = {
    name: 'testdev_fops',
    release(_inode, _file) {
      t.releases.push({ mmNull: current().mm === null, pid: current().pid });
      return 0;
    },
    unlocked_ioctl(_f, cmd, arg) {
      t.ioctls.push([cmd, arg]);
      return cmd === 0x7701 ? -ENOIOCTLCMD : 7;
    },
  };
  host.inKernel(() => host.kernel.chrdev.miscRegister({ minor: 240, name: 'testdev', fops, mode: 0o666 }));
  return t;
}

describe('fd table', () => {
  it('open takes the lowest free fd; close frees it; -EBADF for a closed one', () => {
    const host = new Host();
    const p = host.spawn();
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), 0);
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), 1);
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), 2);
    assert.equal(p.close(1), 0);
    assert.equal(p.close(1), -EBADF);
    assert.equal(p.eventfd(0, 0), 1);
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), 3);
  });

  it('a failed open leaves no fd behind and reports ENOENT / EACCES / EISDIR', () => {
    const host = new Host();
    const p = host.spawn();
    assert.equal(p.open('/dev/nothing', O_RDWR), -ENOENT);
    assert.equal(p.open('/sys/bus/pci', O_RDWR), -EISDIR);
    const u = host.spawn({ uid: 1000 });
    assert.equal(u.open('/sys/bus/pci/drivers_probe', O_RDONLY), -EACCES);
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), 0);
  });

  it('O_CLOEXEC, FIOCLEX and FIONCLEX set and clear close-on-exec', () => {
    const host = new Host();
    const p = host.spawn();
    const a = p.open('/dev/vfio/vfio', O_RDWR | O_CLOEXEC);
    const b = p.open('/dev/vfio/vfio', O_RDWR);
    assert.equal(p.task.files.isCloexec(a), true);
    assert.equal(p.task.files.isCloexec(b), false);
    assert.equal(p.ioctl(b, FIOCLEX), 0);
    assert.equal(p.task.files.isCloexec(b), true);
    assert.equal(p.ioctl(a, FIONCLEX), 0);
    assert.equal(p.task.files.isCloexec(a), false);
    /* a closed fd's bit does not leak to the next file in that slot */
    p.close(b);
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), b);
    assert.equal(p.task.files.isCloexec(b), false);
  });

  it('RLIMIT_NOFILE bounds the table: -EMFILE', () => {
    const host = new Host();
    const p = host.spawn();
    assert.equal(p.setrlimit(RLIMIT_NOFILE, 2n, 2n), 0);
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), 0);
    assert.equal(p.eventfd(0, 0), 1);
    assert.equal(p.open('/dev/vfio/vfio', O_RDWR), -EMFILE);
    assert.equal(p.eventfd(0, 0), -EMFILE);
    assert.equal(p.dup(0), -EMFILE);
    assert.deepEqual(host.liveObjects().file, 2);
  });

  it('dup shares the open file, clears close-on-exec, and the file lives until the last close', () => {
    const host = new Host();
    const t = testDev(host);
    const p = host.spawn();
    const a = p.open('/dev/testdev', O_RDWR | O_CLOEXEC);
    const b = p.dup(a);
    assert.equal(b, 1);
    assert.equal(p.task.files.isCloexec(b), false);
    assert.equal(p.task.files.get(a), p.task.files.get(b));
    assert.equal(p.dup(9), -EBADF);
    p.close(a);
    assert.equal(t.releases.length, 0);
    assert.equal(p.ioctl(b, 0x7702, 5), 7);
    p.close(b);
    assert.equal(t.releases.length, 1);
  });

  it('passFd installs the same file in another process (lowest fd there, no cloexec)', () => {
    const host = new Host();
    const t = testDev(host);
    const p = host.spawn();
    const q = host.spawn();
    q.eventfd(0, 0);
    const a = p.open('/dev/testdev', O_RDWR | O_CLOEXEC);
    const qa = p.passFd(a, q);
    assert.equal(qa, 1);
    assert.equal(q.task.files.isCloexec(qa), false);
    assert.equal(q.task.files.get(qa), p.task.files.get(a));
    assert.equal(p.passFd(42, q), -EBADF);
    p.exit();
    assert.equal(t.releases.length, 0);
    assert.equal(q.close(qa), 0);
    assert.deepEqual(t.releases, [{ mmNull: false, pid: q.pid }]);
    const r = host.spawn();
    const ra = r.open('/dev/testdev', O_RDWR);
    assert.equal(r.passFd(ra, p), -EPIPE);
    assert.equal(r.passFd(ra, new Host().spawn()), -EINVAL);
  });

  it('exit closes every fd in order with current->mm already NULL, and frees the task', () => {
    const host = new Host();
    const t = testDev(host);
    const base = host.liveObjects();
    const p = host.spawn();
    userAlloc(p, 4096);
    p.open('/dev/testdev', O_RDWR);
    p.eventfd(0, 0);
    p.open('/dev/testdev', O_RDWR);
    p.exit();
    assert.deepEqual(t.releases, [
      { mmNull: true, pid: p.pid },
      { mmNull: true, pid: p.pid },
    ]);
    assert.deepEqual(host.liveObjects(), base);
    assert.equal(host.tasks().includes(p.task), false);
    assert.throws(() => p.open('/dev/testdev', O_RDWR), /exited/);
    p.exit();
  });
});

describe('ioctl: the VFS first, then the driver', () => {
  it('unknown commands reach unlocked_ioctl with the u64 argument; -ENOIOCTLCMD becomes -ENOTTY', () => {
    const host = new Host();
    const t = testDev(host);
    const p = host.spawn();
    const fd = p.open('/dev/testdev', O_RDWR);
    assert.equal(p.ioctl(fd, 0x7702, -1), 7);
    assert.equal(p.ioctl(fd, 0x7702, 3.9), 7);
    assert.equal(p.ioctl(fd, 0x7702, 1n << 64n), 7);
    assert.equal(p.ioctl(fd, -1, 0), 7);
    assert.equal(p.ioctl(fd, 0x7701, 0), -ENOTTY);
    assert.deepEqual(t.ioctls, [
      [0x7702, 0xffff_ffff_ffff_ffffn],
      [0x7702, 3n],
      [0x7702, 0n],
      [0xffffffff, 0n],
      [0x7701, 0n],
    ]);
  });

  it('FIONBIO reads an int and sets O_NONBLOCK; a bad pointer is -EFAULT', () => {
    const host = new Host();
    const t = testDev(host);
    const p = host.spawn();
    const fd = p.open('/dev/testdev', O_RDWR);
    const a = userAlloc(p, 4096);
    const f = p.task.files.get(fd) as File;
    putS32(p, a, 1);
    assert.equal(p.ioctl(fd, FIONBIO, a), 0);
    assert.equal(f.f_flags & O_NONBLOCK, O_NONBLOCK);
    putS32(p, a, 0);
    assert.equal(p.ioctl(fd, FIONBIO, a), 0);
    assert.equal(f.f_flags & O_NONBLOCK, 0);
    assert.equal(p.ioctl(fd, FIONBIO, 0), -EFAULT);
    assert.equal(t.ioctls.length, 0);
  });

  it('FIOASYNC, FIOQSIZE, FIGETBSZ, FIFREEZE, FITHAW, FS_IOC_FIEMAP never reach the driver', () => {
    const host = new Host();
    const t = testDev(host);
    const p = host.spawn();
    const fd = p.open('/dev/testdev', O_RDWR);
    const a = userAlloc(p, 4096);
    putS32(p, a, 0);
    assert.equal(p.ioctl(fd, FIOASYNC, a), 0);
    putS32(p, a, 1);
    assert.equal(p.ioctl(fd, FIOASYNC, a), -ENOTTY);
    assert.equal(p.ioctl(fd, FIOASYNC, 0), -EFAULT);
    assert.equal(p.ioctl(fd, FIOQSIZE, a), -ENOTTY);
    assert.equal(p.ioctl(fd, FIGETBSZ, a), 0);
    assert.equal(new DataView(p.mem.read(a, 4).buffer).getInt32(0, true), 4096);
    assert.equal(p.ioctl(fd, FIGETBSZ, 0), -EFAULT);
    assert.equal(p.ioctl(fd, FIFREEZE, a), -EPERM);
    assert.equal(p.ioctl(fd, FITHAW, a), -EPERM);
    const admin = host.spawn({ capabilities: [CAP_SYS_ADMIN] });
    const afd = admin.open('/dev/testdev', O_RDWR);
    assert.equal(admin.ioctl(afd, FIFREEZE, 0), -EOPNOTSUPP);
    assert.equal(admin.ioctl(afd, FITHAW, 0), -EINVAL);
    assert.equal(p.ioctl(fd, FS_IOC_FIEMAP, a), -EOPNOTSUPP);
    assert.equal(t.ioctls.length, 0);
    /* a sysfs attribute is a regular file: FIOQSIZE reports its size */
    const sys = p.open('/sys/bus/pci/drivers_probe', O_WRONLY);
    assert.equal(p.ioctl(sys, FIOQSIZE, a), 0);
    assert.equal(p.mem.read(a, 8)[1], 0x10);
  });
});
