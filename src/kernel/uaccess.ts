import { EFAULT, EINVAL, ENOMEM } from '../uapi/index.ts';
import { current } from './current.ts';

/*
 * copy_from_user and friends, against current->mm. They return what the
 * kernel's return: the number of bytes not copied (0 on success), or for
 * get_user/strndup_user an errno.
 */
function mmOrNull() {
  return current().mm;
}

/** copy_from_user(dst, uaddr, n): bytes NOT copied; the tail of dst is zeroed on fault */
export function copyFromUser(dst: Uint8Array, uaddr: number, n: number, dstOff = 0): number {
  const mm = mmOrNull();
  if (mm === null) return n;
  const left = mm.copyFrom(uaddr, dst, dstOff, n);
  if (left > 0) dst.fill(0, dstOff + n - left, dstOff + n);
  return left;
}

/** copy_to_user(uaddr, src, n): bytes NOT copied */
export function copyToUser(uaddr: number, src: Uint8Array, n = src.length, srcOff = 0): number {
  const mm = mmOrNull();
  if (mm === null) return n;
  return mm.copyTo(uaddr, src, srcOff, n);
}

/** get_user(x, (s32 __user *)p): the value, or -EFAULT */
export function getUserS32(uaddr: number): { value: number } | number {
  const b = new Uint8Array(4);
  if (copyFromUser(b, uaddr, 4) !== 0) return -EFAULT;
  return { value: new DataView(b.buffer).getInt32(0, true) };
}

export function putUserU32(uaddr: number, v: number): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return copyToUser(uaddr, b) === 0 ? 0 : -EFAULT;
}

/**
 * strndup_user(s, n): -EFAULT when the string cannot be read, -EINVAL when
 * no NUL appears within n bytes (strnlen_user returned > n).
 */
export function strndupUser(uaddr: number, n: number): string | number {
  const mm = mmOrNull();
  if (mm === null) return -EFAULT;
  const one = new Uint8Array(1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (mm.copyFrom(uaddr + i, one, 0, 1) !== 0) return -EFAULT;
    const c = one[0] ?? 0;
    if (c === 0) return new TextDecoder().decode(new Uint8Array(out));
    out.push(c);
  }
  return -EINVAL;
}

/** memdup_user: a copy of n user bytes, or -EFAULT / -ENOMEM */
export function memdupUser(uaddr: number, n: number): Uint8Array | number {
  if (n < 0 || n > 1 << 30) return -ENOMEM;
  const b = new Uint8Array(n);
  return copyFromUser(b, uaddr, n) === 0 ? b : -EFAULT;
}

/** the user pointer an ioctl's unsigned long arg carries */
export function uarg(arg: bigint): number {
  /* compare after the conversion (bigint compares are slow): rounding is monotone and 2^47 is exact, so the result is the same */
  const n = Number(arg);
  return Math.min(n, 0x8000_0000_0000);
}
