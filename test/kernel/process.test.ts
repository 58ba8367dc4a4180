import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import {
  CAP_SYS_RESOURCE,
  EINVAL,
  ENOENT,
  ENOTDIR,
  EPERM,
  ESPIPE,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  RLIM_INFINITY,
  RLIMIT_MEMLOCK,
  RLIMIT_NOFILE,
  S_IFDIR,
  SEEK_CUR,
  SEEK_SET,
} from '../../src/uapi/index.ts';
import { userAlloc } from '../helpers/user.ts';

/* processes: rlimits, procfs, files by path, read/write/lseek on pseudo files */

describe('rlimits', () => {
  it('RLIMIT_MEMLOCK defaults per profile (64 KiB in 4.1, 8 MiB in 6.12) or as spawned', () => {
    assert.deepEqual(new Host({ kernel: '4.1' }).spawn().getrlimit(RLIMIT_MEMLOCK), {
      cur: 65536n,
      max: 65536n,
    });
    assert.deepEqual(new Host({ kernel: '6.12' }).spawn().getrlimit(RLIMIT_MEMLOCK), {
      cur: 8n << 20n,
      max: 8n << 20n,
    });
    assert.deepEqual(new Host().spawn({ rlimitMemlock: 1n << 30n }).getrlimit(RLIMIT_MEMLOCK), {
      cur: 1n << 30n,
      max: 1n << 30n,
    });
    assert.deepEqual(new Host().spawn().getrlimit(RLIMIT_NOFILE), { cur: RLIM_INFINITY, max: RLIM_INFINITY });
  });

  it('setrlimit: bad resource or cur > max is -EINVAL; raising max needs CAP_SYS_RESOURCE', () => {
    const host = new Host();
    const p = host.spawn({ rlimitMemlock: 1n << 20n });
    assert.equal(p.getrlimit(-1), -EINVAL);
    assert.equal(p.getrlimit(16), -EINVAL);
    assert.equal(p.setrlimit(99, 1n, 1n), -EINVAL);
    assert.equal(p.setrlimit(RLIMIT_MEMLOCK, 2n, 1n), -EINVAL);
    assert.equal(p.setrlimit(RLIMIT_MEMLOCK, 4096n, 1n << 21n), -EPERM);
    assert.equal(p.setrlimit(RLIMIT_MEMLOCK, 4096n, 8192n), 0);
    assert.deepEqual(p.getrlimit(RLIMIT_MEMLOCK), { cur: 4096n, max: 8192n });
    assert.equal(p.setrlimit(RLIMIT_MEMLOCK, 8192n, 8192n), 0);
    const root = host.spawn({ capabilities: [CAP_SYS_RESOURCE] });
    assert.equal(root.setrlimit(RLIMIT_MEMLOCK, 1n << 40n, 1n << 40n), 0);
    assert.equal(p.task.memlockLimit(), 8192n);
  });
});

describe('/proc/self/status', () => {
  for (const [arch, kb] of [
    ['x86_64', 4],
    ['ppc64', 64],
  ] as const) {
    it(`VmLck shows mm->locked_vm in kB as "%8lu kB" (${arch})`, () => {
      const host = new Host({ arch });
      const p = host.spawn({ comm: 'qemu' });
      const buf = userAlloc(p, 4096);
      const text = p.readText('/proc/self/status');
      assert.equal(typeof text, 'string');
      assert.ok(String(text).includes('\nVmLck:\t       0 kB\n'));
      assert.ok(String(text).startsWith('Name:\tqemu\n'));
      assert.ok(String(text).includes(`\nPid:\t${p.pid}\n`));
      if (p.task.mm !== null) p.task.mm.locked_vm = 16;
      const after = String(p.readText('/proc/self/status'));
      const line = after.split('\n').find((l) => l.startsWith('VmLck:'));
      assert.equal(line, `VmLck:\t${String(16 * kb).padStart(8, ' ')} kB`);
      /* the same text through open + read, as cat does */
      const fd = p.open('/proc/self/status', O_RDONLY);
      const n = p.read(fd, buf, 4096);
      assert.equal(new TextDecoder().decode(p.mem.read(buf, n)), after);
      assert.equal(p.read(fd, buf, 4096), 0);
      /* another process's view by pid */
      const q = host.spawn();
      assert.equal(q.readText(`/proc/${p.pid}/status`), after);
      p.exit();
      assert.equal(q.readText(`/proc/${p.pid}/status`), -ENOENT);
    });
  }
});

describe('files by path', () => {
  it('stat, readdir and readlink of sysfs, procfs and devtmpfs nodes', () => {
    const host = new Host();
    host.addPciDevice({ bdf: '0000:00:03.0', model: 'generic', iommuGroup: 3 });
    const p = host.spawn();
    const st = p.stat('/sys/bus/pci/devices');
    assert.ok(typeof st !== 'number' && st.mode === (S_IFDIR | 0o755));
    assert.equal(p.stat('/nope'), -ENOENT);
    assert.equal(p.readdir('/sys/bus/pci/devices/0000:00:03.0/vendor'), -ENOTDIR);
    assert.ok((p.readdir('/dev/vfio') as string[]).includes('vfio'));
    assert.equal(p.readlink('/sys/bus/pci/devices/0000:00:03.0/vendor'), -EINVAL);
    assert.equal(p.readlink('/sys/nope'), -ENOENT);
  });

  it('pseudo files: read from the position, lseek SET/CUR, writes reach store()', () => {
    const host = new Host();
    host.addPciDevice({ bdf: '0000:00:03.0', model: 'generic', iommuGroup: 3, vendor: 0x1af4 });
    const p = host.spawn();
    const buf = userAlloc(p, 4096);
    const fd = p.open('/sys/bus/pci/devices/0000:00:03.0/vendor', O_RDONLY);
    assert.equal(p.read(fd, buf, 2), 2);
    assert.equal(new TextDecoder().decode(p.mem.read(buf, 2)), '0x');
    assert.equal(p.read(fd, buf, 100), 5);
    assert.equal(new TextDecoder().decode(p.mem.read(buf, 5)), '1af4\n');
    assert.equal(p.lseek(fd, 2n, SEEK_SET), 2n);
    assert.equal(p.lseek(fd, 1n, SEEK_CUR), 3n);
    assert.equal(p.lseek(fd, -10n, SEEK_CUR), BigInt(-EINVAL));
    assert.equal(p.lseek(fd, 0n, 5), BigInt(-EINVAL));
    assert.equal(p.pread(fd, buf, 4, 2n), 4);
    assert.equal(new TextDecoder().decode(p.mem.read(buf, 4)), '1af4');
    /* the position did not move with pread */
    assert.equal(p.lseek(fd, 0n, SEEK_CUR), 3n);
    assert.equal(p.write(fd, buf, 1), -9);
    const ov = p.open('/sys/bus/pci/devices/0000:00:03.0/driver_override', O_WRONLY);
    p.mem.write(buf, new TextEncoder().encode('vfio-pci\n'));
    assert.equal(p.write(ov, buf, 9), 9);
    assert.equal(p.readText('/sys/bus/pci/devices/0000:00:03.0/driver_override'), 'vfio-pci\n');
    /* character devices and eventfds do not seek */
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    assert.equal(p.lseek(c, 0n, SEEK_SET), BigInt(-ESPIPE));
    assert.equal(p.lseek(p.eventfd(0, 0), 0n, SEEK_SET), BigInt(-ESPIPE));
  });
});
