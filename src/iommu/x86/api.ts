import { currentKernel, fail, pr_err, WARN } from '../../kernel/index.ts';
import { EBUSY, EFAULT, EINVAL } from '../../uapi/index.ts';
import type { IommuGroup, ReservedRegion } from '../iommu_group.ts';
import type { X86Domain } from './domain.ts';
import { x86IommuOf } from './iommu.ts';
import { VTD_PAGE_SIZE } from './page_table.ts';

/*
 * The IOMMU API of include/linux/iommu.h as VFIO's type1 backend calls
 * it, over the x86 IOMMU: domains are allocated for a group, groups are
 * attached and detached, pages are mapped and unmapped. IOVAs are page
 * frame numbers (iova >> 12) and sizes are pages; physical addresses are
 * bytes.
 */

/**
 * iommu_domain_alloc(bus): undefined when the platform has no IOMMU or the
 * group has no device to find one through (the caller's -EIO)
 */
export function iommuDomainAlloc(group: IommuGroup): X86Domain | undefined {
  const k = currentKernel();
  const x = x86IommuOf(k);
  if (x === undefined || group.devices.length === 0) return undefined;
  k.objects.alloc('iommu_domain');
  return x.domainAlloc(group);
}

export function iommuDomainFree(domain: X86Domain): void {
  if (domain.freed) throw new Error('iommu_domain_free: double free');
  WARN(domain.groups.size !== 0, 'iommu_domain_free: groups still attached');
  domain.freed = true;
  currentKernel().objects.free('iommu_domain');
}

/**
 * iommu_attach_group: the group's devices now translate through domain. A
 * domain that already spans a unit refuses a group behind a unit that
 * cannot honour it: narrower address width than the domain maps, or no
 * snoop control once the domain forces snooping (prepare_domain_attach_device).
 */
export function iommuAttachGroup(domain: X86Domain, group: IommuGroup): number {
  const x = x86IommuOf(currentKernel());
  if (x === undefined) return fail(EINVAL, 'iommu_attach_group: no IOMMU');
  const unit = x.unitOf(group);
  if (domain.groups.size > 0 && !domain.units.has(unit)) {
    if (unit.caps.addressWidth < domain.gaw)
      return fail(
        EINVAL,
        "iommu_attach_group: the group's IOMMU has a narrower address width than the domain",
      );
    if (domain.forceSnooping && !unit.caps.cacheCoherent)
      return fail(EINVAL, "iommu_attach_group: the domain enforces snooping, the group's IOMMU cannot");
  }
  const r = x.core.attachGroup(domain, group);
  if (r !== 0) return r;
  domain.groups.add(group);
  domain.units.add(unit);
  domain.gaw = Math.min(domain.gaw, unit.caps.addressWidth);
  return 0;
}

export function iommuDetachGroup(domain: X86Domain, group: IommuGroup): void {
  const x = x86IommuOf(currentKernel());
  x?.core.detachGroup(domain, group);
  domain.groups.delete(group);
  if (x === undefined) return;
  domain.units.clear();
  for (const g of domain.groups) domain.units.add(x.unitOf(g));
}

/** iommu_group_has_isolated_msi / iommu_capable(IOMMU_CAP_INTR_REMAP): interrupt remapping */
export function iommuIntrRemap(): boolean {
  return x86IommuOf(currentKernel())?.intrRemap ?? false;
}

/** iommu_capable(bus, IOMMU_CAP_CACHE_COHERENCY) (4.1): every unit has snoop control */
export function iommuCapableCacheCoherency(): boolean {
  return x86IommuOf(currentKernel())?.allUnitsCoherent() ?? false;
}

/**
 * ops->enforce_cache_coherency (6.x): turn on forced snooping when every
 * unit behind the domain has snoop control; true when it is on.
 */
export function iommuEnforceCacheCoherency(domain: X86Domain): boolean {
  for (const u of domain.units) if (!u.caps.cacheCoherent) return false;
  domain.forceSnooping = true;
  return true;
}

/**
 * iommu_domain_set_attr(DOMAIN_ATTR_NESTING) (4.1) / iommu_enable_nesting
 * (6.x): VT-d implements neither for VFIO, so both say -EINVAL.
 */
export function iommuEnableNesting(_domain: X86Domain): number {
  return fail(EINVAL, 'iommu_enable_nesting: intel-iommu has no nesting stage for VFIO');
}

/** iommu_get_group_resv_regions: the group's reserved IOVA regions, a copy */
export function iommuGetGroupResvRegions(group: IommuGroup): ReservedRegion[] {
  return group.reservedRegions.map((r) => ({ ...r }));
}

/**
 * iommu_map: map npages at ipfn to phys. Beyond the address width it is
 * intel_iommu_map's -EFAULT with its message; over a live entry -EBUSY.
 */
export function iommuMap(
  domain: X86Domain,
  ipfn: number,
  phys: number,
  npages: number,
  prot: number,
): number {
  const end = ipfn + npages;
  if (end > domain.maxAddrPages) {
    if (end > domain.maxPfn) {
      const x = x86IommuOf(currentKernel());
      const maxAddr = BigInt(end) * BigInt(VTD_PAGE_SIZE);
      pr_err(
        `${x?.profile.intelIommuPrefix ?? ''}intel_iommu_map: iommu width (${domain.gaw}) is not sufficient for the mapped address (${maxAddr.toString(16)})`,
      );
      return -EFAULT;
    }
    domain.maxAddrPages = end;
  }
  if (domain.pt.anyMapped(ipfn, npages))
    return fail(EBUSY, `iommu_map: IOVA page 0x${ipfn.toString(16)} is already mapped`);
  domain.pt.map(ipfn, phys, npages, prot);
  return 0;
}

/** iommu_unmap: pages unmapped (a superpage goes whole) */
export function iommuUnmap(domain: X86Domain, ipfn: number, npages: number): number {
  return domain.pt.unmap(ipfn, npages);
}

/** iommu_iova_to_phys: the physical address of page ipfn, 0 if unmapped */
export function iommuIovaToPhys(domain: X86Domain, ipfn: number): number {
  return domain.pt.iovaToPhys(ipfn);
}
