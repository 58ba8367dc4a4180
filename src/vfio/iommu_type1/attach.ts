import {
  IOMMU_CACHE,
  type IommuGroup,
  iommuAttachGroup,
  iommuCapableCacheCoherency,
  iommuDetachGroup,
  iommuDomainAlloc,
  iommuDomainFree,
  iommuEnableNesting,
  iommuEnforceCacheCoherency,
  iommuGetGroupResvRegions,
  iommuIntrRemap,
  iommuMap,
  type ReservedRegion,
  VTD_PAGE_SHIFT,
} from '../../iommu/index.ts';
import { currentKernel, fail, pr_warn, WARN } from '../../kernel/index.ts';
import { EBUSY, EINVAL, EIO, EPERM } from '../../uapi/index.ts';
import { ipfnOf, vfioIommuUnmapUnpinAll } from './dma.ts';
import {
  aperConflict,
  aperExpand,
  aperResize,
  iovaCopy,
  resvConflict,
  resvExclude,
  resvRefresh,
} from './iova_list.ts';
import { type1Params } from './params.ts';
import { VfioDomain, type VfioIommu, type VfioIova } from './vfio_iommu.ts';

/*
 * vfio_iommu_type1_attach_group / detach_group: a domain per group,
 * unless an existing domain of the container is compatible (same IOMMU
 * ops and the same cache coherency), in which case the group joins it;
 * a new domain gets every existing mapping replayed into it. The last
 * group out takes every mapping with it.
 */
const PAGE_MASK = 0xffff_ffff_ffff_f000n;
const PAGE_SIZE = 4096n;

function findGroupDomain(iommu: VfioIommu, group: IommuGroup): VfioDomain | undefined {
  return iommu.domain_list.find((d) => d.group_list.includes(group));
}

/** vfio_pgsize_bitmap / vfio_update_pgsize_bitmap: what all domains map, sub-page sizes folded into PAGE_SIZE */
export function vfioUpdatePgsizeBitmap(iommu: VfioIommu): void {
  let bitmap = 0xffff_ffff_ffff_ffffn;
  for (const d of iommu.domain_list) bitmap &= d.domain.pgsize_bitmap;
  if (bitmap & ~PAGE_MASK) {
    bitmap &= PAGE_MASK;
    bitmap |= PAGE_SIZE;
  }
  iommu.pgsize_bitmap = bitmap;
  let shift = 0;
  while (shift < 63 && ((bitmap >> BigInt(shift)) & 1n) === 0n) shift++;
  iommu.pgshift = shift;
}

/**
 * vfio_iommu_replay: map every existing mapping into a new domain, reading
 * the physical pages back from the first domain (they are pinned already).
 */
function vfioIommuReplay(iommu: VfioIommu, domain: VfioDomain): number {
  const d = iommu.domain_list[0];
  let ret = 0;
  const perDomain = iommu.profile.perDomainCoherency;
  iommu.dma_list.forEach((dma) => {
    if (ret !== 0) return;
    /* If there's not a domain, there better not be any mappings */
    if (WARN(d === undefined, 'vfio_iommu_replay: mappings without a domain')) {
      ret = -EINVAL;
      return;
    }
    if (d === undefined) return;
    const pt = d.domain.pt;
    const start = ipfnOf(dma.iova);
    const end = start + Number(dma.size >> BigInt(VTD_PAGE_SHIFT));
    for (let p = start; p < end; ) {
      const phys = pt.iovaToPhys(p);
      if (WARN(phys === 0, 'vfio_iommu_replay: WARN_ON(!phys)')) {
        p++;
        continue;
      }
      const n = pt.contiguousPages(p, end - p);
      ret = iommuMap(domain.domain, p, phys, n, dma.prot | (perDomain ? IOMMU_CACHE : domain.prot));
      if (ret !== 0) return;
      p += n;
    }
  });
  return ret;
}

function groupRegions(iommu: VfioIommu): ReservedRegion[] {
  const out: ReservedRegion[] = [];
  for (const d of iommu.domain_list) for (const g of d.group_list) out.push(...iommuGetGroupResvRegions(g));
  return out;
}

