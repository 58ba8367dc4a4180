import {
  eehCore,
  eehDevOpen,
  eehDevRelease,
  eehPeOfDevice,
  IommuGroup,
  iommuGroupGet,
  iommuGroupPut,
} from '../../iommu/index.ts';
import {
  currentKernel,
  eventfdCtxPut,
  eventfdSignal,
  type FilePos,
  fail,
  type KthreadBody,
  type ModuleSpec,
  Mutex,
  modulePut,
  traced,
  tryModuleGet,
  uarg,
  type Vma,
} from '../../kernel/index.ts';
import {
  definePciDriver,
  devPrintk,
  IORESOURCE_MEM,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_D0,
  PCI_D3hot,
  PCI_HEADER_TYPE_NORMAL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
  type PciDev,
  pciBusResetAffected,
  pciClearMaster,
  pciDevTrylock,
  pciDisableDevice,
  pciEnableDevice,
  pciFreeSavedState,
  pciIntxMaskSupported,
  pciLoadAndFreeSavedState,
  pciProbeResetBus,
  pciProbeResetSlot,
  pciReadConfig,
  pciRegisterDriver,
  pciResetFunction,
  pciResetFunctionLocked,
  pciRestoreState,
  pciSaveState,
  pciSetPowerState,
  pciStoreSavedState,
  pciTryResetBus,
  pciTryResetFunction,
  pciUnregisterDriver,
  pciWriteConfig,
} from '../../pci/index.ts';
import {
  EAGAIN,
  EINVAL,
  ENODEV,
  ENOTTY,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_NONE,
} from '../../uapi/index.ts';
import { type VfioDeviceOps, vfioAddGroupDev, vfioDelGroupDev } from '../index.ts';
import { vfioPciProfile } from './profile.ts';
import { vfioConfigFree, vfioConfigInit } from './vfio_pci_config.ts';
import { vfioPciProbeDynMsix, vfioPciSetIrqsIoctl } from './vfio_pci_intrs.ts';
import {
  vfioPciDevSet,
  vfioPciIoctlFeature,
  vfioPciIoctlGetHotResetInfo,
  vfioPciIoctlGetInfo,
  vfioPciIoctlGetIrqInfo,
  vfioPciIoctlGetRegionInfo,
  vfioPciIoctlHotReset,
  vfioPciIoctlReset,
  vfioPciIoctlSetIrqs,
  vfioPciRuntimePmExit,
} from './vfio_pci_ioctl.ts';
import { setVfioPciStatics, VfioPciDevice, type VfioPciStatics, vfioPciStatics } from './vfio_pci_private.ts';
import { vfioPciMmap, vfioPciRw } from './vfio_pci_rdwr.ts';

/*
 * vfio-pci: the VFIO bus driver for PCI devices (drivers/vfio/pci/vfio_pci.c;
 * vfio_pci_core.c in 6.x). Its probe registers the device with the VFIO
 * core; the first open enables the device (reset, saved state, virtual
 * config space) and the last close disables it again (interrupts off,
 * state restored, reset).
 */
export { VfioPciDevice };

/* vfio_pci_probe_mmaps (6.x): which BARs can be mmapped */
function vfioPciProbeMmaps(vdev: VfioPciDevice): void {
  const pageSize = currentKernel().pageSize;
  for (let bar = 0; bar < 6; bar++) {
    const res = vdev.pdev.resource[bar];
    let ok = false;
    if (res !== undefined && res.flags & IORESOURCE_MEM && res.len > 0) {
      /* a sub-page BAR is mappable when it starts a page (the rest of the page is reserved) */
      ok = res.len >= pageSize || res.start % pageSize === 0;
    }
    vdev.bar_mmap_supported[bar] = ok;
  }
}

