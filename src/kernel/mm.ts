import { EACCES, EFAULT, ENOMEM, PROT_EXEC, PROT_READ, PROT_WRITE } from '../uapi/index.ts';
import type { File } from './fs.ts';
import type { PhysicalMemory, PhysObject } from './physmem.ts';

/*
 * A process address space: VMAs over physical objects (anonymous memory) or
 * over device memory (VM_IO | VM_PFNMAP, set up by a driver's mmap). Every
 * copy_{from,to}_user, every pin and every access the process makes to its
 * own memory goes through the UserMemory interface below, so a different
 * backing can be plugged in without touching its callers.
 */
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_PFNMAP = 0x400;
export const VM_LOCKED = 0x2000;
export const VM_IO = 0x4000;
export const VM_DONTEXPAND = 0x40000;
export const VM_DONTDUMP = 0x4000000;

/** highest user address + 1: x86_64's TASK_SIZE_MAX, (1 << 47) - PAGE_SIZE */
export const TASK_SIZE = 0x7fff_ffff_f000;
const MMAP_BASE = 0x7f00_0000_0000;

export interface VmOperations {
  readonly name: string;
  /** emulate a CPU access to device memory mapped at vma (offset from vma.start); false: it faults (SIGBUS) */
  // biome-ignore lint/suspicious/noConfusingVoidType: an access that cannot fault returns nothing
  access(vma: Vma, offset: number, buf: Uint8Array, write: boolean): boolean | void;
  close?(vma: Vma): void;
}

export class Vma {
  obj: PhysObject | undefined;
  /** byte offset of vma.start inside obj */
  objOffset = 0;
  vm_file: File | undefined;
  vm_ops: VmOperations | undefined;
  vm_private_data: unknown;
  /** VM_PFNMAP: physical address mapped at vma.start (remap_pfn_range) */
  pfnBase: number | undefined;
  constructor(
    public start: number,
    public end: number,
    public vm_flags: number,
    /** file offset in pages, as the kernel's vm_pgoff */
    public vm_pgoff: number,
  ) {}

  get length(): number {
    return this.end - this.start;
  }
}

export function protToVmFlags(prot: number): number {
  return (
    (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0)
  );
}

export interface UserMemory {
  readonly pageSize: number;
  /** copy_from_user: returns the number of bytes NOT copied */
  copyFrom(addr: number, dst: Uint8Array, dstOff: number, len: number): number;
  /** copy_to_user: returns the number of bytes NOT copied */
  copyTo(addr: number, src: Uint8Array, srcOff: number, len: number): number;
  /** get_user_pages for one page: the physical address, or -errno */
  pinPage(addr: number, write: boolean): number;
  unpinPage(phys: number, dirty: boolean): void;
}

export class MmStruct implements UserMemory {
  readonly vmas: Vma[] = [];
  /** pages charged to RLIMIT_MEMLOCK (mm->locked_vm) */
  locked_vm = 0;
  /** mm->pinned_vm (6.x accounting) */
  pinned_vm = 0;
  /** mm_users: tasks and kernel users holding the address space */
  mm_users = 1;
  dead = false;

  constructor(
    readonly phys: PhysicalMemory,
    readonly pageSize: number,
    private readonly onVmaCount: (delta: number) => void = () => {},
  ) {}

  get pageShift(): number {
    return Math.log2(this.pageSize);
  }

