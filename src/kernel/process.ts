import {
  CAP_DAC_OVERRIDE,
  CAP_SYS_RAWIO,
  CAP_SYS_RESOURCE,
  EACCES,
  EBADF,
  EFAULT,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  EINVAL,
  EISDIR,
  ENODEV,
  ENOMEM,
  ENOTTY,
  ENXIO,
  EOVERFLOW,
  EPERM,
  EPIPE,
  ESPIPE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  O_ACCMODE,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  POLLERR,
  POLLHUP,
  POLLNVAL,
  type PollFd,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  RLIMIT_MEMLOCK,
  S_IFCHR,
  S_IFDIR,
  S_IFREG,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
  SegmentationFault,
  type StatResult,
  type Syscalls,
  type UserMemoryView,
} from '../uapi/index.ts';
import { runAs } from './current.ts';
import { fail, KernelOops } from './err.ts';
import { EFD_SEMAPHORE, EventfdCtx, eventfdFops } from './eventfd.ts';
import {
  File,
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_READ,
  FMODE_WRITE,
  fput,
  type Inode,
} from './fs.ts';
import type { Kernel } from './kernel.ts';
import { MmStruct, protToVmFlags, TASK_SIZE, VM_MAYREAD, VM_MAYWRITE, VM_SHARED, Vma } from './mm.ts';
import { modulePut, tryModuleGet } from './module.ts';
import { kernelProfile } from './profile.ts';
import { attrFops, dirFops } from './pseudofs.ts';
import { capable, type Rlimit, Task } from './task.ts';
import { doVfsIoctl, isVfsIoctl, vfsIoctlResult } from './vfs_ioctl.ts';

const RLIM_NLIMITS = 16;
const MAX_RW_COUNT = 0x7ffff000;
const LOFF_MAX = 0x7fff_ffff_ffff_ffffn;
const DEFAULT_POLLMASK = 0x1 | 0x4 | 0x40 | 0x100;

/** user pointers arrive as bigint (u64); anything past user space is a fault */
function uptr(v: bigint | number): number {
  if (typeof v === 'number') return v >= 0 && v <= TASK_SIZE ? v : TASK_SIZE;
  return v >= 0n && v <= BigInt(TASK_SIZE) ? Number(v) : TASK_SIZE;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * A value as the kernel receives it in a u64 register: bigints wrap modulo
 * 2^64, numbers are truncated as a C cast would (NaN and infinities, which
 * a C caller cannot pass, become 0).
 */
export function toU64(v: number | bigint): bigint {
  if (typeof v === 'bigint') return v >= 0n && v <= U64_MAX ? v : BigInt.asUintN(64, v);
  if (v === 0) return 0n;
  if (v > 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v)) return BigInt(v);
  if (!Number.isFinite(v)) return 0n;
  return BigInt.asUintN(64, BigInt(Math.trunc(v)));
}

const ioctlArg = toU64;

/* CONFIG_DEFAULT_MMAP_MIN_ADDR */
const MMAP_MIN_ADDR = 4096;
const PROT_SEM = 0x8;
const PROT_GROWSDOWN = 0x01000000;
const PROT_GROWSUP = 0x02000000;

/* round_hint_to_min: a hint below mmap_min_addr is raised to it */
function roundHintToMin(hint: bigint, ps: bigint): bigint {
  const h = hint - (hint % ps);
  return h !== 0n && h < BigInt(MMAP_MIN_ADDR) ? ((BigInt(MMAP_MIN_ADDR) + ps - 1n) / ps) * ps : h;
}

/** a loff_t / off_t argument */
function toS64(v: number | bigint): bigint {
  return BigInt.asIntN(64, toU64(v));
}

export interface SpawnOptions {
  readonly comm?: string;
  readonly rlimitMemlock?: bigint;
  readonly rlimitNofile?: bigint;
  readonly capabilities?: readonly number[];
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * A user process and its system calls: the raw API. Every call returns
 * what the Linux syscall returns, a non-negative result or -errno, and
 * arguments that are pointers are addresses in this process's memory.
 */
export class Process implements Syscalls {
  readonly task: Task;
  readonly mem: UserMemoryView;

