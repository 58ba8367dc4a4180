import type { ArchName, ModuleSpec } from '../kernel/index.ts';
import { vfioModule } from '../vfio/index.ts';
import { vfioIommuSpaprTceModule } from '../vfio/iommu_spapr_tce/index.ts';
import { vfioIommuType1Module } from '../vfio/iommu_type1/index.ts';
import { vfioPciModule } from '../vfio/pci/index.ts';

/*
 * The modules installed on a host, per architecture (what `make
 * modules_install` would leave in /lib/modules). vfio_init asks for the
 * IOMMU backends by name; a backend not built for the arch is simply not
 * found, as on a real system.
 */
export function installedModules(arch: ArchName): ModuleSpec[] {
  const mods = [vfioModule, vfioPciModule];
  if (arch === 'ppc64') mods.push(vfioIommuSpaprTceModule);
  if (arch === 'x86_64') mods.push(vfioIommuType1Module);
  return mods;
}
