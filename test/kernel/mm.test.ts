import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import {
  copyFromUser,
  copyToUser,
  type FileOperations,
  getUserS32,
  memdupUser,
  putUserU32,
  strndupUser,
  TASK_SIZE,
  uarg,
} from '../../src/kernel/index.ts';
import {
  CAP_SYS_RAWIO,
  EACCES,
  EBADF,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOMEM,
  EOVERFLOW,
  EPERM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SegmentationFault,
} from '../../src/uapi/index.ts';

/* process memory: mmap/munmap/mprotect and copy_{from,to}_user at the edges */
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const FIX = ANON | MAP_FIXED;
const PG = 4096n;

function host(kernel: '4.1' | '6.12' = '4.1'): Host {
  const h = new Host({ kernel });
  const fops: FileOperations = { name: 'mmapdev_fops', mmap: () => 0 };
  const none: FileOperations = { name: 'nommap_fops' };
  h.inKernel(() => {
    h.kernel.chrdev.miscRegister({ minor: 241, name: 'mmapdev', fops, mode: 0o666 });
    h.kernel.chrdev.miscRegister({ minor: 242, name: 'nommap', fops: none, mode: 0o666 });
  });
  return h;
}

describe('mmap', () => {
  it('anonymous mappings are page aligned, zero filled, top-down, and readable/writable', () => {
    const p = host().spawn();
    const a = p.mmap(0n, 100, RW, ANON, -1, 0n);
    const b = p.mmap(0n, 4096, RW, ANON, -1, 0n);
    assert.equal(a % PG, 0n);
    assert.equal(b, a - PG);
    assert.deepEqual([...p.mem.read(a, 4)], [0, 0, 0, 0]);
    p.mem.write(a + 4095n, new Uint8Array([9]));
    assert.deepEqual([...p.mem.read(a + 4095n, 1)], [9]);
    assert.throws(() => p.mem.read(a + 4096n, 1), SegmentationFault);
  });

  for (const kernel of ['4.1', '6.12'] as const)
    it(`errors in the kernel order: offset, fd, length, overflow, address, type (${kernel})`, () => {
      const h = host(kernel);
      const p = h.spawn();
      assert.equal(p.mmap(0n, 4096, RW, ANON, -1, 1n), BigInt(-EINVAL));
      assert.equal(p.mmap(0n, 4096, RW, MAP_PRIVATE, 99, 1n), BigInt(-EINVAL));
      assert.equal(p.mmap(0n, 4096, RW, MAP_PRIVATE, 99, 0n), BigInt(-EBADF));
      assert.equal(p.mmap(0n, 0, RW, MAP_PRIVATE, 99, 0n), BigInt(-EBADF));
      assert.equal(p.mmap(0n, 0, RW, ANON, -1, 0n), BigInt(-EINVAL));
      assert.equal(p.mmap(0n, -1, RW, ANON, -1, 0n), BigInt(-ENOMEM));
      assert.equal(p.mmap(0n, 1n << 60n, RW, ANON, -1, 0n), BigInt(-ENOMEM));
      const fd = p.open('/dev/mmapdev', O_RDWR);
      /* an offset past MAX_LFS_FILESIZE: 6.x's file_mmap_ok refuses it, 4.1 hands it to the driver */
      const far = p.mmap(0n, 8192, RW, MAP_SHARED, fd, -4096n);
      if (h.version === '4.1') assert.ok(far > 0n);
      else assert.equal(far, BigInt(-EOVERFLOW));
      assert.equal(p.mmap(0x10001n, 4096, RW, FIX, -1, 0n), BigInt(-EINVAL));
      assert.equal(p.mmap(BigInt(TASK_SIZE), 4096, RW, FIX, -1, 0n), BigInt(-ENOMEM));
      /* out of range and unaligned: the range check comes first */
      assert.equal(p.mmap(BigInt(TASK_SIZE) + 1n, 4096, RW, FIX, -1, 0n), BigInt(-ENOMEM));
      assert.equal(p.mmap(0n, 4096, RW, MAP_ANONYMOUS, -1, 0n), BigInt(-EINVAL));
      assert.equal(p.mmap(0n, 4096, RW, MAP_ANONYMOUS | 0x0f, -1, 0n), BigInt(-EINVAL));
    });

  it('below mmap_min_addr needs CAP_SYS_RAWIO', () => {
    const h = host();
    const p = h.spawn();
    assert.equal(p.mmap(0n, 4096, RW, FIX, -1, 0n), BigInt(-EPERM));
    const raw = h.spawn({ capabilities: [CAP_SYS_RAWIO] });
    assert.equal(raw.mmap(0n, 4096, RW, FIX, -1, 0n), 0n);
    /* a hint below the first page rounds to NULL: no hint at all */
    const top = p.mmap(0x10n, 4096, RW, ANON, -1, 0n);
    assert.ok(top > 0x7000_0000_0000n);
    assert.equal(p.mmap(0x1000n, 4096, RW, ANON, -1, 0n), 0x1000n);
  });

  it('unknown PROT bits are ignored by mmap; a free hint is honoured, a busy one is not', () => {
    const p = host().spawn();
    const a = p.mmap(0x5000_0000n, 4096, RW | 0x40, ANON, -1, 0n);
    assert.equal(a, 0x5000_0000n);
    const b = p.mmap(0x5000_0000n, 4096, RW, ANON, -1, 0n);
    assert.ok(b > 0n && b !== a);
  });

  it('MAP_FIXED replaces what was there', () => {
    const p = host().spawn();
    const a = p.mmap(0x6000_0000n, 3 * 4096, RW, FIX, -1, 0n);
    p.mem.write(a, new Uint8Array([1]));
    p.mem.write(a + PG, new Uint8Array([2]));
    assert.equal(p.mmap(a + PG, 4096, RW, FIX, -1, 0n), a + PG);
    assert.deepEqual([...p.mem.read(a, 1)], [1]);
    assert.deepEqual([...p.mem.read(a + PG, 1)], [0]);
  });

  it('file mappings: access mode and the driver decide', () => {
    const p = host().spawn();
    const ro = p.open('/dev/mmapdev', O_RDONLY);
    const wo = p.open('/dev/mmapdev', O_WRONLY);
    const rw = p.open('/dev/mmapdev', O_RDWR);
    const none = p.open('/dev/nommap', O_RDWR);
    assert.equal(p.mmap(0n, 4096, RW, MAP_SHARED, ro, 0n), BigInt(-EACCES));
    assert.ok(p.mmap(0n, 4096, PROT_READ, MAP_SHARED, ro, 0n) > 0n);
    assert.ok(p.mmap(0n, 4096, RW, MAP_PRIVATE, ro, 0n) > 0n);
    assert.equal(p.mmap(0n, 4096, PROT_READ, MAP_SHARED, wo, 0n), BigInt(-EACCES));
    assert.equal(p.mmap(0n, 4096, RW, MAP_SHARED, none, 0n), BigInt(-ENODEV));
    const m = p.mmap(0n, 4096, PROT_READ, MAP_SHARED, ro, 0n);
    /* shared and read-only: never writable */
    assert.equal(p.mprotect(m, 4096, RW), -EACCES);
    assert.ok(p.mmap(0n, 4096, RW, MAP_SHARED, rw, 0n) > 0n);
    /* the mapping holds the file: close does not release it */
    const f = p.task.files.get(rw);
    p.close(rw);
    assert.ok((f?.f_count ?? 0) >= 1);
  });
});