  constructor(
    readonly kernel: Kernel,
    opts: SpawnOptions,
    defaultMemlock: bigint,
  ) {
    const pid = kernel.allocPid();
    const mm = new MmStruct(kernel.phys, kernel.pageSize, (d) =>
      d > 0 ? kernel.objects.alloc('vm_area_struct') : kernel.objects.free('vm_area_struct'),
    );
    mm.fputVma = (f) => this.fput(f);
    this.task = new Task(
      pid,
      opts.comm ?? `proc${pid}`,
      mm,
      new Set(opts.capabilities ?? []),
      opts.uid ?? 0,
      opts.gid ?? 0,
    );
    const memlock = opts.rlimitMemlock ?? defaultMemlock;
    this.task.rlimits.set(RLIMIT_MEMLOCK, { cur: memlock, max: memlock });
    if (opts.rlimitNofile !== undefined)
      this.task.rlimits.set(7, { cur: opts.rlimitNofile, max: opts.rlimitNofile });
    kernel.tasks.set(pid, this.task);
    kernel.objects.alloc('task_struct');
    kernel.objects.alloc('mm_struct');
    this.registerProcfs();
    this.mem = {
      read: (addr, len) => this.userAccess(addr, new Uint8Array(len), false),
      write: (addr, bytes) => {
        this.userAccess(addr, bytes, true);
      },
    };
  }

  get pid(): number {
    return this.task.pid;
  }

  get pageSize(): number {
    return this.kernel.pageSize;
  }

  /** the reason the kernel gave (fail()) for this process's last failed syscall */
  lastError(): string | undefined {
    return this.task.lastError;
  }

  /** mm->locked_vm in pages */
  get lockedVm(): number {
    return this.task.mm?.locked_vm ?? 0;
  }

  /* ---- syscall entry ---- */

  private sys<T>(name: string, fn: () => T): T {
    const k = this.kernel;
    if (k.halted !== undefined) throw k.halted;
    if (this.task.exited) throw new Error(`${name}: process ${this.pid} has exited`);
    const prev = k.enter(this.task);
    try {
      return fn();
    } catch (e) {
      throw this.oops(name, e);
    } finally {
      k.leave(prev);
    }
  }

  private oops(name: string, e: unknown): unknown {
    if (e instanceof KernelOops || e === this.kernel.halted) return e;
    if (e instanceof Error && e.name === 'KernelBug') return e;
    this.kernel.oopses.push(e);
    this.kernel.printk('alert', `Oops in ${name}: ${e instanceof Error ? e.message : String(e)}`);
    return new KernelOops(name, e);
  }

  private userAccess(addr: bigint, buf: Uint8Array, write: boolean): Uint8Array {
    const mm = this.task.mm;
    if (mm === null) throw new SegmentationFault(addr, write ? 'write' : 'read', 'no mm');
    const a = uptr(addr);
    const left = this.sys(write ? 'store' : 'load', () =>
      write ? mm.copyTo(a, buf, 0, buf.length) : mm.copyFrom(a, buf, 0, buf.length),
    );
    if (left !== 0) throw new SegmentationFault(addr + BigInt(buf.length - left), write ? 'write' : 'read');
    return buf;
  }

  /* ---- files ---- */

  fput(file: File): void {
    runAs(this.kernel, this.task, () => fput(file));
  }

  /** install a new file in the lowest free fd (anon_inode_getfd and friends) */
  installFile(file: File, cloexec: boolean): number {
    const fd = this.task.files.getUnusedFdFlags(cloexec);
    if (fd < 0) return fd;
    this.task.files.fdInstall(fd, file);
    return fd;
  }

  private resolve(path: string): string {
    return path.startsWith('/proc/self/') ? `/proc/${this.pid}/${path.slice(11)}` : path;
  }

