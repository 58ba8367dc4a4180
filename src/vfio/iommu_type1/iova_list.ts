import type { ReservedRegion } from '../../iommu/index.ts';
import { type VfioIommu, VfioIova } from './vfio_iommu.ts';

/*
 * The container's valid IOVA ranges (5.4+): the intersection of the
 * domains' apertures minus every attached group's reserved regions
 * (vfio_iommu_aper_*, vfio_iommu_resv_*). Ranges are sorted, ends
 * inclusive. Regions of type 'direct-relaxable' would stay usable; the
 * x86 IOMMU reports 'msi' (the interrupt window) and 'reserved'/'direct'.
 */

/** vfio_iommu_aper_conflict: the new aperture would drop existing ranges' mappings */
export function aperConflict(iommu: VfioIommu, start: bigint, end: bigint): boolean {
  const list = iommu.iova_list;
  const first = list[0];
  const last = list[list.length - 1];
  if (first === undefined || last === undefined) return false;
  /* Disjoint sets, return conflict */
  if (start > last.end || end < first.start) return true;
  const tree = iommu.dma_list;
  /* Check for any existing dma mappings below the new start */
  if (start > first.start && tree.findOverlap(first.start, start - first.start) !== undefined) return true;
  /* Check for any existing dma mappings beyond the new end */
  if (end < last.end && tree.findOverlap(end + 1n, last.end - end) !== undefined) return true;
  return false;
}

/** vfio_iommu_aper_resize: clip the list to [start, end] (or start it) */
export function aperResize(list: VfioIova[], start: bigint, end: bigint): void {
  if (list.length === 0) {
    list.push(new VfioIova(start, end));
    return;
  }
  /* Adjust iova list start */
  while (list.length > 0) {
    const node = list[0]!;
    if (start < node.start) break;
    if (start >= node.start && start < node.end) {
      node.start = start;
      break;
    }
    /* Delete nodes before new start */
    list.shift();
  }
  /* Adjust iova list end */
  for (let i = 0; i < list.length; ) {
    const node = list[i]!;
    if (end > node.end) {
      i++;
      continue;
    }
    if (end > node.start && end <= node.end) {
      node.end = end;
      i++;
      continue;
    }
    /* Delete nodes after new end */
    list.splice(i, 1);
  }
}

function relaxable(r: ReservedRegion): boolean {
  return (r.type as string) === 'direct-relaxable';
}

/** vfio_iommu_resv_conflict: a reserved region covers an existing mapping */
export function resvConflict(iommu: VfioIommu, regions: readonly ReservedRegion[]): boolean {
  for (const r of regions) {
    if (relaxable(r)) continue;
    if (iommu.dma_list.findOverlap(r.start, r.end - r.start + 1n) !== undefined) return true;
  }
  return false;
}

/** vfio_iommu_resv_exclude: cut the reserved regions out; false (-EINVAL) if nothing is left */
export function resvExclude(list: VfioIova[], regions: readonly ReservedRegion[]): boolean {
  for (const r of regions) {
    if (relaxable(r)) continue;
    const start = r.start;
    const end = r.end;
    for (let i = 0; i < list.length; ) {
      const n = list[i]!;
      /* No overlap */
      if (start > n.end || end < n.start) {
        i++;
        continue;
      }
      const repl: VfioIova[] = [];
      if (start > n.start) repl.push(new VfioIova(n.start, start - 1n));
      if (end < n.end) repl.push(new VfioIova(end + 1n, n.end));
      list.splice(i, 1, ...repl);
      i += repl.length;
    }
  }
  return list.length > 0;
}

export function iovaCopy(iommu: VfioIommu): VfioIova[] {
  return iommu.iova_list.map((n) => new VfioIova(n.start, n.end));
}

/** vfio_iommu_aper_expand: after a domain left, the aperture is the remaining domains' intersection */
export function aperExpand(iommu: VfioIommu, list: VfioIova[]): void {
  const first = list[0];
  const last = list[list.length - 1];
  if (first === undefined || last === undefined) return;
  let start = 0n;
  let end = 0xffff_ffff_ffff_ffffn;
  for (const d of iommu.domain_list) {
    const geo = d.domain.geometry;
    if (geo.aperture_start > start) start = geo.aperture_start;
    if (geo.aperture_end < end) end = geo.aperture_end;
  }
  /* Modify aperture limits. The new aper is either same or bigger */
  first.start = start;
  last.end = end;
}

/** vfio_iommu_resv_refresh: rebuild the list from the aperture and the groups still attached */
export function resvRefresh(list: VfioIova[], regions: readonly ReservedRegion[]): boolean {
  const first = list[0];
  const last = list[list.length - 1];
  if (first === undefined || last === undefined) return false;
  const start = first.start;
  const end = last.end;
  list.length = 0;
  aperResize(list, start, end);
  return resvExclude(list, regions);
}