describe('munmap', () => {
  it('needs an aligned start inside user space and a non-zero length', () => {
    const p = host().spawn();
    const a = p.mmap(0n, 4 * 4096, RW, ANON, -1, 0n);
    assert.equal(p.munmap(a + 1n, 4096), -EINVAL);
    assert.equal(p.munmap(a, 0), -EINVAL);
    assert.equal(p.munmap(a, -1), -EINVAL);
    assert.equal(p.munmap(BigInt(TASK_SIZE), 4096), -EINVAL);
    assert.equal(p.munmap(0x1000n, 4096), 0);
  });

  it('unmapping the middle splits the mapping; a partial page unmaps the whole page', () => {
    const h = host();
    const p = h.spawn();
    const a = p.mmap(0n, 4 * 4096, RW, ANON, -1, 0n);
    p.mem.write(a + 3n * PG, new Uint8Array([7]));
    assert.equal(p.munmap(a + PG, 1), 0);
    assert.throws(() => p.mem.read(a + PG, 1), SegmentationFault);
    assert.deepEqual([...p.mem.read(a, 1)], [0]);
    assert.deepEqual([...p.mem.read(a + 3n * PG, 1)], [7]);
    assert.equal(p.task.mm?.vmas.length, 2);
    assert.equal(p.munmap(a, 4 * 4096), 0);
    assert.equal(p.task.mm?.vmas.length, 0);
    assert.equal(h.liveObjects().vm_area_struct, undefined);
    assert.equal(h.liveObjects().phys_pages, undefined);
  });
});

