/* vfio_iommu_type1: the public header of src/vfio/iommu_type1. */
export { type Type1Debug, type Type1Mapping, type1Debug, type1DebugOf } from './debug.ts';
export { DRIVER_DESC, DRIVER_VERSION, vfioIommuType1Module } from './module.ts';
export { type Type1Params, type1Params, U16_MAX } from './params.ts';
export { type Type1Profile, type1Profile } from './profile.ts';
export { useDmaTree } from './vfio_iommu.ts';
