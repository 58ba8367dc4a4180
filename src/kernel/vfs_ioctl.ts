import {
  CAP_SYS_ADMIN,
  EFAULT,
  EINVAL,
  ENOIOCTLCMD,
  ENOTTY,
  EOPNOTSUPP,
  EPERM,
  FIFREEZE,
  FIGETBSZ,
  FIOASYNC,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  FIOQSIZE,
  FITHAW,
  FS_IOC_FIEMAP,
  O_NONBLOCK,
} from '../uapi/index.ts';
import type { File } from './fs.ts';
import type { MmStruct } from './mm.ts';
import { capable, type Task } from './task.ts';

/*
 * fs/ioctl.c: the commands the VFS answers itself for every file before a
 * driver's unlocked_ioctl sees anything (do_vfs_ioctl), and vfs_ioctl's
 * mapping of -ENOIOCTLCMD to -ENOTTY. A VFIO fd therefore never sees
 * FIOCLEX or FIONBIO, exactly as in Linux.
 */
const FASYNC = 0o20000;

function getUserInt(mm: MmStruct | null, addr: number): number | undefined {
  const b = new Uint8Array(4);
  if (mm === null || mm.copyFrom(addr, b, 0, 4) !== 0) return undefined;
  return new DataView(b.buffer).getInt32(0, true);
}

function putUser(mm: MmStruct | null, addr: number, v: bigint, size: 4 | 8): number {
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  if (size === 4) dv.setInt32(0, Number(v), true);
  else dv.setBigInt64(0, v, true);
  return mm === null || mm.copyTo(addr, b, 0, size) !== 0 ? -EFAULT : 0;
}

/** true when do_vfs_ioctl handles cmd itself */
export function isVfsIoctl(cmd: number): boolean {
  switch (cmd) {
    case FIOCLEX:
    case FIONCLEX:
    case FIONBIO:
    case FIOASYNC:
    case FIOQSIZE:
    case FIGETBSZ:
    case FIFREEZE:
    case FITHAW:
    case FS_IOC_FIEMAP:
      return true;
    default:
      return false;
  }
}

/** do_vfs_ioctl for the commands isVfsIoctl() accepts; uaddr is the arg as a user pointer */
export function doVfsIoctl(
  task: Task,
  fd: number,
  f: File,
  cmd: number,
  uaddr: number,
  pageSize: number,
): number {
  const mm = task.mm;
  switch (cmd) {
    case FIOCLEX:
      task.files.setCloexec(fd, true);
      return 0;
    case FIONCLEX:
      task.files.setCloexec(fd, false);
      return 0;
    case FIONBIO: {
      const on = getUserInt(mm, uaddr);
      if (on === undefined) return -EFAULT;
      f.f_flags = on !== 0 ? f.f_flags | O_NONBLOCK : f.f_flags & ~O_NONBLOCK;
      return 0;
    }
    case FIOASYNC: {
      const on = getUserInt(mm, uaddr);
      if (on === undefined) return -EFAULT;
      /* no simulated file implements ->fasync: turning it on is -ENOTTY */
      const flag = on !== 0 ? FASYNC : 0;
      return (flag ^ f.f_flags) & FASYNC ? -ENOTTY : 0;
    }
    case FIOQSIZE: {
      /* only directories, regular files and symlinks have a size to report */
      if (f.f_inode.kind !== 'pseudo') return -ENOTTY;
      return putUser(mm, uaddr, f.f_op.name === 'dir_fops' ? 0n : BigInt(pageSize), 8);
    }
    case FIGETBSZ:
      /* devtmpfs, sysfs, procfs and the anon inode fs all have s_blocksize = PAGE_SIZE */
      return putUser(mm, uaddr, BigInt(pageSize), 4);
    case FIFREEZE:
      if (!capable(task, CAP_SYS_ADMIN)) return -EPERM;
      return -EOPNOTSUPP; /* no simulated superblock can be frozen */
    case FITHAW:
      if (!capable(task, CAP_SYS_ADMIN)) return -EPERM;
      return -EINVAL; /* thaw_super: not frozen */
    case FS_IOC_FIEMAP:
      return -EOPNOTSUPP; /* no inode_operations->fiemap */
    default:
      return -ENOTTY;
  }
}

/** vfs_ioctl: the driver's answer, -ENOTTY when it has none */
export function vfsIoctlResult(ret: number): number {
  return ret === -ENOIOCTLCMD ? -ENOTTY : ret;
}