const vfioPciEnable = traced('vfio_pci_enable', (vdev: VfioPciDevice): number => {
  const pdev = vdev.pdev;
  const prof = vdev.profile;
  pciSetPowerState(pdev, PCI_D0);
  /* Don't allow our initial saved state to include busmaster */
  pciClearMaster(pdev);
  let ret = pciEnableDevice(pdev);
  if (ret !== 0) return ret;
  if (prof.enable612) {
    /* If reset fails because of the device lock, fail this path entirely */
    const r = pciTryResetFunction(pdev);
    if (r === -EAGAIN) {
      pciDisableDevice(pdev);
      return r;
    }
    vdev.reset_works = r === 0;
  } else vdev.reset_works = pciResetFunction(pdev) === 0;
  pciSaveState(pdev);
  vdev.pci_saved_state = pciStoreSavedState(pdev);
  /* 4.1 builds the virtual config before looking at INTx masking, 6.x after */
  if (!prof.enable612) {
    ret = vfioConfigInit(vdev);
    if (ret !== 0) {
      pciFreeSavedState(vdev.pci_saved_state);
      vdev.pci_saved_state = undefined;
      pciDisableDevice(pdev);
      return ret;
    }
  }
  vdev.pci_2_3 = pciIntxMaskSupported(pdev);
  const cmd = pciReadConfig(pdev, PCI_COMMAND, 2) ?? 0;
  if (vdev.pci_2_3 && cmd & PCI_COMMAND_INTX_DISABLE)
    pciWriteConfig(pdev, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_INTX_DISABLE);
  if (prof.enable612) {
    ret = vfioConfigInit(vdev);
    if (ret !== 0) {
      pciFreeSavedState(vdev.pci_saved_state);
      vdev.pci_saved_state = undefined;
      pciDisableDevice(pdev);
      return ret;
    }
  }
  if (pdev.msix_cap !== 0) {
    const flags = pciReadConfig(pdev, pdev.msix_cap + PCI_MSIX_FLAGS, 2) ?? 0;
    const table = pciReadConfig(pdev, pdev.msix_cap + PCI_MSIX_TABLE, 4) ?? 0;
    vdev.msix_bar = table & PCI_MSIX_TABLE_BIR;
    vdev.msix_offset = (table & PCI_MSIX_TABLE_OFFSET) >>> 0;
    vdev.msix_size = ((flags & PCI_MSIX_FLAGS_QSIZE) + 1) * 16;
    vdev.has_dyn_msix = vfioPciProbeDynMsix(vdev);
  } else {
    vdev.msix_bar = 0xff;
    vdev.has_dyn_msix = false;
  }
  /* VGA support (CONFIG_VFIO_PCI_VGA) is not built */
  vdev.has_vga = false;
  if (prof.subPageBarMmap) vfioPciProbeMmaps(vdev);
  return 0;
});

/*
 * Attempt a bus reset if there are devices affected by it that need one
 * and all of them are unused. 4.1 requires every affected device to be
 * bound to vfio-pci (vfio_pci_try_bus_reset); 6.x the same through the
 * device set (vfio_pci_dev_set_try_reset).
 */
function vfioPciTryBusReset(vdev: VfioPciDevice): void {
  const pdev = vdev.pdev;
  if (pciProbeResetSlot(pdev) !== 0 && pciProbeResetBus(pdev) !== 0) return;
  const st = vfioPciStatics();
  const devs: VfioPciDevice[] = [];
  for (const d of pciBusResetAffected(pdev)) {
    const v = st.devices.get(d);
    if (v === undefined || d.driver !== st.driver) return;
    devs.push(v);
  }
  if (vdev.profile.hotResetByFile && vfioPciDevSet(vdev).some((v) => v !== vdev && v.refcnt > 0)) return;
  if (devs.some((v) => v !== vdev && v.refcnt > 0)) return;
  if (!devs.some((v) => v.needs_reset)) return;
  if (pciTryResetBus(pdev) === 0) for (const v of devs) v.needs_reset = false;
}

