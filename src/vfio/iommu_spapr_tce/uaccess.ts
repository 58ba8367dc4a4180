import { copyFromUser, copyToUser, fail, uarg } from '../../kernel/index.ts';
import { EFAULT, EINVAL, type FieldTable, type StructLayout, type StructValue } from '../../uapi/index.ts';

/*
 * `struct x param; copy_from_user(&param, (void __user *)arg, minsz)`:
 * the first minsz bytes from the user, the rest of the struct zero; and
 * its copy_to_user counterpart.
 */
export function copyStructFromUser<F extends FieldTable>(
  layout: StructLayout<F>,
  arg: bigint,
  minsz: number,
): StructValue<F> | undefined {
  const b = new Uint8Array(layout.size);
  if (copyFromUser(b, uarg(arg), minsz) !== 0) return undefined;
  return layout.decode(b);
}

export function copyStructToUser<F extends FieldTable>(
  layout: StructLayout<F>,
  arg: bigint,
  value: Partial<StructValue<F>>,
  n: number,
): boolean {
  const b = layout.encode(value);
  return copyToUser(uarg(arg), b, n) === 0;
}

type IoctlArgFields = FieldTable & { argsz: readonly ['u32', number]; flags: readonly ['u32', number] };

/**
 * The opening every tce_iommu_ioctl handler shares, in the kernel's order:
 * copy_from_user(minsz) (-EFAULT), `argsz < minsz` (-EINVAL), then, when
 * `allowedFlags` is given, `flags & ~allowedFlags` (-EINVAL). Returns the
 * struct or -errno.
 */
export function copyIoctlArg<F extends IoctlArgFields>(
  ioctl: string,
  layout: StructLayout<F>,
  arg: bigint,
  minsz: number,
  allowedFlags?: number,
): StructValue<F> | number {
  const param = copyStructFromUser(layout, arg, minsz);
  if (param === undefined) return -EFAULT;
  const { argsz, flags } = param as { argsz: number; flags: number };
  if (argsz < minsz) return fail(EINVAL, `${ioctl}: argsz ${argsz} < ${minsz}`);
  if (allowedFlags !== undefined && (flags & ~allowedFlags) !== 0)
    return fail(
      EINVAL,
      allowedFlags === 0
        ? `${ioctl}: flags 0x${flags.toString(16)} (none is supported)`
        : `${ioctl}: unknown flags 0x${flags.toString(16)}`,
    );
  return param;
}