  private mayOpen(mode: number, uid: number, gid: number, accmode: number): boolean {
    if (capable(this.task, CAP_DAC_OVERRIDE)) return true;
    const bits = this.task.uid === uid ? (mode >> 6) & 7 : this.task.gid === gid ? (mode >> 3) & 7 : mode & 7;
    const want =
      (accmode === O_RDONLY ? 4 : 0) | (accmode === O_WRONLY ? 2 : 0) | (accmode === O_RDWR ? 6 : 0);
    return (bits & want) === want;
  }

  open(path: string, flags: number): number {
    return this.sys('open', () => {
      const fd = this.task.files.getUnusedFdFlags((flags & O_CLOEXEC) !== 0);
      if (fd < 0) return fd;
      const r = this.doOpen(this.resolve(path), flags);
      if (typeof r === 'number') {
        this.task.files.putUnusedFd(fd);
        return r;
      }
      this.task.files.fdInstall(fd, r);
      return fd;
    });
  }

  private doOpen(path: string, flags: number): File | number {
    const k = this.kernel;
    const node = k.vfs.lookup(path);
    if (typeof node === 'number') return fail(-node, `open ${path}: no such file`);
    const acc = flags & O_ACCMODE;
    const fmode =
      (acc === O_RDONLY || acc === O_RDWR ? FMODE_READ : 0) |
      (acc === O_WRONLY || acc === O_RDWR ? FMODE_WRITE : 0);
    const std = FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
    if (node.kind === 'dir') {
      if (acc !== O_RDONLY) return fail(EISDIR, `open ${path}: is a directory`);
      return this.newFile(
        dirFops,
        { kind: 'pseudo', major: 0, minor: 0, mode: S_IFDIR | node.mode, i_private: node },
        fmode | std,
        flags,
        path,
        node,
      );
    }
    if (node.kind === 'attr') {
      if (!this.mayOpen(node.mode, 0, 0, acc)) return fail(EACCES, `open ${path}: permission denied`);
      return this.newFile(
        attrFops,
        { kind: 'pseudo', major: 0, minor: 0, mode: S_IFREG | node.mode, i_private: node },
        fmode | std,
        flags,
        path,
        node,
      );
    }
    if (node.kind !== 'chr') return -EINVAL;
    if (!this.mayOpen(node.mode, node.uid, node.gid, acc))
      return fail(EACCES, `open ${path}: permission denied (mode ${node.mode.toString(8)})`);
    const fops = k.chrdev.lookup(node.major, node.minor);
    if (fops === undefined) return fail(ENXIO, `open ${path}: no driver for ${node.major}:${node.minor}`);
    if (!tryModuleGet(fops.owner)) return fail(ENXIO, `open ${path}: module going away`);
    const inode: Inode = {
      kind: 'chr',
      major: node.major,
      minor: node.minor,
      mode: S_IFCHR | node.mode,
      i_private: undefined,
    };
    const file = new File(fops, inode, fmode | std, flags, path);
    k.objects.alloc('file');
    if (fops.open !== undefined) {
      const ret = fops.open(inode, file);
      if (ret !== 0) {
        /* ->open failed: the file never became "opened", so no ->release */
        modulePut(fops.owner);
        k.objects.free('file');
        return ret;
      }
    }
    return file;
  }

  private newFile(
    fops: File['f_op'],
    inode: Inode,
    fmode: number,
    flags: number,
    path: string,
    priv: unknown,
  ): File {
    const f = new File(fops, inode, fmode, flags, path);
    f.private_data = priv;
    this.kernel.objects.alloc('file');
    return f;
  }

  close(fd: number): number {
    return this.sys('close', () => {
      const f = this.task.files.take(fd);
      if (typeof f === 'number') return f;
      this.fput(f);
      return 0;
    });
  }

  dup(fd: number): number {
    return this.sys('dup', () => {
      const f = this.task.files.get(fd);
      if (f === undefined) return -EBADF;
      const nfd = this.task.files.getUnusedFdFlags(false);
      if (nfd < 0) return nfd;
      f.f_count++;
      this.task.files.fdInstall(nfd, f);
      return nfd;
    });
  }

