import { currentKernel, type Kernel, type ModuleSpec } from '../../kernel/index.ts';
import { type VfioIommuDriverOps, vfioRegisterIommuDriver, vfioUnregisterIommuDriver } from '../index.ts';
import { spaprTceProfile } from './profile.ts';
import { tceIommuDriverOpsV41 } from './tce_v41.ts';
import { tceIommuDriverOpsV612 } from './tce_v612.ts';

/*
 * The vfio_iommu_spapr_tce module: tce_iommu_init registers
 * tce_iommu_driver_ops with the VFIO core, tce_iommu_cleanup removes
 * them. The ops table is the module's own static, one per kernel.
 */
export const DRIVER_VERSION = '0.1';
export const DRIVER_AUTHOR = 'aik@ozlabs.ru';
export const DRIVER_DESC = 'VFIO IOMMU SPAPR TCE';

const driverOps = new WeakMap<Kernel, VfioIommuDriverOps>();

/** tce_iommu_driver_ops of the running kernel (undefined while the module is not loaded) */
export function tceIommuDriverOps(): VfioIommuDriverOps | undefined {
  return driverOps.get(currentKernel());
}

export const vfioIommuSpaprTceModule: ModuleSpec = {
  name: 'vfio_iommu_spapr_tce',
  /*
   * It uses vfio's symbols, but vfio_init itself asks for this module by
   * name while vfio is still coming up: the dependency is recorded by
   * hand so `rmmod vfio` is refused while we are loaded.
   */
  init(mod) {
    const k = currentKernel();
    const base =
      spaprTceProfile(k.version).container === 'single-table'
        ? tceIommuDriverOpsV41()
        : tceIommuDriverOpsV612();
    const ops: VfioIommuDriverOps = { ...base, owner: mod };
    const ret = vfioRegisterIommuDriver(ops);
    if (ret !== 0) return ret;
    driverOps.set(k, ops);
    k.modules.find('vfio')?.users.add(mod);
    return 0;
  },
  exit() {
    const k = currentKernel();
    const ops = driverOps.get(k);
    if (ops !== undefined) vfioUnregisterIommuDriver(ops);
    driverOps.delete(k);
  },
};
