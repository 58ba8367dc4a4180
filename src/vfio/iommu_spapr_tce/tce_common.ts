import type { IommuTable } from '../../iommu/index.ts';
import { currentKernel, fail, pr_err } from '../../kernel/index.ts';
import { EINVAL } from '../../uapi/index.ts';
import { type SpaprTceProfile, spaprTceProfile } from './profile.ts';

/*
 * What the 4.1 and 6.12 versions of vfio_iommu_spapr_tce.c write alike;
 * each version's functions keep their own order of checks and call these
 * at the same places.
 */

export function prof(): SpaprTceProfile {
  return spaprTceProfile(currentKernel().version);
}

/** tce_page_is_contained: the TCE page must not be bigger than the page it points into (no huge pages here) */
export function tcePageIsContained(pageShift: number): boolean {
  return currentKernel().pageShift >= pageShift;
}

/** VFIO_IOMMU_MAP_DMA: vaddr and size must be multiples of the IOMMU page */
export function checkMapAlignment(tbl: IommuTable, vaddr: bigint, size: bigint): number {
  const pmask = BigInt(tbl.pageSize) - 1n;
  if ((size & pmask) !== 0n || (vaddr & pmask) !== 0n)
    return fail(
      EINVAL,
      `VFIO_IOMMU_MAP_DMA: vaddr or size is not aligned to the ${tbl.pageSize}-byte IOMMU page`,
    );
  return 0;
}

/** VFIO_IOMMU_UNMAP_DMA: size must be a multiple of the IOMMU page */
export function checkUnmapSize(tbl: IommuTable, size: bigint): number {
  if ((size & (BigInt(tbl.pageSize) - 1n)) !== 0n)
    return fail(EINVAL, `VFIO_IOMMU_UNMAP_DMA: size is not aligned to the ${tbl.pageSize}-byte IOMMU page`);
  return 0;
}

/** the pr_err of tce_iommu_build{,_v2} when an entry cannot be written */
export function prErrBuildFailed(fn: string, entry: number, iopsize: number, tce: number, ret: number): void {
  pr_err(
    `iommu_tce: ${fn} failed ioba=${(entry * iopsize).toString(16)}, tce=${tce.toString(16)}, ret=${ret}`,
  );
}

/** function_graph argument lines */
export function fmtBuildArgs(_c: unknown, _t: unknown, entry: number, tce: number, pages: number): string {
  return `entry=0x${entry.toString(16)} tce=0x${tce.toString(16)} pages=${pages}`;
}

export function fmtClearArgs(_c: unknown, _t: unknown, entry: number, pages: number): string {
  return `entry=0x${entry.toString(16)} pages=${pages}`;
}
