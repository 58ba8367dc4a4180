import {
  currentKernel,
  type EventfdCtx,
  type Kernel,
  type Module,
  Mutex,
  RwSem,
} from '../../kernel/index.ts';
import type { PciDev, PciDriver, PciSavedState } from '../../pci/index.ts';
import { VFIO_PCI_NUM_IRQS } from '../../uapi/index.ts';
import type { VfioPciProfile } from './profile.ts';
import type { Virqfd } from './virqfd.ts';

/*
 * struct vfio_pci_device (vfio_pci_private.h; vfio_pci_core_device in
 * 6.x): everything vfio-pci keeps per device, and the module's statics.
 */
export const PCI_CAP_ID_BASIC = 0;
/** pci_config_map value of a byte no capability claims */
export const PCI_CAP_ID_INVALID = 0xff;
export const PCI_CAP_ID_INVALID_VIRT = 0xfe;

export interface VfioPciIrqCtx {
  trigger: EventfdCtx | undefined;
  unmask: Virqfd | undefined;
  mask: Virqfd | undefined;
  name: string;
  masked: boolean;
}

export interface PermBits {
  readonly virt: Uint8Array | undefined;
  readonly write: Uint8Array | undefined;
  readonly readfn: ConfigReadFn | undefined;
  readonly writefn: ConfigWriteFn | undefined;
}

/** readfn: count or -errno; the bytes read (as the user sees them, little-endian) in out.val */
export type ConfigReadFn = (
  vdev: VfioPciDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  out: { val: number },
) => number;

export type ConfigWriteFn = (
  vdev: VfioPciDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
) => number;

export class VfioPciDevice {
  /** open count (4.1: device fds; 6.12: 0 or 1, open_device/close_device) */
  refcnt = 0;
  irq_type = VFIO_PCI_NUM_IRQS;
  /** 4.1: the size of the ctx array; 6.12 keeps contexts sparse */
  num_ctx = 0;
  readonly ctx = new Map<number, VfioPciIrqCtx>();
  msi_qmax = 0;
  pci_2_3 = false;
  virq_disabled = false;
  reset_works = false;
  needs_reset = false;
  nointx = false;
  has_vga = false;
  has_dyn_msix = false;
  msix_bar = 0xff;
  msix_offset = 0;
  msix_size = 0;
  pci_saved_state: PciSavedState | undefined;
  /** pci_iomap'ed BARs (regions requested) */
  readonly barmap: boolean[] = [false, false, false, false, false, false, false];
  readonly bar_mmap_supported: boolean[] = [false, false, false, false, false, false];
  /** BAR values at open, for restoring after a backdoor reset */
  readonly rbar: number[] = [0, 0, 0, 0, 0, 0, 0];
  vconfig: Uint8Array | undefined;
  pci_config_map: Uint8Array | undefined;
  msi_perm: PermBits | undefined;
  extended_caps = false;
  bardirty = false;
  err_trigger: EventfdCtx | undefined;
  req_trigger: EventfdCtx | undefined;
  readonly igate = new Mutex('vfio_pci igate');
  readonly memory_lock = new RwSem('vfio_pci memory_lock');
  /* 6.x low power feature */
  pm_runtime_engaged = false;
  pm_wake_eventfd_ctx: EventfdCtx | undefined;
  constructor(
    readonly pdev: PciDev,
    readonly profile: VfioPciProfile,
  ) {}

  /** debugfs hook (src/debugfs/json.ts): the device's state for snapshots and `vfio-ts graph` */
  debugSnapshot(): object {
    const irq = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'][this.irq_type] ?? 'none';
    return { type: 'vfio_pci_device', refcnt: this.refcnt, irq_type: irq, num_ctx: this.num_ctx };
  }
}

/* the module's statics (THIS_MODULE, driver_lock, the device list), one set per kernel */
export interface VfioPciStatics {
  readonly module: Module;
  readonly driverLock: Mutex;
  driver: PciDriver | undefined;
  readonly profile: VfioPciProfile;
  /** vfio_device_get_from_dev for vfio-pci's own devices */
  readonly devices: Map<PciDev, VfioPciDevice>;
}

const statics = new WeakMap<Kernel, VfioPciStatics>();

export function vfioPciStatics(): VfioPciStatics {
  const s = statics.get(currentKernel());
  if (s === undefined) throw new Error('vfio_pci is not loaded');
  return s;
}

export function setVfioPciStatics(k: Kernel, s: VfioPciStatics | undefined): void {
  if (s === undefined) statics.delete(k);
  else statics.set(k, s);
}

export function isIntx(vdev: VfioPciDevice): boolean {
  return vdev.irq_type === 0;
}

export function isMsi(vdev: VfioPciDevice): boolean {
  return vdev.irq_type === 1;
}

export function isMsix(vdev: VfioPciDevice): boolean {
  return vdev.irq_type === 2;
}

export function isIrqNone(vdev: VfioPciDevice): boolean {
  return !(vdev.irq_type === 0 || vdev.irq_type === 1 || vdev.irq_type === 2);
}
