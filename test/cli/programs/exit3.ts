import type { Syscalls } from '../../../src/uapi/index.ts';

/* exits with status 3 after a failing call */
export function main(sys: Syscalls): number {
  sys.open('/dev/vfio/999', 2);
  return 3;
}
