import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, type Syscalls } from '../uapi/index.ts';
import { checkAddr } from './error.ts';

/*
 * Every ioctl argument is bytes in the process's memory, so the library
 * needs a little user memory to build them in. One scratch mapping per
 * process is shared by every library object of that process (counted
 * references: the last object closed unmaps it, so a process that closed
 * everything is back to the mappings it had). Calls are synchronous, so a
 * call owns the whole scratch area from its first write to its last read.
 */
interface Arena {
  addr: bigint;
  size: number;
  refs: number;
}

const arenas = new WeakMap<Syscalls, Arena>();

export class Scratch {
  private released = false;
  private constructor(
    private readonly sys: Syscalls,
    private readonly arena: Arena,
  ) {}

  /** Take a reference on sys's scratch area. */
  static acquire(sys: Syscalls): Scratch {
    let a = arenas.get(sys);
    if (a === undefined) {
      a = { addr: 0n, size: 0, refs: 0 };
      arenas.set(sys, a);
    }
    a.refs++;
    return new Scratch(sys, a);
  }

  /** The address of at least `size` bytes of scratch memory (grown on demand). */
  buf(size: number): bigint {
    const a = this.arena;
    if (this.released) throw new Error('scratch memory used after its owner was closed');
    if (size <= a.size) return a.addr;
    const ps = this.sys.pageSize;
    const len = Math.max(ps, Math.ceil(size / ps) * ps);
    const addr = checkAddr(
      this.sys,
      this.sys.mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n),
      { syscall: 'mmap', arg: `NULL, ${len}, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0` },
    );
    if (a.size > 0) this.sys.munmap(a.addr, a.size);
    a.addr = addr;
    a.size = len;
    return addr;
  }

  /** Write bytes at the start of the scratch area and return its address. */
  put(bytes: Uint8Array, room = bytes.length): bigint {
    const addr = this.buf(Math.max(room, bytes.length));
    this.sys.mem.write(addr, bytes);
    return addr;
  }

  read(len: number, at = 0): Uint8Array {
    return this.sys.mem.read(this.arena.addr + BigInt(at), len);
  }

  /** Drop the reference; the last one unmaps the area. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const a = this.arena;
    if (--a.refs > 0) return;
    if (a.size > 0) this.sys.munmap(a.addr, a.size);
    a.addr = 0n;
    a.size = 0;
  }
}
