import { type Device, type Kernel, pr_debug, pr_warn } from '../../kernel/index.ts';
import type { PciDev } from '../../pci/index.ts';
import { EINVAL, EIO, ENODEV } from '../../uapi/index.ts';
import type { IommuGroup } from '../iommu_group.ts';

/*
 * EEH (Enhanced Error Handling, arch/powerpc/kernel/eeh.c) for a
 * partitionable endpoint, over the PHB3 hardware model: a PE is frozen
 * for MMIO and DMA by the PHB when one of its devices makes a bad DMA
 * (or an error is injected), and stays frozen until someone thaws it. A
 * PE whose devices are passed through to a user (pass_dev_cnt > 0) is
 * left to that user, through VFIO_EEH_PE_OP.
 */

/* eeh_ops->get_state() result bits */
export const EEH_STATE_UNAVAILABLE = 1 << 0;
export const EEH_STATE_NOT_SUPPORT = 1 << 1;
export const EEH_STATE_RESET_ACTIVE = 1 << 2;
export const EEH_STATE_MMIO_ACTIVE = 1 << 3;
export const EEH_STATE_DMA_ACTIVE = 1 << 4;
export const EEH_STATE_MMIO_ENABLED = 1 << 5;
export const EEH_STATE_DMA_ENABLED = 1 << 6;

/* eeh_pe_set_option() options */
export const EEH_OPT_DISABLE = 0;
export const EEH_OPT_ENABLE = 1;
export const EEH_OPT_THAW_MMIO = 2;
export const EEH_OPT_THAW_DMA = 3;
export const EEH_OPT_FREEZE_PE = 4;

/* eeh_pe_reset() options */
export const EEH_RESET_DEACTIVATE = 0;
export const EEH_RESET_HOT = 1;
export const EEH_RESET_FUNDAMENTAL = 3;

/* what eeh_pe_get_state() reports (the VFIO_EEH_PE_STATE_* values) */
export const EEH_PE_STATE_NORMAL = 0;
export const EEH_PE_STATE_RESET = 1;
export const EEH_PE_STATE_STOPPED_IO_DMA = 2;
export const EEH_PE_STATE_STOPPED_DMA = 4;
export const EEH_PE_STATE_UNAVAIL = 5;

/* software PE state (pe->state) */
export const EEH_PE_ISOLATED = 1 << 0;
export const EEH_PE_RECOVERING = 1 << 1;
export const EEH_PE_CFG_BLOCKED = 1 << 2;
export const EEH_PE_REMOVED = 1 << 10;

/* error injection */
export const EEH_ERR_TYPE_32 = 0;
export const EEH_ERR_TYPE_64 = 1;
export const EEH_ERR_FUNC_MIN = 0;
export const EEH_ERR_FUNC_MAX = 19;

/** what the PHB hardware holds about one PE */
export interface EehHwState {
  mmioFrozen: boolean;
  dmaFrozen: boolean;
  resetActive: boolean;
}

/** struct eeh_pe */
export class EehPe {
  state = 0;
  pass_dev_cnt = 0;
  readonly hw: EehHwState = { mmioFrozen: false, dmaFrozen: false, resetActive: false };
  constructor(
    readonly eeh: Eeh,
    /** PHB#: the PCI domain */
    readonly phb: number,
    /** PE#: the PE number on its PHB */
    readonly addr: number,
    readonly parent: EehPe | undefined,
    readonly devices: PciDev[],
  ) {}

  get passed(): boolean {
    return this.pass_dev_cnt > 0;
  }
}

/** the EEH core of one machine: whether EEH is on, and device -> PE */
export class Eeh {
  constructor(readonly kernel: Kernel) {}
  /** eeh_enabled(): the platform found EEH-capable PHBs (and nobody forced it off) */
  enabled = true;
  readonly devPe = new WeakMap<Device, EehPe>();
  /** eeh_pe_reset_and_recover / eeh_reset_ids: devices that need a PE reset to unfreeze */
  readonly resetIds: readonly (readonly [number, number])[] = [
    [0x19a2, 0x0710] /* Emulex, BE */,
    [0x10df, 0xe220] /* Emulex, Lancer */,
    [0x14e4, 0x1657] /* Broadcom BCM5719 */,
  ];