function vfioPciDisable(vdev: VfioPciDevice): void {
  const pdev = vdev.pdev;
  const prof = vdev.profile;
  if (prof.deviceFeature) {
    vfioPciRuntimePmExit(vdev);
    pciSetPowerState(pdev, PCI_D0);
  }
  /* Stop the device from further DMA */
  pciClearMaster(pdev);
  vdev.igate.lock();
  vfioPciSetIrqsIoctl(
    vdev,
    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
    vdev.irq_type,
    0,
    0,
    undefined,
  );
  vdev.igate.unlock();
  vdev.virq_disabled = false;
  vfioConfigFree(vdev);
  vdev.barmap.fill(false);
  vdev.needs_reset = true;
  /*
   * If we have saved state, restore it. If we can reset the device, even
   * better. Resetting with current state seems better than nothing, but
   * saving and restoring current state without reset is just busy work.
   */
  const saved = vdev.pci_saved_state;
  vdev.pci_saved_state = undefined;
  let skipReset = false;
  if (pciLoadAndFreeSavedState(pdev, saved) !== 0) {
    if (prof.messages === '4.1')
      currentKernel().printk('info', `vfio_pci_disable: Couldn't reload ${pdev.name} saved state`);
    else devPrintk('info', pdev, "vfio_pci_core_disable: Couldn't reload saved state");
    if (!vdev.reset_works) skipReset = true;
    else pciSaveState(pdev);
  }
  if (!skipReset) {
    /* Disable INTx and MSI, presumably to avoid spurious interrupts during reset */
    pciWriteConfig(pdev, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    if (prof.releaseResetLocked) {
      /*
       * Take the locks ourselves; the "try" interface would overwrite the
       * configuration restored below.
       */
      const bridge = pdev.bridge;
      if (vdev.reset_works && (bridge === undefined || pciDevTrylock(bridge)) && pciDevTrylock(pdev)) {
        if (pciResetFunctionLocked(pdev) === 0) vdev.needs_reset = false;
      }
    } else if (vdev.reset_works && pciTryResetFunction(pdev) === 0) vdev.needs_reset = false;
    pciRestoreState(pdev);
  }
  pciDisableDevice(pdev);
  vfioPciTryBusReset(vdev);
  /* idle devices rest in D3hot (4.1: unless disable_idle_d3; 6.x: runtime PM) */
  pciSetPowerState(pdev, PCI_D3hot);
}

const vfioPciOpen = traced('vfio_pci_open', (deviceData: unknown): number => {
  const vdev = deviceData as VfioPciDevice;
  const { module: thisModule, driverLock } = vfioPciStatics();
  let ret = 0;
  if (!tryModuleGet(thisModule)) return -ENODEV;
  driverLock.lock();
  if (vdev.refcnt === 0) {
    ret = vfioPciEnable(vdev);
    if (ret !== 0) {
      driverLock.unlock();
      modulePut(thisModule);
      return ret;
    }
    vfioSpaprPciEehOpen(vdev.pdev);
  }
  vdev.refcnt++;
  driverLock.unlock();
  return ret;
});

const vfioPciRelease = traced('vfio_pci_release', (deviceData: unknown): void => {
  const vdev = deviceData as VfioPciDevice;
  const { module: thisModule, driverLock } = vfioPciStatics();
  driverLock.lock();
  if (--vdev.refcnt === 0) {
    vfioSpaprPciEehRelease(vdev.pdev);
    vfioPciDisable(vdev);
    if (vdev.profile.releaseDropsErrReq) {
      vdev.igate.lock();
      if (vdev.err_trigger !== undefined) eventfdCtxPut(vdev.err_trigger);
      vdev.err_trigger = undefined;
      if (vdev.req_trigger !== undefined) eventfdCtxPut(vdev.req_trigger);
      vdev.req_trigger = undefined;
      vdev.igate.unlock();
    }
  }
  driverLock.unlock();
  modulePut(thisModule);
});

/*
 * vfio_spapr_pci_eeh_open/release: on POWER the device's PE now reports
 * its errors to the user (and its freeze state governs MMIO and DMA);
 * elsewhere they do nothing.
 */
function vfioSpaprPciEehOpen(pdev: PciDev): void {
  eehDevOpen(eehCore(), pdev);
  pdev.eehState = eehPeOfDevice(pdev)?.hw;
}

function vfioSpaprPciEehRelease(pdev: PciDev): void {
  eehDevRelease(eehCore(), pdev);
}

/* 6.x: a wakeup eventfd ends low power on the next access (runtime resume) */
function vfioPciRuntimeResume(vdev: VfioPciDevice): void {
  const ctx = vdev.pm_wake_eventfd_ctx;
  if (vdev.pm_runtime_engaged && ctx !== undefined) {
    eventfdSignal(ctx);
    vfioPciRuntimePmExit(vdev);
  }
}

const vfioPciIoctl = traced(
  'vfio_pci_ioctl',
  (deviceData: unknown, cmd: number, arg: bigint): number => {
    const vdev = deviceData as VfioPciDevice;
    const a = uarg(arg);
    if (vdev.profile.deviceFeature) vfioPciRuntimeResume(vdev);
    switch (cmd) {
      case VFIO_DEVICE_GET_INFO:
        return vfioPciIoctlGetInfo(vdev, a);
      case VFIO_DEVICE_GET_REGION_INFO:
        return vfioPciIoctlGetRegionInfo(vdev, a);
      case VFIO_DEVICE_GET_IRQ_INFO:
        return vfioPciIoctlGetIrqInfo(vdev, a);
      case VFIO_DEVICE_SET_IRQS:
        return vfioPciIoctlSetIrqs(vdev, a);
      case VFIO_DEVICE_RESET:
        return vfioPciIoctlReset(vdev);
      case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO:
        return vfioPciIoctlGetHotResetInfo(vdev, a);
      case VFIO_DEVICE_PCI_HOT_RESET:
        return vfioPciIoctlHotReset(vdev, a);
      case VFIO_DEVICE_FEATURE:
        if (vdev.profile.deviceFeature) return vfioPciIoctlFeature(vdev, a);
        break;
    }
    return fail(ENOTTY, `vfio-pci: ioctl 0x${cmd.toString(16)} is not a vfio-pci device ioctl`);
  },
  (_d, cmd) => `cmd=0x${cmd.toString(16)}`,
);

function vfioPciRead(deviceData: unknown, buf: number, count: number, ppos: FilePos): number {
  if (count === 0) return 0;
  const vdev = deviceData as VfioPciDevice;
  if (vdev.profile.deviceFeature) vfioPciRuntimeResume(vdev);
  return vfioPciRw(vdev, buf, count, ppos, false);
}

function vfioPciWrite(deviceData: unknown, buf: number, count: number, ppos: FilePos): number {
  if (count === 0) return 0;
  const vdev = deviceData as VfioPciDevice;
  if (vdev.profile.deviceFeature) vfioPciRuntimeResume(vdev);
  return vfioPciRw(vdev, buf, count, ppos, true);
}

function vfioPciMmapOp(deviceData: unknown, vma: Vma): number {
  return vfioPciMmap(deviceData as VfioPciDevice, vma);
}

/* ask the user to give the device back (unbind while open): the REQ eventfd */
const vfioPciRequest = traced('vfio_pci_request', (deviceData: unknown, count: number): void => {
  const vdev = deviceData as VfioPciDevice;
  const pdev = vdev.pdev;
  vdev.igate.lock();
  const t = vdev.req_trigger;
  if (vdev.profile.messages === '4.1') {
    if (t !== undefined) {
      devPrintk('debug', pdev, 'Requesting device from user');
      eventfdSignal(t);
    }
  } else if (t !== undefined) {
    if (count % 10 === 0) devPrintk('notice', pdev, `Relaying device request to user (#${count})`);
    eventfdSignal(t);
  } else if (count === 0)
    devPrintk('warn', pdev, 'No device request channel registered, blocked until released by user');
  vdev.igate.unlock();
});

export const vfioPciOps: VfioDeviceOps = {
  name: 'vfio-pci',
  open: vfioPciOpen,
  release: vfioPciRelease,
  ioctl: vfioPciIoctl,
  read: vfioPciRead,
  write: vfioPciWrite,
  mmap: vfioPciMmapOp,
  request: vfioPciRequest,
};

const vfioPciProbe = traced(
  'vfio_pci_probe',
  (pdev: PciDev): number => {
    if (pdev.hdr_type !== PCI_HEADER_TYPE_NORMAL)
      return fail(EINVAL, `vfio-pci: ${pdev.name} is not a normal (type 0) function`);
    const group = iommuGroupGet(pdev);
    if (group === undefined) return fail(EINVAL, `vfio-pci: ${pdev.name} has no IOMMU group`);
    const st = vfioPciStatics();
    const vdev = new VfioPciDevice(pdev, st.profile);
    currentKernel().objects.alloc('vfio_pci_device');
    const ret = vfioAddGroupDev(pdev, vfioPciOps, vdev);
    if (ret !== 0) {
      iommuGroupPut(group);
      currentKernel().objects.free('vfio_pci_device');
      return ret;
    }
    st.devices.set(pdev, vdev);
    /*
     * pci-core leaves the power state unknown at boot; go through D0 to
     * be able to reach D3hot while the device is unused.
     */
    pciSetPowerState(pdev, PCI_D0);
    pciSetPowerState(pdev, PCI_D3hot);
    return 0;
  },
  (pdev) => pdev.name,
);

function* vfioPciRemove(pdev: PciDev): KthreadBody<void> {
  const vdev = (yield* vfioDelGroupDev(pdev)) as VfioPciDevice | undefined;
  if (vdev === undefined) return;
  vfioPciStatics().devices.delete(pdev);
  /* the reference vfio_pci_probe took */
  if (pdev.iommu_group instanceof IommuGroup) iommuGroupPut(pdev.iommu_group);
  /* 4.1 freed the device without dropping the ERR/REQ eventfds a user left behind */
  if (vdev.profile.releaseDropsErrReq) {
    if (vdev.err_trigger !== undefined) eventfdCtxPut(vdev.err_trigger);
    if (vdev.req_trigger !== undefined) eventfdCtxPut(vdev.req_trigger);
  }
  currentKernel().objects.free('vfio_pci_device');
  pciSetPowerState(pdev, PCI_D0);
}

const PCI_ERS_RESULT_CAN_RECOVER = 2;
const PCI_ERS_RESULT_DISCONNECT = 4;

/* AER: the device reported an error; tell the user through the ERR eventfd */
function vfioPciAerErrDetected(pdev: PciDev, _state: number): number {
  const vdev = vfioPciStatics().devices.get(pdev);
  if (vdev === undefined) return PCI_ERS_RESULT_DISCONNECT;
  vdev.igate.lock();
  if (vdev.err_trigger !== undefined) eventfdSignal(vdev.err_trigger);
  vdev.igate.unlock();
  return PCI_ERS_RESULT_CAN_RECOVER;
}

export const vfioPciModule: ModuleSpec = {
  name: 'vfio_pci',
  depends: ['vfio'],
  init(mod) {
    const k = currentKernel();
    const st: VfioPciStatics = {
      module: mod,
      driverLock: new Mutex('vfio_pci driver_lock'),
      driver: undefined,
      profile: vfioPciProfile(k.version),
      devices: new Map(),
    };
    setVfioPciStatics(k, st);
    const driver = definePciDriver({
      name: 'vfio-pci',
      owner: mod,
      driver_managed_dma: true,
      err_handler: { error_detected: vfioPciAerErrDetected },
      probe: vfioPciProbe,
      remove: vfioPciRemove,
    });
    st.driver = driver;
    return pciRegisterDriver(driver);
  },
  exit() {
    const st = vfioPciStatics();
    if (st.driver !== undefined) pciUnregisterDriver(st.driver);
    setVfioPciStatics(currentKernel(), undefined);
  },
};
