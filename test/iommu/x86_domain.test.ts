import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EBUSY, EFAULT, EINVAL, Host } from '../../src/index.ts';
import {
  type DmaRun,
  FAULT_BEYOND_MGAW,
  FAULT_PTE_READ,
  FAULT_PTE_WRITE,
  INTEL_IOMMU_PGSIZES_ALL,
  IOMMU_READ,
  IOMMU_WRITE,
  iommuAttachGroup,
  iommuDetachGroup,
  iommuDomainAlloc,
  iommuDomainFree,
  iommuIovaToPhys,
  iommuMap,
  iommuUnmap,
  x86IommuOf,
} from '../../src/iommu/index.ts';

/*
 * The x86 IOMMU below VFIO: domain allocation per profile, the IOMMU API
 * errors, attach rules between units, and translate() as devices use it.
 */
function host(kernel: '4.1' | '6.12' = '6.12'): Host {
  const h = new Host({ arch: 'x86_64', kernel });
  h.addPciDevice({ bdf: '0000:00:03.0', model: 'generic', iommuGroup: 3 });
  h.addPciDevice({ bdf: '0000:00:04.0', model: 'generic', iommuGroup: 4 });
  return h;
}

describe('x86 IOMMU domains', () => {
  it('4.1 advertises every page size from 4 KiB, 6.12 what the hardware maps', () => {
    for (const [kernel, want] of [
      ['4.1', INTEL_IOMMU_PGSIZES_ALL],
      ['6.12', 0x40201000n],
    ] as const) {
      const h = host(kernel);
      const g = h.iommu.groups.get(3);
      assert.ok(g);
      const d = h.inKernel(() => iommuDomainAlloc(g));
      assert.equal(d?.pgsize_bitmap, want);
      assert.deepEqual(d?.geometry, {
        aperture_start: 0n,
        aperture_end: (1n << 39n) - 1n,
        force_aperture: true,
      });
      assert.equal(h.liveObjects().iommu_domain, 1);
      if (d !== undefined) h.inKernel(() => iommuDomainFree(d));
      assert.equal(h.liveObjects().iommu_domain, undefined);
    }
  });

  it('ppc64 has no x86 IOMMU: no domain', () => {
    const h = new Host({ arch: 'ppc64', kernel: '6.12' });
    assert.equal(x86IommuOf(h.kernel), undefined);
  });

  it("iommu_map: beyond the width -EFAULT with intel_iommu_map's message, over a live entry -EBUSY", () => {
    const h = host();
    const g = h.iommu.groups.get(3);
    assert.ok(g);
    h.inKernel(() => {
      const d = iommuDomainAlloc(g);
      assert.ok(d);
      assert.equal(iommuMap(d, (1 << 27) - 1, 0x1_0000_0000, 2, IOMMU_READ), -EFAULT);
      assert.equal(
        h.dmesg().at(-1),
        'DMAR: intel_iommu_map: iommu width (39) is not sufficient for the mapped address (8000001000)',
      );
      assert.equal(iommuMap(d, 16, 0x1_0000_0000, 4, IOMMU_READ), 0);
      assert.equal(iommuMap(d, 19, 0x2_0000_0000, 2, IOMMU_READ), -EBUSY);
      assert.equal(iommuIovaToPhys(d, 18), 0x1_0000_2000);
      assert.equal(iommuUnmap(d, 16, 4), 4);
      assert.equal(iommuIovaToPhys(d, 18), 0);
      iommuDomainFree(d);
    });
  });

  it('a domain spanning a unit refuses a group whose unit cannot honour it', () => {
    const h = host();
    const x = x86IommuOf(h.kernel);
    x?.setGroupUnit(4, { addressWidth: 32, cacheCoherent: false });
    const [g3, g4] = [h.iommu.groups.get(3), h.iommu.groups.get(4)];
    assert.ok(g3 && g4);
    h.inKernel(() => {
      const d = iommuDomainAlloc(g3);
      assert.ok(d);
      assert.equal(iommuAttachGroup(d, g3), 0);
      assert.equal(g3.domain, d);
      assert.equal(iommuAttachGroup(d, g4), -EINVAL);
      /* a domain of the narrow unit takes the group and has its width */
      const d4 = iommuDomainAlloc(g4);
      assert.ok(d4);
      assert.equal(iommuAttachGroup(d4, g4), 0);
      assert.equal(d4.geometry.aperture_end, 0xffff_ffffn);
      iommuDetachGroup(d, g3);
      iommuDetachGroup(d4, g4);
      assert.equal(g3.domain, g3.default_domain);
      iommuDomainFree(d);
      iommuDomainFree(d4);
    });
  });
});

describe('x86 domain translate()', () => {
  const h = host();
  const g = h.iommu.groups.get(3);
  assert.ok(g);
  const d = h.inKernel(() => iommuDomainAlloc(g));
  assert.ok(d);
  /* IOVA pages 16..18 -> phys A..A+2 (RW), page 19 -> B (RW), page 32 read-only */
  d.pt.map(16, 0x1_0000_0000, 3, IOMMU_READ | IOMMU_WRITE);
  d.pt.map(19, 0x2_0000_0000, 1, IOMMU_READ | IOMMU_WRITE);
  d.pt.map(32, 0x3_0000_0000, 1, IOMMU_READ);

  it('merges contiguous pages into one run and splits where phys jumps', () => {
    const runs: DmaRun[] = [];
    assert.equal(d.translate(0x10800n, 0x3000, true, runs), undefined);
    assert.deepEqual(runs, [
      { phys: 0x1_0000_0800, len: 0x2800 },
      { phys: 0x2_0000_0000, len: 0x800 },
    ]);
  });

  it('faults on a hole, a missing permission and past the address width, at the faulting page', () => {
    const runs: DmaRun[] = [];
    assert.deepEqual(d.translate(0x13800n, 0x1000, false, runs), {
      iova: 0x14000n,
      write: false,
      reason: FAULT_PTE_READ,
    });
    assert.deepEqual(d.translate(0x20010n, 4, true, []), {
      iova: 0x20010n,
      write: true,
      reason: FAULT_PTE_WRITE,
    });
    assert.deepEqual(d.translate(1n << 39n, 4, false, []), {
      iova: 1n << 39n,
      write: false,
      reason: FAULT_BEYOND_MGAW,
    });
    assert.equal(d.translate(0x20010n, 4, false, []), undefined);
    assert.equal(d.translate(0x99999000n, 0, false, []), undefined, 'an empty access touches nothing');
  });
});
