import type { RunContext } from '../../../src/cli/run.ts';
import type { Syscalls } from '../../../src/uapi/index.ts';

/* uses the library handed in the context: a VfioError's message carries the kernel's reason */
export default function (sys: Syscalls, ctx: RunContext): number {
  const c = ctx.lib.VfioContainer.open(sys);
  try {
    ctx.lib.VfioGroup.open(sys, 999);
  } catch (e) {
    ctx.log(e instanceof ctx.lib.VfioError ? `VfioError ${e.code}` : String(e));
  }
  c.close();
  return 0;
}
