/* The IOMMU core: the public header of src/iommu. */
export * from './core.ts';
export type * from './domain.ts';
export * from './iommu_group.ts';
export * from './powerpc/index.ts';
export { type IommuCoreProfile, iommuCoreProfile } from './profile.ts';
export * from './x86/index.ts';