  /** SCM_RIGHTS: the same open file, installed in another process */
  passFd(fd: number, other: Process): number {
    return this.sys('sendmsg', () => {
      const f = this.task.files.get(fd);
      if (f === undefined) return -EBADF;
      /* no socket reaches a process of another machine; a dead peer's socket is closed */
      if (other.kernel !== this.kernel) return -EINVAL;
      if (other.task.exited) return -EPIPE;
      const nfd = other.task.files.getUnusedFdFlags(false);
      if (nfd < 0) return nfd;
      f.f_count++;
      other.task.files.fdInstall(nfd, f);
      return nfd;
    });
  }

  ioctl(fd: number, request: number, arg: number | bigint = 0): number {
    const k = this.kernel;
    if (k.halted !== undefined) throw k.halted;
    const task = this.task;
    if (task.exited) throw new Error(`ioctl: process ${this.pid} has exited`);
    const prev = k.enter(task);
    try {
      const f = task.files.get(fd);
      if (f === undefined) return -EBADF;
      const cmd = request >>> 0;
      const uarg = ioctlArg(arg);
      if (isVfsIoctl(cmd)) return doVfsIoctl(task, fd, f, cmd, uptr(uarg), k.pageSize);
      const op = f.f_op.unlocked_ioctl;
      if (op === undefined) return -ENOTTY;
      return vfsIoctlResult(op(f, cmd, uarg));
    } catch (e) {
      throw this.oops('ioctl', e);
    } finally {
      k.leave(prev);
    }
  }

  private rw(
    name: string,
    fd: number,
    buf: bigint,
    count: number,
    pos: bigint | undefined,
    write: boolean,
  ): number {
    return this.sys(name, () => {
      if (pos !== undefined && pos < 0n) return -EINVAL;
      const f = this.task.files.get(fd);
      if (f === undefined) return -EBADF;
      if (pos !== undefined && !(f.f_mode & (write ? FMODE_PWRITE : FMODE_PREAD))) return -ESPIPE;
      if (!(f.f_mode & (write ? FMODE_WRITE : FMODE_READ))) return -EBADF;
      const op = write ? f.f_op.write : f.f_op.read;
      if (op === undefined) return -EINVAL;
      /* access_ok: count is a size_t, so a negative one is huge and faults */
      const ubuf = toU64(buf);
      const n = toU64(count);
      if (ubuf + n > BigInt(TASK_SIZE)) return -EFAULT;
      /* rw_verify_area: pos + count must not overflow loff_t */
      const start = pos ?? f.f_pos;
      if (start + n > LOFF_MAX) return -EINVAL;
      const len = n > BigInt(MAX_RW_COUNT) ? MAX_RW_COUNT : Number(n);
      const ppos = { pos: start };
      const ret = op(f, Number(ubuf), len, ppos);
      if (pos === undefined && ret > 0) f.f_pos = ppos.pos;
      return ret;
    });
  }

  read(fd: number, buf: bigint, count: number): number {
    return this.rw('read', fd, buf, count, undefined, false);
  }
  write(fd: number, buf: bigint, count: number): number {
    return this.rw('write', fd, buf, count, undefined, true);
  }
  pread(fd: number, buf: bigint, count: number, offset: bigint): number {
    return this.rw('pread64', fd, buf, count, toS64(offset), false);
  }
  pwrite(fd: number, buf: bigint, count: number, offset: bigint): number {
    return this.rw('pwrite64', fd, buf, count, toS64(offset), true);
  }

  lseek(fd: number, off: bigint, whence: number): bigint {
    const offset = toS64(off);
    return this.sys('lseek', () => {
      const f = this.task.files.get(fd);
      if (f === undefined) return BigInt(-EBADF);
      if (whence < SEEK_SET || whence > 4) return BigInt(-EINVAL);
      if (!(f.f_mode & FMODE_LSEEK)) return BigInt(-ESPIPE);
      if (f.f_op.llseek !== undefined) return f.f_op.llseek(f, offset, whence);
      /* pseudo files seek like default_llseek; character devices need their own llseek */
      if (f.f_inode.kind !== 'pseudo') return BigInt(-ESPIPE);
      let npos: bigint;
      if (whence === SEEK_SET) npos = offset;
      else if (whence === SEEK_CUR) npos = f.f_pos + offset;
      else if (whence === SEEK_END) npos = offset;
      else return BigInt(-EINVAL);
      if (npos < 0n) return BigInt(-EINVAL);
      f.f_pos = npos;
      return npos;
    });
  }