describe('mprotect', () => {
  it('errors in the kernel order; a zero length succeeds before prot is looked at', () => {
    const p = host().spawn();
    const a = p.mmap(0n, 2 * 4096, RW, ANON, -1, 0n);
    assert.equal(p.mprotect(a + 1n, 4096, PROT_READ), -EINVAL);
    assert.equal(p.mprotect(a, 0, 0xff), 0);
    assert.equal(p.mprotect(a, 4096, 0x40), -EINVAL);
    assert.equal(p.mprotect(a, 4096, PROT_READ | 0x8), 0);
    assert.equal(p.mprotect(a, 4096, 0x03000000), -EINVAL);
    assert.equal(p.mprotect(0x2000_0000n, 4096, PROT_READ), -ENOMEM);
    assert.equal(p.mprotect(a, -1, PROT_READ), -ENOMEM);
  });

  it('takes effect on access; VMAs before a hole keep the change, -ENOMEM at the hole', () => {
    const p = host().spawn();
    const a = p.mmap(0x7000_0000n, 3 * 4096, RW, FIX, -1, 0n);
    assert.equal(p.munmap(a + 2n * PG, 4096), 0);
    assert.equal(p.mprotect(a, 3 * 4096, PROT_READ), -ENOMEM);
    assert.throws(() => p.mem.write(a, new Uint8Array([1])), SegmentationFault);
    assert.throws(() => p.mem.write(a + PG, new Uint8Array([1])), SegmentationFault);
    assert.equal(p.mprotect(a + PG, 4096, RW | PROT_EXEC), 0);
    p.mem.write(a + PG, new Uint8Array([1]));
    assert.equal(p.mprotect(a, 4096, PROT_NONE), 0);
    assert.throws(() => p.mem.read(a, 1), SegmentationFault);
  });
});

describe('copy_from_user and friends', () => {
  it('copy across adjacent mappings works; across a hole or past the end: bytes not copied', () => {
    const h = host();
    const p = h.spawn();
    const a = p.mmap(0x3000_0000n, 4096, RW, FIX, -1, 0n);
    p.mmap(0x3000_1000n, 4096, RW, FIX, -1, 0n);
    p.mem.write(a + 4094n, new Uint8Array([1, 2, 3, 4]));
    const got = run(p, () => {
      const dst = new Uint8Array(4).fill(0xee);
      const left = copyFromUser(dst, Number(a) + 4094, 4);
      return { left, dst: [...dst] };
    });
    assert.deepEqual(got, { left: 0, dst: [1, 2, 3, 4] });
    p.munmap(a + PG, 4096);
    const tail = run(p, () => {
      const dst = new Uint8Array(4).fill(0xee);
      const left = copyFromUser(dst, Number(a) + 4094, 4);
      return { left, dst: [...dst] };
    });
    /* the uncopied tail is zeroed, as the kernel's copy_from_user does */
    assert.deepEqual(tail, { left: 2, dst: [1, 2, 0, 0] });
    assert.equal(
      run(p, () => copyToUser(Number(a) + 4095, new Uint8Array(2))),
      1,
    );
    assert.equal(
      run(p, () => copyToUser(Number(a) + 4094, new Uint8Array(2))),
      0,
    );
  });

  it('get_user/put_user/memdup_user: -EFAULT on a bad pointer', () => {
    const p = host().spawn();
    const a = p.mmap(0n, 4096, RW, ANON, -1, 0n);
    p.mem.write(a, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    assert.deepEqual(
      run(p, () => getUserS32(Number(a))),
      { value: -1 },
    );
    assert.equal(
      run(p, () => getUserS32(Number(a) + 4093)),
      -EFAULT,
    );
    assert.equal(
      run(p, () => putUserU32(Number(a) + 4092, 5)),
      0,
    );
    assert.equal(
      run(p, () => putUserU32(Number(a) + 4093, 5)),
      -EFAULT,
    );
    assert.equal(
      run(p, () => memdupUser(Number(a) + 4000, 200)),
      -EFAULT,
    );
    assert.ok(run(p, () => memdupUser(Number(a), 4096)) instanceof Uint8Array);
    assert.equal(uarg(1n << 63n), 0x8000_0000_0000);
  });

  it('strndup_user: -EFAULT unreadable, -EINVAL when no NUL within n, else the string', () => {
    const p = host().spawn();
    const a = p.mmap(0x3100_0000n, 4096, RW, FIX, -1, 0n);
    p.mem.write(a, new TextEncoder().encode('abc\0'));
    assert.equal(
      run(p, () => strndupUser(Number(a), 4096)),
      'abc',
    );
    assert.equal(
      run(p, () => strndupUser(Number(a), 3)),
      -EINVAL,
    );
    assert.equal(
      run(p, () => strndupUser(Number(a), 4)),
      'abc',
    );
    p.mem.write(a + 4092n, new TextEncoder().encode('wxyz'));
    assert.equal(
      run(p, () => strndupUser(Number(a) + 4092, 4096)),
      -EFAULT,
    );
    assert.equal(
      run(p, () => strndupUser(Number(a) + 4092, 4)),
      -EINVAL,
    );
    assert.equal(
      run(p, () => strndupUser(0, 4096)),
      -EFAULT,
    );
  });
});

/** run kernel code as p's task (what a syscall does) */
function run<T>(p: ReturnType<Host['spawn']>, fn: () => T): T {
  const prev = p.kernel.enter(p.task);
  try {
    return fn();
  } finally {
    p.kernel.leave(prev);
  }
}