  findVma(addr: number): Vma | undefined {
    const v = this.vmas;
    let lo = 0;
    let hi = v.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = v[mid];
      if (m === undefined) break;
      if (addr < m.start) hi = mid - 1;
      else if (addr >= m.end) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  /** no mapping overlaps [addr, addr+len) (the hint test of arch_get_unmapped_area) */
  isFree(addr: number, len: number): boolean {
    for (const v of this.vmas) if (v.start < addr + len && addr < v.end) return false;
    return true;
  }

  /** top-down search for a free range of len bytes, as the x86 default layout */
  getUnmappedArea(len: number): number {
    let top = MMAP_BASE;
    for (let i = this.vmas.length - 1; i >= 0; i--) {
      const v = this.vmas[i];
      if (v === undefined || v.start >= top) continue;
      if (v.end <= top - len) return top - len;
      top = Math.min(top, v.start);
    }
    return top - len >= this.pageSize ? top - len : -ENOMEM;
  }

  insertVma(vma: Vma): void {
    let i = this.vmas.length;
    while (i > 0 && (this.vmas[i - 1]?.start ?? 0) > vma.start) i--;
    this.vmas.splice(i, 0, vma);
    if (vma.obj !== undefined) vma.obj.mapcount++;
    this.onVmaCount(1);
  }

  /** anonymous mapping of len bytes (page aligned) at addr */
  mapAnonymous(addr: number, len: number, vmFlags: number): Vma {
    const vma = new Vma(addr, addr + len, vmFlags, 0);
    vma.obj = this.phys.alloc(len, this.pageSize);
    this.insertVma(vma);
    return vma;
  }

  private splitAt(addr: number): void {
    const v = this.findVma(addr);
    if (v === undefined || v.start === addr) return;
    const tail = new Vma(addr, v.end, v.vm_flags, v.vm_pgoff + (addr - v.start) / this.pageSize);
    tail.obj = v.obj;
    tail.objOffset = v.objOffset + (addr - v.start);
    tail.vm_file = v.vm_file;
    tail.vm_ops = v.vm_ops;
    tail.vm_private_data = v.vm_private_data;
    tail.pfnBase = v.pfnBase === undefined ? undefined : v.pfnBase + (addr - v.start);
    v.end = addr;
    this.insertVma(tail);
    if (tail.vm_file !== undefined) tail.vm_file.f_count++;
  }

  /** do_munmap: remove [start, end); VMAs partly inside are split first */
  unmapRange(start: number, end: number): void {
    this.splitAt(start);
    this.splitAt(end);
    for (let i = this.vmas.length - 1; i >= 0; i--) {
      const v = this.vmas[i];
      if (v === undefined || v.end <= start || v.start >= end) continue;
      this.vmas.splice(i, 1);
      this.removeVma(v);
    }
  }

  private removeVma(v: Vma): void {
    v.vm_ops?.close?.(v);
    if (v.obj !== undefined) {
      v.obj.mapcount--;
      this.phys.maybeFree(v.obj);
    }
    this.onVmaCount(-1);
    if (v.vm_file !== undefined) this.fputVma(v.vm_file);
  }

  /** set by the syscall layer: drops the file reference a mapping holds */
  fputVma: (f: File) => void = () => {};

  /**
   * mprotect_fixup over [start, end), VMA by VMA as sys_mprotect walks them:
   * -ENOMEM when start is unmapped or a hole follows, -EACCES when a VMA
   * may not get the protection; the VMAs already changed stay changed.
   */
  mprotect(start: number, end: number, prot: number): number {
    const first = this.findVma(start);
    if (first === undefined) return -ENOMEM;
    const want = protToVmFlags(prot);
    let at = start;
    for (;;) {
      const v = this.findVma(at);
      if (v === undefined) return -ENOMEM;
      /*
       * newflags >> 4 puts VM_MAY* in place of VM_*: asking for more than may
       * be granted. Every mapping here may be executable (no noexec mounts).
       */
      const may = ((v.vm_flags >> 4) & (VM_READ | VM_WRITE)) | VM_EXEC;
      if (want & ~may) return -EACCES;
      if (v.start < at) this.splitAt(at);
      if (v.end > end) this.splitAt(end);
      const cur = this.findVma(at) as Vma;
      cur.vm_flags = (cur.vm_flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | want;
      at = cur.end;
      if (at >= end) return 0;
    }
  }

  /** exit_mmap: tear down every mapping */
  teardown(): void {
    for (const v of this.vmas.splice(0)) this.removeVma(v);
    this.dead = true;
  }

  /* ---- UserMemory ---- */

  private access(addr: number, buf: Uint8Array, off: number, len: number, write: boolean): number {
    /* the common case, one anonymous VMA holding the whole range: no loop */
    const v = this.findVma(addr);
    if (
      v !== undefined &&
      v.obj !== undefined &&
      addr + len <= v.end &&
      v.vm_flags & (write ? VM_WRITE : VM_READ)
    ) {
      if (write) v.obj.writeFrom(v.objOffset + (addr - v.start), buf, off, len);
      else v.obj.readInto(v.objOffset + (addr - v.start), buf, off, len);
      return 0;
    }
    return this.accessWalk(addr, buf, off, len, write);
  }

  private accessWalk(addr: number, buf: Uint8Array, off: number, len: number, write: boolean): number {
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const v = this.findVma(a);
      if (v === undefined || !(v.vm_flags & (write ? VM_WRITE : VM_READ))) break;
      const n = Math.min(len - done, v.end - a);
      if (v.obj !== undefined) {
        if (write) v.obj.writeFrom(v.objOffset + (a - v.start), buf, off + done, n);
        else v.obj.readInto(v.objOffset + (a - v.start), buf, off + done, n);
      } else if (v.vm_ops !== undefined) {
        const part = buf.subarray(off + done, off + done + n);
        if (v.vm_ops.access(v, a - v.start, part, write) === false) break;
      } else break;
      done += n;
    }
    return len - done;
  }

  copyFrom(addr: number, dst: Uint8Array, dstOff: number, len: number): number {
    if (addr < 0 || addr + len > TASK_SIZE) return len;
    return this.access(addr, dst, dstOff, len, false);
  }

  copyTo(addr: number, src: Uint8Array, srcOff: number, len: number): number {
    if (addr < 0 || addr + len > TASK_SIZE) return len;
    return this.access(addr, src, srcOff, len, true);
  }

  /**
   * get_user_pages(FOLL_WRITE?) for the page holding addr: -EFAULT when
   * nothing is mapped, the mapping forbids the access, or it is device
   * memory (VM_IO | VM_PFNMAP has no struct page to pin).
   */
  pinPage(addr: number, write: boolean): number {
    const v = this.findVma(addr);
    if (v === undefined) return -EFAULT;
    if (v.vm_flags & (VM_IO | VM_PFNMAP) || v.obj === undefined) return -EFAULT;
    if (write ? !(v.vm_flags & VM_WRITE) : !(v.vm_flags & VM_READ)) return -EFAULT;
    const off = v.objOffset + (addr - v.start);
    const page = Math.floor(off / this.pageSize);
    v.obj.pin(page);
    return v.obj.phys + page * this.pageSize;
  }

  unpinPage(phys: number, dirty: boolean): void {
    const o = this.phys.lookup(phys);
    if (o === undefined) throw new Error(`put_page: no page at phys 0x${phys.toString(16)}`);
    o.unpin(Math.floor((phys - o.phys) / this.pageSize), dirty);
    this.phys.maybeFree(o);
  }

  /** follow_pfn for VM_PFNMAP mappings (device memory): phys or -EFAULT */
  followPfn(addr: number): number {
    const v = this.findVma(addr);
    if (v === undefined || !(v.vm_flags & VM_PFNMAP) || v.pfnBase === undefined) return -EFAULT;
    return v.pfnBase + (addr - v.start);
  }

  /** bytes of anonymous memory mapped (VmSize-ish) */
  totalVm(): number {
    return this.vmas.reduce((s, v) => s + v.length, 0);
  }
}