  /**
   * The PHB froze a PE (a DMA error, an injected error). A PE the host
   * owns is reported as the powernv EEH backend reports it; a PE owned
   * by a user is left for the user to find with GET_STATE.
   */
  freeze(pe: EehPe): void {
    const wasFrozen = pe.hw.mmioFrozen && pe.hw.dmaFrozen;
    pe.hw.mmioFrozen = true;
    pe.hw.dmaFrozen = true;
    if (wasFrozen || !this.enabled || pe.state & EEH_PE_ISOLATED || pe.passed) return;
    /* the PHB's error interrupt: device DMA can happen outside any syscall */
    this.kernel.printk(
      'err',
      `EEH: Frozen PE#${pe.addr.toString(16)} on PHB#${pe.phb.toString(16)} detected`,
    );
    this.kernel.printk('err', 'EEH: PE location: N/A, PHB location: N/A');
    pe.state |= EEH_PE_ISOLATED;
  }

  /* ---- eeh_ops (powernv, PHB3) ---- */

  getStateHw(pe: EehPe): number {
    const h = pe.hw;
    if (h.mmioFrozen && h.dmaFrozen) return 0;
    if (h.mmioFrozen) return EEH_STATE_DMA_ACTIVE | EEH_STATE_DMA_ENABLED;
    if (h.dmaFrozen) return EEH_STATE_MMIO_ACTIVE | EEH_STATE_MMIO_ENABLED;
    return EEH_STATE_MMIO_ACTIVE | EEH_STATE_DMA_ACTIVE | EEH_STATE_MMIO_ENABLED | EEH_STATE_DMA_ENABLED;
  }

  setOptionHw(pe: EehPe, option: number): number {
    switch (option) {
      case EEH_OPT_THAW_MMIO:
        pe.hw.mmioFrozen = false;
        return 0;
      case EEH_OPT_THAW_DMA:
        pe.hw.dmaFrozen = false;
        return 0;
      case EEH_OPT_FREEZE_PE:
        pe.hw.mmioFrozen = true;
        pe.hw.dmaFrozen = true;
        return 0;
      case EEH_OPT_ENABLE:
        return 0;
      default:
        pr_warn(`pnv_eeh_set_option: Invalid option ${option}`);
        return -EINVAL;
    }
  }

  /** a hot or fundamental reset asserts reset on every device of the PE; deactivate releases it */
  resetHw(pe: EehPe, option: number): number {
    if (option === EEH_RESET_DEACTIVATE) {
      pe.hw.resetActive = false;
      return 0;
    }
    pe.hw.resetActive = true;
    for (const d of pe.devices) d.model.reset();
    return 0;
  }
}

/** eeh_pci_enable: thaw MMIO or DMA and check that it took */
function eehPciEnable(eeh: Eeh, pe: EehPe, fn: number): number {
  let activeFlag: number;
  switch (fn) {
    case EEH_OPT_THAW_MMIO:
      activeFlag = EEH_STATE_MMIO_ACTIVE | EEH_STATE_MMIO_ENABLED;
      break;
    case EEH_OPT_THAW_DMA:
      activeFlag = EEH_STATE_DMA_ACTIVE;
      break;
    case EEH_OPT_DISABLE:
    case EEH_OPT_ENABLE:
    case EEH_OPT_FREEZE_PE:
      activeFlag = 0;
      break;
    default:
      pr_warn(`eeh_pci_enable: Invalid function ${fn}`);
      return -EINVAL;
  }
  /* Check if IO or DMA has been enabled before enabling them */
  if (activeFlag !== 0) {
    const rc = eeh.getStateHw(pe);
    if (rc & EEH_STATE_NOT_SUPPORT) return 0;
    if (rc & activeFlag) return 0;
  }
  let rc = eeh.setOptionHw(pe, fn);
  if (rc !== 0)
    pr_warn(
      `eeh_pci_enable: Unexpected state change ${fn} on PHB#${pe.phb.toString(16)}-PE#${pe.addr.toString(16)}, err=${rc}`,
    );
  if (activeFlag !== 0) {
    rc = eeh.getStateHw(pe); /* wait_state */
    if (rc & activeFlag) return 0;
    return -EIO;
  }
  return rc;
}

