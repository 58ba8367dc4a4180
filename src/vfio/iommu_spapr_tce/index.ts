/* vfio_iommu_spapr_tce: the public header of src/vfio/iommu_spapr_tce. */
export { type SpaprTceProfile, spaprTceProfile } from './profile.ts';
export { DRIVER_DESC, DRIVER_VERSION, tceIommuDriverOps, vfioIommuSpaprTceModule } from './tce_iommu.ts';
export { TceContainerV41 } from './tce_v41.ts';
export { TceContainerV612 } from './tce_v612.ts';
