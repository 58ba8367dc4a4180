import type { RunContext } from '../../../src/cli/run.ts';
import {
  O_RDWR,
  type Syscalls,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
} from '../../../src/uapi/index.ts';

/* a small program for `vfio-ts run`: opens the container, asks two things, exits with status 0 */
export default function (sys: Syscalls, ctx: RunContext): number {
  const c = sys.open('/dev/vfio/vfio', O_RDWR);
  ctx.log(`device ${ctx.device} in group ${ctx.group}, IOMMU ${ctx.iommu}`);
  if (sys.ioctl(c, VFIO_GET_API_VERSION) !== 0) return 5;
  sys.ioctl(c, VFIO_CHECK_EXTENSION, ctx.iommu === 'type1' ? 1 : 2);
  ctx.checkpoint();
  sys.close(c);
  return 0;
}