/** eeh_unfreeze_pe: thaw MMIO then DMA; the software isolation goes with it */
function eehUnfreezePe(eeh: Eeh, pe: EehPe, swState: boolean): number {
  let ret = eehPciEnable(eeh, pe, EEH_OPT_THAW_MMIO);
  if (ret !== 0) {
    pr_warn(
      `eeh_unfreeze_pe: Failure ${ret} enabling IO on PHB#${pe.phb.toString(16)}-PE#${pe.addr.toString(16)}`,
    );
    return ret;
  }
  ret = eehPciEnable(eeh, pe, EEH_OPT_THAW_DMA);
  if (ret !== 0) {
    pr_warn(
      `eeh_unfreeze_pe: Failure ${ret} enabling DMA on PHB#${pe.phb.toString(16)}-PE#${pe.addr.toString(16)}`,
    );
    return ret;
  }
  if (swState) pe.state &= ~EEH_PE_ISOLATED;
  return ret;
}

/** eeh_pe_reset_and_recover (for the devices of eeh_reset_ids): reset, then thaw */
function eehPeResetAndRecover(eeh: Eeh, pe: EehPe): number {
  eeh.setOptionHw(pe, EEH_OPT_FREEZE_PE);
  eeh.resetHw(pe, EEH_RESET_HOT);
  eeh.resetHw(pe, EEH_RESET_DEACTIVATE);
  return eehUnfreezePe(eeh, pe, true);
}

/** eeh_pe_change_owner: a PE changing hands starts unfrozen */
function eehPeChangeOwner(eeh: Eeh, pe: EehPe): number {
  const flags = EEH_STATE_MMIO_ACTIVE | EEH_STATE_DMA_ACTIVE;
  const ret = eeh.getStateHw(pe);
  if (ret & EEH_STATE_NOT_SUPPORT) return 0;
  /* Unfrozen PE, nothing to do */
  if ((ret & flags) === flags) return 0;
  /* Frozen PE, check if it needs PE level reset */
  for (const d of pe.devices)
    for (const [vendor, device] of eeh.resetIds)
      if (d.vendor === vendor && d.device === device) return eehPeResetAndRecover(eeh, pe);
  return eehUnfreezePe(eeh, pe, true);
}

/** eeh_dev_open: a device is passed through; its PE's errors now belong to the user */
export function eehDevOpen(eeh: Eeh | undefined, pdev: PciDev): number {
  if (eeh === undefined) return 0; /* no EEH on this platform: vfio_spapr_pci_eeh_open is a stub */
  const pe = eeh.devPe.get(pdev);
  if (pe === undefined) return -ENODEV;
  const ret = eehPeChangeOwner(eeh, pe);
  if (ret !== 0) return ret;
  pe.pass_dev_cnt++;
  return 0;
}

/** eeh_dev_release */
export function eehDevRelease(eeh: Eeh | undefined, pdev: PciDev): void {
  if (eeh === undefined) return;
  const pe = eeh.devPe.get(pdev);
  if (pe === undefined || !pe.passed) return;
  pe.pass_dev_cnt--;
  eehPeChangeOwner(eeh, pe);
}

/** eeh_iommu_group_to_pe: the PE of the group's first device */
export function eehIommuGroupToPe(eeh: Eeh | undefined, group: IommuGroup | undefined): EehPe | undefined {
  if (eeh === undefined || group === undefined) return undefined;
  const dev = group.devices.find((d) => d.iommu_group !== undefined);
  return dev === undefined ? undefined : eeh.devPe.get(dev);
}

