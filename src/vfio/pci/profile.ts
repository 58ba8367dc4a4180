import type { KernelVersion } from '../../kernel/index.ts';

/*
 * Where vfio-pci of 4.1 (drivers/vfio/pci/vfio_pci*.c) and of 6.12
 * (vfio_pci_core.c and friends) behave differently, one named row each;
 * docs/profiles.md (## vfio-pci) lists them.
 */
export interface VfioPciProfile {
  /** bytes GET_INFO writes back: 16 (4.1), min(argsz, sizeof = 24) (6.12) */
  readonly deviceInfoCopyout: 'minsz' | 'argsz';
  /** a failed copy_to_user makes the info ioctls return the bytes not copied (4.1) instead of -EFAULT */
  readonly copyoutResidue: boolean;
  /** GET_REGION_INFO: capability chains (MSIX_MAPPABLE on the MSI-X BAR) and CAPS flag */
  readonly regionInfoCaps: boolean;
  /** mmap of a range overlapping the MSI-X table: refused (4.1) or allowed (v4.16+) */
  readonly mmapMsixTable: boolean;
  /** a BAR smaller than a page is mmappable when page aligned (bar_mmap_supported, v4.9+) */
  readonly subPageBarMmap: boolean;
  /** SET_IRQS header checks: 4.1 inline (NONE skips the range check) or the common helper (6.12) */
  readonly setIrqsCommonValidate: boolean;
  /**
   * ERR/REQ triggers (v4.10+): start 0 and count <= 1 for both, NONE with
   * count 0 drops the eventfd, loopback with none set is -EINVAL, an fd
   * below -1 is ignored. 4.1: ERR ignores start/count, REQ wants count 1,
   * loopback always returns 0, an fd below -1 is -EINVAL
   */
  readonly errReqCountChecks: boolean;
  /** INTx trigger with an eventfd: the eventfd is looked up before INTx is enabled (6.12) */
  readonly intxTriggerFdFirst: boolean;
  /** MSI/MSI-X contexts: a fixed array of num_ctx (4.1) or sparse with dynamic MSI-X (6.12) */
  readonly msiSparseCtx: boolean;
  /** the last close drops the ERR and REQ eventfds (v5.6+); 4.1 keeps them (a leak) */
  readonly releaseDropsErrReq: boolean;
  /** the driver's wording in dmesg: `request` (4.1 dev_dbg; 6.12 a notice every 10th, a warning), BAR restore */
  readonly messages: '4.1' | '6.12';
  /** BAR read/write -EIO and mmap faults while the user has Memory Space disabled (v5.8+) */
  readonly memoryEnableChecks: boolean;
  /** read/write split BAR accesses into 8-byte chunks too (v6.11+) */
  readonly barRw64: boolean;
  /** VFIO_DEVICE_FEATURE (v5.7+) */
  readonly deviceFeature: boolean;
  /** hot reset takes group files and checks the device set (6.x) or external users (4.1) */
  readonly hotResetByFile: boolean;
  /** release resets with __pci_reset_function_locked and restores the state saved at open (6.x) */
  readonly releaseResetLocked: boolean;
  /**
   * vfio_pci_core_enable (6.x): the reset at open is a "try" reset whose
   * -EAGAIN fails the open, and the virtual config is built after INTx
   * masking is probed (4.1 built it before, so a DisINTx left set by the
   * previous close shows in the user's command register)
   */
  readonly enable612: boolean;
  /** PM capability: PME_Support, PME_En and PME_Status virtualized and read as 0 (v5.19+) */
  readonly pmPmeVirtualized: boolean;
  /** GET_IRQ_INFO(MSIX) drops NORESIZE when the platform can add vectors (6.x) */
  readonly msixResizable: boolean;
}

const V4_1: VfioPciProfile = {
  deviceInfoCopyout: 'minsz',
  copyoutResidue: true,
  regionInfoCaps: false,
  mmapMsixTable: false,
  subPageBarMmap: false,
  setIrqsCommonValidate: false,
  errReqCountChecks: false,
  intxTriggerFdFirst: false,
  msiSparseCtx: false,
  releaseDropsErrReq: false,
  messages: '4.1',
  memoryEnableChecks: false,
  barRw64: false,
  deviceFeature: false,
  hotResetByFile: false,
  releaseResetLocked: false,
  enable612: false,
  pmPmeVirtualized: false,
  msixResizable: false,
};

const V6_12: VfioPciProfile = {
  deviceInfoCopyout: 'argsz',
  copyoutResidue: false,
  regionInfoCaps: true,
  mmapMsixTable: true,
  subPageBarMmap: true,
  setIrqsCommonValidate: true,
  errReqCountChecks: true,
  intxTriggerFdFirst: true,
  msiSparseCtx: true,
  releaseDropsErrReq: true,
  messages: '6.12',
  memoryEnableChecks: true,
  barRw64: true,
  deviceFeature: true,
  hotResetByFile: true,
  releaseResetLocked: true,
  enable612: true,
  pmPmeVirtualized: true,
  msixResizable: true,
};

export function vfioPciProfile(v: KernelVersion): VfioPciProfile {
  return v === '4.1' ? V4_1 : V6_12;
}