  /* ---- memory ---- */

  mmap(
    addr: bigint,
    length: number | bigint,
    prot: number,
    flags: number,
    fd: number,
    offset: bigint,
  ): bigint {
    return this.sys('mmap', () =>
      BigInt(this.doMmap(toU64(addr), toU64(length), prot, flags, fd, toU64(offset))),
    );
  }

  /* x86 sys_mmap -> sys_mmap_pgoff -> do_mmap_pgoff, in the kernel's order of checks */
  private doMmap(
    addr: bigint,
    length: bigint,
    prot: number,
    flags: number,
    fd: number,
    offset: bigint,
  ): number {
    const k = this.kernel;
    const mm = this.task.mm;
    if (mm === null) return -EINVAL;
    const ps = BigInt(k.pageSize);
    if (offset % ps !== 0n) return -EINVAL;
    let file: File | undefined;
    if (!(flags & MAP_ANONYMOUS)) {
      file = this.task.files.get(fd);
      if (file === undefined) return -EBADF;
    }
    if (length === 0n) return -EINVAL;
    if (!(flags & MAP_FIXED)) addr = roundHintToMin(addr, ps);
    const len = ((length + ps - 1n) / ps) * ps;
    if (len > U64_MAX) return -ENOMEM; /* PAGE_ALIGN wrapped to 0 */
    const pgoff = offset / ps;
    if (pgoff + len / ps > U64_MAX) return -EOVERFLOW;
    /* get_unmapped_area */
    const top = BigInt(TASK_SIZE);
    if (len > top) return -ENOMEM;
    const nlen = Number(len);
    let start: number;
    if (flags & MAP_FIXED) {
      if (addr > top - len) return -ENOMEM;
      if (addr % ps !== 0n) return -EINVAL;
      start = Number(addr);
    } else if (addr !== 0n && addr <= top - len && mm.isFree(Number(addr), nlen)) {
      start = Number(addr);
    } else {
      start = mm.getUnmappedArea(nlen);
      if (start < 0) return start;
    }
    /* security_mmap_addr: below mmap_min_addr needs CAP_SYS_RAWIO */
    if (start < MMAP_MIN_ADDR && !capable(this.task, CAP_SYS_RAWIO)) return -EPERM;
    let vmFlags = protToVmFlags(prot) | VM_MAYREAD | VM_MAYWRITE;
    let type = flags & MAP_TYPE;
    const prof = kernelProfile(k.version);
    if (type === MAP_SHARED_VALIDATE && prof.mapSharedValidate) type = MAP_SHARED;
    if (file !== undefined) {
      /* file_mmap_ok (4.17+): the mapping must end below MAX_LFS_FILESIZE */
      if (prof.mmapFileSizeCheck && (len > LOFF_MAX || pgoff > (LOFF_MAX - len) / ps)) return -EOVERFLOW;
      if (type === MAP_SHARED) {
        if (prot & PROT_WRITE && !(file.f_mode & FMODE_WRITE)) return -EACCES;
        vmFlags |= VM_SHARED;
        if (!(file.f_mode & FMODE_WRITE)) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
      } else if (type !== MAP_PRIVATE) return -EINVAL;
      if (!(file.f_mode & FMODE_READ)) return -EACCES;
      if (file.f_op.mmap === undefined) return -ENODEV;
    } else if (type === MAP_SHARED) vmFlags |= VM_SHARED;
    else if (type !== MAP_PRIVATE) return -EINVAL;
    /* mmap_region: old mappings in the range go first, even if the driver's mmap then fails */
    if (flags & MAP_FIXED) mm.unmapRange(start, start + nlen);
    if (file === undefined) {
      mm.mapAnonymous(start, nlen, vmFlags);
      return start;
    }
    const vma = new Vma(start, start + nlen, vmFlags, Number(pgoff));
    vma.vm_file = file;
    const mmap = file.f_op.mmap;
    if (mmap === undefined) return -ENODEV;
    const ret = mmap(file, vma);
    if (ret < 0) return ret;
    file.f_count++;
    mm.insertVma(vma);
    return start;
  }