/** eeh_pe_set_option */
export function eehPeSetOption(eeh: Eeh, pe: EehPe | undefined, option: number): number {
  if (pe === undefined) return -ENODEV;
  switch (option) {
    case EEH_OPT_ENABLE:
      if (eeh.enabled) return eehPeChangeOwner(eeh, pe);
      return -EIO;
    case EEH_OPT_DISABLE:
      return 0;
    case EEH_OPT_THAW_MMIO:
    case EEH_OPT_THAW_DMA:
    case EEH_OPT_FREEZE_PE:
      return eehPciEnable(eeh, pe, option);
    default:
      pr_debug(`eeh_pe_set_option: Option ${option} out of range (${EEH_OPT_DISABLE}, ${EEH_OPT_THAW_DMA})`);
      return -EINVAL;
  }
}

/** eeh_pe_get_state: what VFIO_EEH_PE_GET_STATE reports */
export function eehPeGetState(eeh: Eeh, pe: EehPe | undefined): number {
  if (pe === undefined) return -ENODEV;
  /* a parent PE the host is recovering makes this one temporarily unavailable */
  const parent = pe.parent;
  if (
    parent !== undefined &&
    !(pe.state & EEH_PE_REMOVED) &&
    parent.state & (EEH_PE_ISOLATED | EEH_PE_RECOVERING)
  )
    return EEH_PE_STATE_UNAVAIL;
  const result = eeh.getStateHw(pe);
  const rstActive = (result & EEH_STATE_RESET_ACTIVE) !== 0;
  const dmaEn = (result & EEH_STATE_DMA_ENABLED) !== 0;
  const mmioEn = (result & EEH_STATE_MMIO_ENABLED) !== 0;
  if (rstActive) return EEH_PE_STATE_RESET;
  if (dmaEn && mmioEn) return EEH_PE_STATE_NORMAL;
  if (!dmaEn && !mmioEn) return EEH_PE_STATE_STOPPED_IO_DMA;
  if (!dmaEn && mmioEn) return EEH_PE_STATE_STOPPED_DMA;
  return EEH_PE_STATE_UNAVAIL;
}

/** eeh_pe_reset: assert (hot / fundamental, PE frozen meanwhile) or deactivate, then thaw */
export function eehPeReset(eeh: Eeh, pe: EehPe | undefined, option: number, includePassed: boolean): number {
  if (pe === undefined) return -ENODEV;
  switch (option) {
    case EEH_RESET_DEACTIVATE: {
      let ret = eeh.resetHw(pe, option);
      pe.state &= ~EEH_PE_CFG_BLOCKED;
      if (ret !== 0) return ret;
      /* eeh_pe_reenable_devices: BARs restored, devices re-enabled, the PE is still frozen */
      if (includePassed || !pe.passed) ret = eehUnfreezePe(eeh, pe, true);
      return ret;
    }
    case EEH_RESET_HOT:
    case EEH_RESET_FUNDAMENTAL:
      /* Proactively freeze the PE to drop all MMIO access during reset */
      eeh.setOptionHw(pe, EEH_OPT_FREEZE_PE);
      pe.state |= EEH_PE_CFG_BLOCKED;
      return eeh.resetHw(pe, option);
    default:
      pr_debug(`eeh_pe_reset: Unsupported option ${option}`);
      return -EINVAL;
  }
}

/** eeh_pe_configure: nothing to do after a PE reset on this platform */
export function eehPeConfigure(_eeh: Eeh, pe: EehPe | undefined): number {
  if (pe === undefined) return -ENODEV;
  return 0;
}

/**
 * eeh_pe_inject_err (6.x): the firmware arms the error; the model freezes
 * the PE at once, as the first matching access would.
 */
export function eehPeInjectErr(eeh: Eeh, pe: EehPe | undefined, type: number, func: number): number {
  if (pe === undefined) return -ENODEV;
  if (type !== EEH_ERR_TYPE_32 && type !== EEH_ERR_TYPE_64) return -EINVAL;
  if (func < EEH_ERR_FUNC_MIN || func > EEH_ERR_FUNC_MAX) return -EINVAL;
  eeh.freeze(pe);
  return 0;
}
