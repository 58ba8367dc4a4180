import type { IommuGroup } from '../../iommu/index.ts';
import { currentKernel, fail, type Module, type ModuleSpec, traced } from '../../kernel/index.ts';
import {
  EINVAL,
  ENOENT,
  VFIO_CHECK_EXTENSION,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../../uapi/index.ts';
import {
  type VfioIommuDriverOps,
  vfioOf,
  vfioRegisterIommuDriver,
  vfioUnregisterIommuDriver,
} from '../index.ts';
import { vfioIommuType1AttachGroup, vfioIommuType1DetachGroup, vfioIommuType1Release } from './attach.ts';
import { vfioIommuType1CheckExtension, vfioIommuType1Ioctl } from './ioctl.ts';
import { registerType1Params, type1Params, unregisterType1Params } from './params.ts';
import { type1Profile } from './profile.ts';
import { VfioIommu } from './vfio_iommu.ts';

/*
 * The vfio_iommu_type1 module: the driver ops it registers with the VFIO
 * core at init ("vfio-iommu-type1"), open/release of a container's IOMMU
 * state, and the dispatch of container ioctls.
 */
export const DRIVER_VERSION = '0.2';
export const DRIVER_DESC = 'Type1 IOMMU driver for VFIO';

const vfioIommuType1Open = traced(
  'vfio_iommu_type1_open',
  (arg: bigint): object | number => {
    const k = currentKernel();
    const iommu = new VfioIommu(k, type1Profile(k.version));
    switch (arg) {
      case BigInt(VFIO_TYPE1_IOMMU):
        break;
      case BigInt(VFIO_TYPE1_NESTING_IOMMU):
        iommu.nesting = true;
        iommu.v2 = true;
        break;
      case BigInt(VFIO_TYPE1v2_IOMMU):
        iommu.v2 = true;
        break;
      default:
        return fail(EINVAL, `vfio_iommu_type1_open: unknown IOMMU type ${arg}`);
    }
    iommu.dma_avail = type1Params(k).dma_entry_limit;
    k.objects.alloc('vfio_iommu');
    return iommu;
  },
  (arg) => `arg=${arg}`,
);

const vfioIommuType1ReleaseOp = traced('vfio_iommu_type1_release', (data: object): void => {
  vfioIommuType1Release(data as VfioIommu);
  currentKernel().objects.free('vfio_iommu');
});

const attachGroup = traced(
  'vfio_iommu_type1_attach_group',
  (data: object, group: IommuGroup): number => vfioIommuType1AttachGroup(data as VfioIommu, group),
  (_d, g) => `group=${g.id}`,
);

const detachGroup = traced(
  'vfio_iommu_type1_detach_group',
  (data: object, group: IommuGroup): void => vfioIommuType1DetachGroup(data as VfioIommu, group),
  (_d, g) => `group=${g.id}`,
);

function ioctl(data: object | null, cmd: number, arg: bigint): number {
  if (data === null) {
    /* only CHECK_EXTENSION reaches a driver before SET_IOMMU */
    if (cmd !== VFIO_CHECK_EXTENSION) return -EINVAL;
    return vfioIommuType1CheckExtension(null, arg, type1Profile(currentKernel().version));
  }
  return vfioIommuType1Ioctl(data as VfioIommu, cmd, arg);
}

function makeOps(owner: Module): VfioIommuDriverOps {
  return {
    name: 'vfio-iommu-type1',
    owner,
    open: vfioIommuType1Open,
    release: vfioIommuType1ReleaseOp,
    ioctl,
    attach_group: attachGroup,
    detach_group: detachGroup,
  };
}

const registered = new WeakMap<object, VfioIommuDriverOps>();

export const vfioIommuType1Module: ModuleSpec = {
  name: 'vfio_iommu_type1',
  /*
   * No `depends: ['vfio']`: 4.1's vfio_init request_module()s us while
   * vfio itself is still coming up; its symbols resolve once it is set up.
   */
  init(mod) {
    const k = currentKernel();
    if (vfioOf(k) === undefined)
      return fail(ENOENT, 'vfio_iommu_type1: Unknown symbol vfio_register_iommu_driver');
    const ops = makeOps(mod);
    const r = vfioRegisterIommuDriver(ops);
    if (r !== 0) return r;
    registered.set(k, ops);
    registerType1Params(k, type1Profile(k.version).dmaEntryLimit);
    return 0;
  },
  exit() {
    const k = currentKernel();
    const ops = registered.get(k);
    if (ops !== undefined) vfioUnregisterIommuDriver(ops);
    registered.delete(k);
    unregisterType1Params(k);
  },
};