  /* do_munmap: start aligned, [start, start+len) inside user space, len != 0 */
  munmap(addr: bigint, length: number | bigint): number {
    return this.sys('munmap', () => {
      const mm = this.task.mm;
      if (mm === null) return -EINVAL;
      const ps = BigInt(this.kernel.pageSize);
      const start = toU64(addr);
      const len = toU64(length);
      const top = BigInt(TASK_SIZE);
      if (start % ps !== 0n || start > top || len > top - start) return -EINVAL;
      const alen = ((len + ps - 1n) / ps) * ps;
      if (alen === 0n) return -EINVAL;
      mm.unmapRange(Number(start), Number(start + alen));
      return 0;
    });
  }

  /* sys_mprotect, in the kernel's order of checks; VMAs before a hole keep their new protection */
  mprotect(addr: bigint, length: number | bigint, prot: number): number {
    return this.sys('mprotect', () => {
      const mm = this.task.mm;
      if (mm === null) return -EINVAL;
      const ps = BigInt(this.kernel.pageSize);
      const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
      const p = prot & ~(PROT_GROWSDOWN | PROT_GROWSUP);
      if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -EINVAL;
      const start = toU64(addr);
      if (start % ps !== 0n) return -EINVAL;
      const len0 = toU64(length);
      if (len0 === 0n) return 0;
      const len = ((len0 + ps - 1n) / ps) * ps;
      const end = start + len;
      if (len > U64_MAX || end > U64_MAX) return -ENOMEM; /* end <= start in u64 */
      if (p & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -EINVAL;
      if (end > BigInt(TASK_SIZE)) return -ENOMEM;
      return mm.mprotect(Number(start), Number(end), p);
    });
  }

  /* ---- eventfd / poll ---- */

  eventfd(initval: number, flags: number): number {
    return this.sys('eventfd2', () => {
      if (flags & ~(EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE)) return -EINVAL;
      const k = this.kernel;
      const ctx = new EventfdCtx(BigInt(initval >>> 0), (flags & EFD_SEMAPHORE) !== 0);
      k.objects.alloc('eventfd_ctx');
      const inode: Inode = { kind: 'anon', major: 0, minor: 0, mode: 0o600, i_private: undefined };
      const file = new File(
        eventfdFops,
        inode,
        FMODE_READ | FMODE_WRITE,
        O_RDWR | (flags & EFD_NONBLOCK),
        'anon_inode:[eventfd]',
      );
      file.private_data = ctx;
      k.objects.alloc('file');
      const fd = this.installFile(file, (flags & EFD_CLOEXEC) !== 0);
      if (fd < 0) this.fput(file);
      return fd;
    });
  }

  poll(fds: PollFd[], timeoutMs: number): number {
    return this.sys('poll', () => {
      const scan = (): number => {
        let n = 0;
        for (const p of fds) {
          p.revents = 0;
          if (p.fd < 0) continue;
          const f = this.task.files.get(p.fd);
          if (f === undefined) p.revents = POLLNVAL;
          else {
            const mask = f.f_op.poll !== undefined ? f.f_op.poll(f) : DEFAULT_POLLMASK;
            p.revents = mask & (p.events | POLLERR | POLLHUP);
          }
          if (p.revents !== 0) n++;
        }
        return n;
      };
      let n = scan();
      if (n > 0 || timeoutMs === 0) return n;
      const clock = this.kernel.clock;
      const limit = timeoutMs < 0 ? Number.POSITIVE_INFINITY : timeoutMs * 1_000_000;
      const woke = clock.runUntil(() => scan() > 0, limit);
      n = scan();
      if (!woke && timeoutMs < 0)
        return fail(EINTR, 'poll would block forever: nothing pending on the virtual clock');
      return n;
    });
  }

  /* ---- files by path ---- */

  stat(path: string): StatResult | number {
    return this.sys('stat', () => {
      const n = this.kernel.vfs.lookup(this.resolve(path));
      if (typeof n === 'number') return n;
      switch (n.kind) {
        case 'chr':
          return {
            mode: S_IFCHR | n.mode,
            rdevMajor: n.major,
            rdevMinor: n.minor,
            size: 0n,
            uid: n.uid,
            gid: n.gid,
          };
        case 'dir':
          return { mode: S_IFDIR | n.mode, rdevMajor: 0, rdevMinor: 0, size: 0n };
        default:
          return {
            mode: S_IFREG | (n.kind === 'attr' ? n.mode : 0o777),
            rdevMajor: 0,
            rdevMinor: 0,
            size: 4096n,
          };
      }
    });
  }

  readlink(path: string): string | number {
    return this.sys('readlink', () => this.kernel.vfs.readlink(this.resolve(path)));
  }

  readdir(path: string): string[] | number {
    return this.sys('getdents64', () => this.kernel.vfs.list(this.resolve(path)));
  }

  /** read a whole text file (sysfs/procfs), as `cat` does */
  readText(path: string): string | number {
    const fd = this.open(path, O_RDONLY);
    if (fd < 0) return fd;
    try {
      const n = this.kernel.vfs.lookup(this.resolve(path));
      if (typeof n === 'number' || n.kind !== 'attr' || n.show === undefined) return -EINVAL;
      return this.sys('read', () => (n.show === undefined ? '' : n.show()));
    } finally {
      this.close(fd);
    }
  }

  /* ---- limits ---- */

  getrlimit(resource: number): Rlimit | number {
    return this.sys('getrlimit', () => {
      if (resource < 0 || resource >= RLIM_NLIMITS) return -EINVAL;
      const r = this.task.rlimit(resource);
      return { cur: r.cur, max: r.max };
    });
  }

  setrlimit(resource: number, cur: bigint, max: bigint): number {
    return this.sys('setrlimit', () => {
      if (resource < 0 || resource >= RLIM_NLIMITS) return -EINVAL;
      if (cur > max) return -EINVAL;
      const old = this.task.rlimit(resource);
      if (max > old.max && !capable(this.task, CAP_SYS_RESOURCE)) return -EPERM;
      this.task.rlimits.set(resource, { cur, max });
      return 0;
    });
  }

  /* ---- lifetime ---- */

  /**
   * do_exit: the address space goes first (exit_mm), then every open file
   * in fd order (exit_files), so releases run with current->mm == NULL as
   * they do in Linux.
   */
  exit(): void {
    if (this.task.exited) return;
    const k = this.kernel;
    runAs(k, this.task, () => {
      const mm = this.task.mm;
      this.task.mm = null;
      if (mm !== null) {
        mm.teardown();
        k.objects.free('mm_struct');
      }
      for (const [fd] of this.task.files.entries()) {
        const f = this.task.files.take(fd);
        if (typeof f !== 'number') this.fput(f);
      }
    });
    this.task.exited = true;
    k.tasks.delete(this.pid);
    k.vfs.remove(`/proc/${this.pid}`);
    k.objects.free('task_struct');
  }

  private registerProcfs(): void {
    const k = this.kernel;
    const t = this.task;
    k.vfs.add(`/proc/${t.pid}/status`, {
      kind: 'attr',
      mode: 0o444,
      show: () => {
        const kb = (pages: number): string => `${String(pages * (k.pageSize / 1024)).padStart(8, ' ')} kB`;
        const mm = t.mm;
        return [
          `Name:\t${t.comm}`,
          'State:\tR (running)',
          `Pid:\t${t.pid}`,
          `Uid:\t${t.uid}\t${t.uid}\t${t.uid}\t${t.uid}`,
          `VmSize:\t${kb(mm === null ? 0 : mm.totalVm() / k.pageSize)}`,
          `VmLck:\t${kb(mm?.locked_vm ?? 0)}`,
          `VmPin:\t${kb(mm?.pinned_vm ?? 0)}`,
          '',
        ].join('\n');
      },
    });
  }
}
