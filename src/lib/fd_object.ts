import type { FieldTable, StructLayout, StructValue, Syscalls } from '../uapi/index.ts';
import { check } from './error.ts';
import { Scratch } from './scratch.ts';

/* Largest info argsz the library follows when the kernel asks for more (caps). */
const MAX_INFO_ARGSZ = 1 << 20;

/**
 * An open fd and the process it belongs to: the common part of the
 * container, group and device. Ioctls go through here so that every
 * failure becomes a VfioError naming the request and the fd.
 */
export abstract class FdObject implements Disposable {
  protected readonly scratch: Scratch;
  private closedFlag = false;

  protected constructor(
    readonly sys: Syscalls,
    readonly fd: number,
  ) {
    this.scratch = Scratch.acquire(sys);
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  protected assertOpen(what: string): void {
    if (this.closedFlag) throw new Error(`${what}: fd ${this.fd} was closed by this library`);
  }

  /** An ioctl whose argument is a value (or none); returns the non-negative result. */
  protected ioctlValue(request: number, name: string, arg: number | bigint = 0, argDesc = ''): number {
    this.assertOpen(name);
    const ret = this.sys.ioctl(this.fd, request, arg);
    return check(this.sys, ret, { syscall: 'ioctl', request: name, fd: this.fd, arg: argDesc });
  }

  /**
   * An ioctl on bytes in user memory: `bytes` are copied to scratch (with
   * `room` bytes available for the kernel to write), the call is made, and
   * the first `readBack` bytes of the area are returned.
   */
  protected ioctlBytes(
    request: number,
    name: string,
    bytes: Uint8Array,
    argDesc = '',
    readBack = bytes.length,
    room = readBack,
  ): { ret: number; out: Uint8Array } {
    this.assertOpen(name);
    const addr = this.scratch.put(bytes, room);
    const ret = this.sys.ioctl(this.fd, request, addr);
    check(this.sys, ret, { syscall: 'ioctl', request: name, fd: this.fd, arg: argDesc });
    return { ret, out: readBack > 0 ? this.scratch.read(readBack) : new Uint8Array(0) };
  }

  /** An ioctl on one struct (argsz filled in when the layout has one); returns the struct as written back. */
  protected ioctlStruct<F extends FieldTable>(
    request: number,
    name: string,
    layout: StructLayout<F>,
    value: Partial<StructValue<F>>,
    argDesc = '',
  ): StructValue<F> {
    const withSz = 'argsz' in layout.fields ? { argsz: layout.size, ...value } : value;
    const { out } = this.ioctlBytes(request, name, layout.encode(withSz), argDesc);
    return layout.decode(out);
  }

  /**
   * An INFO ioctl with a capability chain: called with argsz = sizeof(info),
   * then again with the argsz the kernel asked for when the chain did not
   * fit (the kernel sets the CAPS flag and the needed argsz, and returns 0).
   * Returns the decoded struct and the whole buffer (struct + chain).
   */
  protected ioctlInfo<F extends FieldTable & { argsz: readonly ['u32', number] }>(
    request: number,
    name: string,
    layout: StructLayout<F>,
    value: Partial<StructValue<F>>,
    argDesc = '',
  ): { info: StructValue<F>; bytes: Uint8Array } {
    let argsz = layout.size;
    for (;;) {
      const buf = new Uint8Array(argsz);
      layout.encode({ ...value, argsz } as Partial<StructValue<F>>, buf);
      const { out } = this.ioctlBytes(request, name, buf, argDesc);
      const info = layout.decode(out);
      const want = info.argsz as number;
      if (want <= argsz) return { info, bytes: out };
      if (want > MAX_INFO_ARGSZ)
        throw new RangeError(`${name}: the kernel asks for argsz ${want}, more than ${MAX_INFO_ARGSZ}`);
      argsz = want;
    }
  }

  /** Close the fd (idempotent). Subclasses release what they own first. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.scratch.release();
    check(this.sys, this.sys.close(this.fd), { syscall: 'close', arg: String(this.fd) });
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