export function vfioIommuType1AttachGroup(iommu: VfioIommu, group: IommuGroup): number {
  const prof = iommu.profile;
  const k = currentKernel();
  iommu.lock.lock();
  try {
    /* Attach could require pinning, so disallow while vaddr is invalid. */
    if (prof.vaddrAndUnmapAll && iommu.vaddr_invalid_count > 0)
      return fail(EBUSY, 'attach_group: a mapping has an invalid vaddr (VFIO_UPDATE_VADDR pending)');
    if (findGroupDomain(iommu, group) !== undefined)
      return fail(EINVAL, `attach_group: group ${group.id} is already in this container`);
    const dom = iommuDomainAlloc(group);
    if (dom === undefined)
      return fail(EIO, 'attach_group: iommu_domain_alloc failed (no IOMMU for the group)');
    k.objects.alloc('vfio_domain');
    const domain = new VfioDomain(dom);
    const freeDomain = (): void => {
      iommuDomainFree(dom);
      k.objects.free('vfio_domain');
    };
    if (iommu.nesting) {
      const r = iommuEnableNesting(dom);
      if (r !== 0) {
        freeDomain();
        return r;
      }
    }
    let ret = iommuAttachGroup(dom, group);
    if (ret !== 0) {
      freeDomain();
      return ret;
    }
    const outDetach = (r: number): number => {
      iommuDetachGroup(dom, group);
      freeDomain();
      return r;
    };
    let iova: VfioIova[] = [];
    let regions: ReservedRegion[] = [];
    if (prof.iovaRanges) {
      /* Get aperture info */
      const geo = dom.geometry;
      if (aperConflict(iommu, geo.aperture_start, geo.aperture_end))
        return outDetach(fail(EINVAL, 'attach_group: the IOMMU aperture excludes existing mappings'));
      regions = iommuGetGroupResvRegions(group);
      if (resvConflict(iommu, regions))
        return outDetach(
          fail(EINVAL, 'attach_group: a reserved region of the group covers an existing mapping'),
        );
      iova = iovaCopy(iommu);
      aperResize(iova, geo.aperture_start, geo.aperture_end);
      if (!resvExclude(iova, regions))
        return outDetach(fail(EINVAL, 'attach_group: reserved regions leave no valid IOVA range'));
    }
    domain.group_list.unshift(group); /* list_add */
    const isolated = iommuIntrRemap();
    if (!type1Params(k).allow_unsafe_interrupts && !isolated) {
      pr_warn(
        `vfio_iommu_type1_attach_group: No interrupt remapping support.  Use the module param "allow_unsafe_interrupts" to enable VFIO IOMMU support on this platform`,
      );
      return outDetach(
        fail(EPERM, 'attach_group: no interrupt remapping and allow_unsafe_interrupts is off'),
      );
    }
    if (prof.perDomainCoherency) domain.enforce_cache_coherency = iommuEnforceCacheCoherency(dom);
    else if (iommuCapableCacheCoherency()) domain.prot |= IOMMU_CACHE;
    /*
     * Try to match an existing compatible domain. The domains compare by
     * iommu_ops rather than bus, so one IOMMU driver can span buses.
     */
    for (const d of iommu.domain_list) {
      const same = prof.perDomainCoherency
        ? d.enforce_cache_coherency === domain.enforce_cache_coherency
        : d.prot === domain.prot;
      if (d.domain.ops !== dom.ops || !same) continue;
      iommuDetachGroup(dom, group);
      if (iommuAttachGroup(d.domain, group) === 0) {
        d.group_list.unshift(group);
        freeDomain();
        if (prof.iovaRanges) iommu.iova_list = iova;
        iommu.num_non_pinned_groups++;
        return 0;
      }
      ret = iommuAttachGroup(dom, group);
      if (ret !== 0) {
        freeDomain();
        return ret;
      }
    }
    /* replay mappings on new domains */
    ret = vfioIommuReplay(iommu, domain);
    if (ret !== 0) return outDetach(ret);
    iommu.domain_list.unshift(domain);
    vfioUpdatePgsizeBitmap(iommu);
    if (prof.iovaRanges) iommu.iova_list = iova;
    iommu.num_non_pinned_groups++;
    return 0;
  } finally {
    iommu.lock.unlock();
  }
}

export function vfioIommuType1DetachGroup(iommu: VfioIommu, group: IommuGroup): void {
  const prof = iommu.profile;
  const k = currentKernel();
  iommu.lock.lock();
  try {
    const iova = iovaCopy(iommu);
    for (const domain of iommu.domain_list) {
      const gi = domain.group_list.indexOf(group);
      if (gi < 0) continue;
      iommuDetachGroup(domain.domain, group);
      domain.group_list.splice(gi, 1);
      iommu.num_non_pinned_groups--;
      /*
       * Group ownership provides privilege, if the group list is empty,
       * the domain goes away. If it's the last domain, then all the
       * mappings go away too.
       */
      if (domain.group_list.length === 0) {
        if (iommu.domain_list.length === 1) vfioIommuUnmapUnpinAll(iommu);
        iommuDomainFree(domain.domain);
        iommu.domain_list.splice(iommu.domain_list.indexOf(domain), 1);
        k.objects.free('vfio_domain');
        if (prof.iovaRanges) aperExpand(iommu, iova);
        vfioUpdatePgsizeBitmap(iommu);
      }
      break;
    }
    if (prof.iovaRanges) {
      if (resvRefresh(iova, groupRegions(iommu))) iommu.iova_list = iova;
    }
  } finally {
    iommu.lock.unlock();
  }
}

/** release: every mapping, then every domain */
export function vfioIommuType1Release(iommu: VfioIommu): void {
  const k = currentKernel();
  vfioIommuUnmapUnpinAll(iommu);
  for (const domain of iommu.domain_list.splice(0)) {
    for (const g of domain.group_list.splice(0)) {
      iommuDetachGroup(domain.domain, g);
      iommu.num_non_pinned_groups--;
    }
    iommuDomainFree(domain.domain);
    k.objects.free('vfio_domain');
  }
  iommu.iova_list = [];
}

/** vfio_domains_have_iommu_cache / vfio_domains_have_enforce_cache_coherency */
export function vfioDomainsHaveIommuCache(iommu: VfioIommu): number {
  iommu.lock.lock();
  try {
    for (const d of iommu.domain_list) {
      if (iommu.profile.perDomainCoherency ? !d.enforce_cache_coherency : !(d.prot & IOMMU_CACHE)) return 0;
    }
    return 1;
  } finally {
    iommu.lock.unlock();
  }
}
