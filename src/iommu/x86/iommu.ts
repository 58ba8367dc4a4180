import type { Device, Kernel } from '../../kernel/index.ts';
import type { IommuCore } from '../core.ts';
import type { IommuFault } from '../domain.ts';
import type { IommuGroup } from '../iommu_group.ts';
import {
  DmarUnit,
  type DmarUnitCaps,
  FAULT_PRESENT_CONTEXT,
  FAULT_REASON_CODES,
  type IommuOps,
  X86Domain,
} from './domain.ts';
import { INTEL_IOMMU_PGSIZES_ALL, type X86IommuProfile, x86IommuProfile } from './profile.ts';

/*
 * The x86 IOMMU of one machine (Intel VT-d as drivers/iommu/intel drives
 * it): the DMA-remapping units, which group sits behind which, domain
 * allocation, and the fault log's wording. By default every group sits
 * behind one unit whose capabilities are the IommuCore's caps;
 * setGroupUnit() puts a group behind a unit of its own (without snoop
 * control, say), which is how two groups of one container end up in
 * separate domains.
 */
export const intelIommuOps: IommuOps = { name: 'intel_iommu_ops' };

export class X86Iommu {
  readonly profile: X86IommuProfile;
  readonly defaultUnit: DmarUnit;
  private readonly groupUnits = new Map<number, DmarUnit>();
  private nextUnit = 1;

  constructor(readonly core: IommuCore) {
    this.profile = x86IommuProfile(core.kernel.version);
    const c = core.caps;
    this.defaultUnit = new DmarUnit(0, {
      cacheCoherent: c.cacheCoherent,
      addressWidth: c.addressWidth,
      pgsizeBitmap: c.pgsizeBitmap,
    });
    core.faultLogger = (dev, f) => this.faultText(dev, f);
  }

  get kernel(): Kernel {
    return this.core.kernel;
  }

  /** interrupt remapping is enabled for the whole platform (irq_remapping_enabled) */
  get intrRemap(): boolean {
    return this.core.caps.intrRemap;
  }

  unitOf(group: IommuGroup): DmarUnit {
    return this.groupUnits.get(group.id) ?? this.defaultUnit;
  }

  /** put IOMMU group `groupId` behind a DMAR unit of its own (caps default to the platform's) */
  setGroupUnit(groupId: number, caps: Partial<DmarUnitCaps>): DmarUnit {
    const u = new DmarUnit(this.nextUnit++, { ...this.defaultUnit.caps, ...caps });
    this.groupUnits.set(groupId, u);
    return u;
  }

  units(): DmarUnit[] {
    return [this.defaultUnit, ...this.groupUnits.values()];
  }

  /** iommu_capable(bus, IOMMU_CAP_CACHE_COHERENCY) of 4.1: every unit has snoop control */
  allUnitsCoherent(): boolean {
    return this.units().every((u) => u.caps.cacheCoherent);
  }

  domainAlloc(group: IommuGroup): X86Domain {
    const unit = this.unitOf(group);
    const bitmap = this.profile.advertiseAllPgsizes ? INTEL_IOMMU_PGSIZES_ALL : unit.caps.pgsizeBitmap;
    return new X86Domain(intelIommuOps, unit, bitmap);
  }

  /** dmar_fault_do_one's text (the DRHD line is printed first, by the handler) */
  private faultText(dev: Device, f: IommuFault): string {
    const p = this.profile;
    const k = this.kernel;
    const bdf = dev.name.length > 5 ? dev.name.slice(5) : dev.name;
    const reason = FAULT_REASON_CODES[f.reason] === undefined ? FAULT_PRESENT_CONTEXT : f.reason;
    const code = FAULT_REASON_CODES[reason] ?? 0;
    const page = (f.iova >> 12n) << 12n;
    const kind = f.write ? 'DMA Write' : 'DMA Read';
    k.printk('err', `${p.dmarPrefix}DRHD: handling fault status reg 2`);
    if (p.faultFormat === '4.1') {
      /* one printk with an embedded newline: two lines in the log */
      k.printk(
        'err',
        `${p.dmarPrefix}DMAR:[${kind}] Request device [${bdf}] fault addr ${page.toString(16)} `,
      );
      return `DMAR:[fault reason ${String(code).padStart(2, '0')}] ${reason}`;
    }
    return `${p.dmarPrefix}[${kind} NO_PASID] Request device [${bdf}] fault addr 0x${page.toString(16)} [fault reason 0x${code.toString(16).padStart(2, '0')}] ${reason}`;
  }
}

const instances = new WeakMap<Kernel, X86Iommu>();

/** intel_iommu_init: the platform's IOMMU driver, for the host to call at boot */
export function registerX86Iommu(core: IommuCore): X86Iommu {
  const have = instances.get(core.kernel);
  if (have !== undefined) return have;
  const x = new X86Iommu(core);
  instances.set(core.kernel, x);
  return x;
}

/** the x86 IOMMU of a kernel, when it has one */
export function x86IommuOf(kernel: Kernel): X86Iommu | undefined {
  return instances.get(kernel);
}
