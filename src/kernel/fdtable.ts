import { EBADF, EMFILE } from '../uapi/index.ts';
import type { File } from './fs.ts';

/*
 * A task's file descriptor table: lowest free descriptor first, with the
 * close-on-exec bit, and the reserve-then-install protocol of
 * get_unused_fd_flags / fd_install / put_unused_fd.
 */
const RESERVED = Symbol('reserved');

export class FdTable {
  private fds: (File | typeof RESERVED | undefined)[] = [];
  private cloexec: boolean[] = [];
  /** RLIMIT_NOFILE, read at allocation time */
  nofile: () => number = () => 1024;

  getUnusedFdFlags(cloexec: boolean): number {
    const max = this.nofile();
    let fd = this.fds.indexOf(undefined);
    if (fd < 0) fd = this.fds.length;
    if (fd >= max) return -EMFILE;
    this.fds[fd] = RESERVED;
    this.cloexec[fd] = cloexec;
    return fd;
  }

  fdInstall(fd: number, file: File): void {
    if (this.fds[fd] !== RESERVED) throw new Error(`fd_install on fd ${fd} that was not reserved`);
    this.fds[fd] = file;
  }

  putUnusedFd(fd: number): void {
    if (this.fds[fd] === RESERVED) this.fds[fd] = undefined;
  }

  /** fdget: the file, or undefined for a closed/reserved/negative fd */
  get(fd: number): File | undefined {
    const f = this.fds[fd];
    return f === RESERVED ? undefined : f;
  }

  /** detach fd from the table (close's first half); the caller drops the file */
  take(fd: number): File | number {
    const f = this.fds[fd];
    if (f === undefined || f === RESERVED) return -EBADF;
    this.fds[fd] = undefined;
    this.cloexec[fd] = false;
    return f;
  }

  isCloexec(fd: number): boolean {
    return this.cloexec[fd] === true;
  }

  setCloexec(fd: number, on: boolean): void {
    this.cloexec[fd] = on;
  }

  /** open descriptors in ascending order */
  entries(): [number, File][] {
    const out: [number, File][] = [];
    this.fds.forEach((f, fd) => {
      if (f !== undefined && f !== RESERVED) out.push([fd, f]);
    });
    return out;
  }
}
