import { copyFromUser, copyToUser, uarg } from '../../kernel/index.ts';
import type { FieldTable, StructLayout, StructValue } from '../../uapi/index.ts';

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
