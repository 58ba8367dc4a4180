import {
  copyFromUser,
  copyToUser,
  current,
  currentKernel,
  type EventfdCtx,
  eventfdCtxFdget,
  eventfdCtxPut,
  fail,
  memdupUser,
} from '../../kernel/index.ts';
import {
  IORESOURCE_MEM,
  PCI_INTERRUPT_PIN,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_QSIZE,
  type PciDev,
  pciBusResetAffected,
  pciMapRom,
  pciProbeResetBus,
  pciProbeResetSlot,
  pciReadConfig,
  pciSetPowerState,
  pciTryResetBus,
  pciTryResetFunction,
  pciUnmapRom,
} from '../../pci/index.ts';
import {
  EBADF,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOSPC,
  ENOTTY,
  EPERM,
  ERANGE,
  encodeCapChain,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INDEX_TO_OFFSET,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_device_feature,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfio_region_info,
} from '../../uapi/index.ts';
import {
  type VfioDevice,
  type VfioGroup,
  vfioFileGroup,
  vfioGroupGetExternalUser,
  vfioGroupPutExternalUser,
} from '../index.ts';
import { vfioPciSetIrqsIoctl } from './vfio_pci_intrs.ts';
import { type VfioPciDevice, vfioPciStatics } from './vfio_pci_private.ts';

/*
 * The device ioctls of vfio-pci (vfio_pci_ioctl in 4.1, the
 * vfio_pci_ioctl_* handlers of vfio_pci_core.c in 6.x): info about the
 * device, its regions and interrupts, SET_IRQS, function and hot reset,
 * and (6.x) VFIO_DEVICE_FEATURE.
 */

/**
 * What a copy_to_user failure turns into: 4.1 returned copy_to_user()'s
 * residue (a positive byte count) from these ioctls, 6.x -EFAULT.
 */
function copyout(vdev: VfioPciDevice, arg: number, bytes: Uint8Array, n: number): number {
  const left = copyToUser(arg, bytes, n);
  if (left === 0) return 0;
  if (vdev.profile.copyoutResidue) return left;
  return fail(EFAULT, 'cannot write the result to user memory');
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** a decoded struct the handler fills in, as the kernel fills its on-stack copy */
function mut<T>(v: T): Mutable<T> {
  return { ...v };
}

function readHeader(arg: number, n: number): Uint8Array | number {
  const buf = new Uint8Array(n);
  if (copyFromUser(buf, arg, n) !== 0) return fail(EFAULT, 'cannot read the argument');
  return buf;
}

/** vfio_pci_get_irq_count */
export function vfioPciGetIrqCount(vdev: VfioPciDevice, irqType: number): number {
  const pdev = vdev.pdev;
  if (irqType === VFIO_PCI_INTX_IRQ_INDEX) {
    const pin = vdev.vconfig?.[PCI_INTERRUPT_PIN] ?? pciReadConfig(pdev, PCI_INTERRUPT_PIN, 1) ?? 0;
    return pin !== 0 ? 1 : 0;
  }
  if (irqType === VFIO_PCI_MSI_IRQ_INDEX) {
    if (pdev.msi_cap === 0) return 0;
    const flags = pciReadConfig(pdev, pdev.msi_cap + PCI_MSI_FLAGS, 2) ?? 0;
    return 1 << ((flags & PCI_MSI_FLAGS_QMASK) >> 1);
  }
  if (irqType === VFIO_PCI_MSIX_IRQ_INDEX) {
    if (pdev.msix_cap === 0) return 0;
    return ((pciReadConfig(pdev, pdev.msix_cap + PCI_MSIX_FLAGS, 2) ?? 0) & PCI_MSIX_FLAGS_QSIZE) + 1;
  }
  if (irqType === VFIO_PCI_ERR_IRQ_INDEX) return pdev.is_pcie ? 1 : 0;
  if (irqType === VFIO_PCI_REQ_IRQ_INDEX) return 1;
  return 0;
}

/* ---- GET_INFO ---- */

export function vfioPciIoctlGetInfo(vdev: VfioPciDevice, arg: number): number {
  const minsz = vfio_device_info.offsetofend('num_irqs');
  const hdr = readHeader(arg, minsz);
  if (typeof hdr === 'number') return hdr;
  const buf = new Uint8Array(vfio_device_info.size);
  buf.set(hdr);
  const info = vfio_device_info.decode(buf);
  if (info.argsz < minsz) return fail(EINVAL, `VFIO_DEVICE_GET_INFO: argsz ${info.argsz} < minsz ${minsz}`);
  const n = vdev.profile.deviceInfoCopyout === 'argsz' ? Math.min(info.argsz, vfio_device_info.size) : minsz;
  let flags = VFIO_DEVICE_FLAGS_PCI;
  if (vdev.reset_works) flags |= VFIO_DEVICE_FLAGS_RESET;
  /* no zPCI and no AtomicOps completer capability here: no capability chain */
  vfio_device_info.encode(
    { argsz: info.argsz, flags, num_regions: VFIO_PCI_NUM_REGIONS, num_irqs: VFIO_PCI_NUM_IRQS },
    buf,
  );
  return copyout(vdev, arg, buf, n);
}

/* ---- GET_REGION_INFO ---- */

export function vfioPciIoctlGetRegionInfo(vdev: VfioPciDevice, arg: number): number {
  const pdev = vdev.pdev;
  const minsz = vfio_region_info.offsetofend('offset');
  const buf = readHeader(arg, minsz);
  if (typeof buf === 'number') return buf;
  const info = mut(vfio_region_info.decode(buf));
  if (info.argsz < minsz)
    return fail(EINVAL, `VFIO_DEVICE_GET_REGION_INFO: argsz ${info.argsz} < minsz ${minsz}`);
  const pageSize = currentKernel().pageSize;
  let msixMappable = false;
  const index = info.index;
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
    info.offset = VFIO_PCI_INDEX_TO_OFFSET(index);
    info.size = BigInt(pdev.cfg_size);
    info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
    const res = pdev.resource[index];
    info.offset = VFIO_PCI_INDEX_TO_OFFSET(index);
    info.size = BigInt(res?.len ?? 0);
    if (info.size === 0n) info.flags = 0;
    else {
      info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      if (vdev.profile.regionInfoCaps) {
        if (vdev.bar_mmap_supported[index]) {
          info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
          if (index === vdev.msix_bar) msixMappable = true;
        }
      } else if ((res?.flags ?? 0) & IORESOURCE_MEM && (res?.len ?? 0) >= pageSize)
        info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
    }
  } else if (index === VFIO_PCI_ROM_REGION_INDEX) {
    info.offset = VFIO_PCI_INDEX_TO_OFFSET(index);
    info.flags = 0;
    /* Report the BAR size, not the ROM size */
    info.size = BigInt(pdev.resource[index]?.len ?? 0);
    if (info.size !== 0n) {
      /* Is it really there? */
      const rom = pciMapRom(pdev);
      if (rom === undefined || rom.size === 0) info.size = 0n;
      else info.flags = VFIO_REGION_INFO_FLAG_READ;
      if (rom !== undefined) pciUnmapRom(pdev);
    }
  } else if (index === VFIO_PCI_VGA_REGION_INDEX) {
    if (!vdev.has_vga) return fail(EINVAL, 'VFIO_DEVICE_GET_REGION_INFO: no VGA region (not a VGA device)');
    info.offset = VFIO_PCI_INDEX_TO_OFFSET(index);
    info.size = 0xc0000n;
    info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else return fail(EINVAL, `VFIO_DEVICE_GET_REGION_INFO: no region ${index}`);
  if (msixMappable) {
    const caps = encodeCapChain(
      [{ id: VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, version: 1, body: new Uint8Array(0) }],
      minsz,
      true,
    );
    info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    if (info.argsz < minsz + caps.bytes.length) {
      info.argsz = minsz + caps.bytes.length;
      info.cap_offset = 0;
    } else {
      if (copyToUser(arg + minsz, caps.bytes) !== 0) return fail(EFAULT, 'cannot write the capability chain');
      info.cap_offset = minsz;
    }
  }
  vfio_region_info.encode(info, buf);
  return copyout(vdev, arg, buf, minsz);
}

/* ---- GET_IRQ_INFO ---- */

export function vfioPciIoctlGetIrqInfo(vdev: VfioPciDevice, arg: number): number {
  const minsz = vfio_irq_info.offsetofend('count');
  const buf = readHeader(arg, minsz);
  if (typeof buf === 'number') return buf;
  const info = mut(vfio_irq_info.decode(buf));
  if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
    return fail(
      EINVAL,
      `VFIO_DEVICE_GET_IRQ_INFO: argsz ${info.argsz} < ${minsz} or index ${info.index} >= ${VFIO_PCI_NUM_IRQS}`,
    );
  if (info.index === VFIO_PCI_ERR_IRQ_INDEX && !vdev.pdev.is_pcie)
    return fail(EINVAL, 'VFIO_DEVICE_GET_IRQ_INFO: no ERR interrupt on a conventional PCI device');
  info.flags = VFIO_IRQ_INFO_EVENTFD;
  info.count = vfioPciGetIrqCount(vdev, info.index);
  if (info.index === VFIO_PCI_INTX_IRQ_INDEX) info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
  else if (info.index !== VFIO_PCI_MSIX_IRQ_INDEX || !vdev.has_dyn_msix) info.flags |= VFIO_IRQ_INFO_NORESIZE;
  vfio_irq_info.encode(info, buf);
  return copyout(vdev, arg, buf, minsz);
}

/* ---- SET_IRQS ---- */

export function vfioPciIoctlSetIrqs(vdev: VfioPciDevice, arg: number): number {
  const minsz = vfio_irq_set.offsetofend('count');
  const buf = readHeader(arg, minsz);
  if (typeof buf === 'number') return buf;
  const hdr = vfio_irq_set.decode(buf);
  let size = 0;
  const max = vfioPciGetIrqCount(vdev, hdr.index);
  if (vdev.profile.setIrqsCommonValidate) {
    /* vfio_set_irqs_validate_and_prepare */
    if (
      hdr.argsz < minsz ||
      hdr.index >= VFIO_PCI_NUM_IRQS ||
      hdr.count >= 0xffffffff - hdr.start ||
      hdr.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)
    )
      return fail(EINVAL, 'VFIO_DEVICE_SET_IRQS: bad argsz, index, start/count or flags');
    if (hdr.start >= max || hdr.start + hdr.count > max)
      return fail(
        EINVAL,
        `VFIO_DEVICE_SET_IRQS: vectors ${hdr.start}+${hdr.count} beyond the ${max} of index ${hdr.index}`,
      );
    switch (hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
      case VFIO_IRQ_SET_DATA_NONE:
        size = 0;
        break;
      case VFIO_IRQ_SET_DATA_BOOL:
        size = 1;
        break;
      case VFIO_IRQ_SET_DATA_EVENTFD:
        size = 4;
        break;
      default:
        return fail(EINVAL, 'VFIO_DEVICE_SET_IRQS: exactly one data type flag is needed');
    }
    if (size !== 0 && hdr.argsz - minsz < hdr.count * size)
      return fail(
        EINVAL,
        `VFIO_DEVICE_SET_IRQS: argsz ${hdr.argsz} too small for ${hdr.count} data elements`,
      );
  } else {
    if (
      hdr.argsz < minsz ||
      hdr.index >= VFIO_PCI_NUM_IRQS ||
      hdr.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)
    )
      return fail(EINVAL, 'VFIO_DEVICE_SET_IRQS: bad argsz, index or flags');
    if (!(hdr.flags & VFIO_IRQ_SET_DATA_NONE)) {
      if (hdr.flags & VFIO_IRQ_SET_DATA_BOOL) size = 1;
      else if (hdr.flags & VFIO_IRQ_SET_DATA_EVENTFD) size = 4;
      else return fail(EINVAL, 'VFIO_DEVICE_SET_IRQS: no data type flag');
      /* start + count is an unsigned int sum, as in C */
      if (hdr.argsz - minsz < hdr.count * size || hdr.start >= max || (hdr.start + hdr.count) >>> 0 > max)
        return fail(
          EINVAL,
          `VFIO_DEVICE_SET_IRQS: argsz, start ${hdr.start} or count ${hdr.count} out of range (max ${max})`,
        );
    }
  }
  let data: Uint8Array | undefined;
  if (size !== 0) {
    const d = memdupUser(arg + minsz, hdr.count * size);
    if (typeof d === 'number') return fail(-d, 'VFIO_DEVICE_SET_IRQS: cannot read the data array');
    data = d;
  }
  vdev.igate.lock();
  try {
    return vfioPciSetIrqsIoctl(vdev, hdr.flags, hdr.index, hdr.start, hdr.count, data);
  } finally {
    vdev.igate.unlock();
  }
}

/* ---- RESET ---- */

export function vfioPciIoctlReset(vdev: VfioPciDevice): number {
  if (!vdev.reset_works) return fail(EINVAL, 'VFIO_DEVICE_RESET: the device has no reset method');
  if (vdev.profile.releaseResetLocked) pciSetPowerState(vdev.pdev, 0);
  return pciTryResetFunction(vdev.pdev);
}

/* ---- hot reset ---- */

function groupIdOf(pdev: PciDev): number | undefined {
  return pdev.iommu_group?.id;
}

export function vfioPciIoctlGetHotResetInfo(vdev: VfioPciDevice, arg: number): number {
  const pdev = vdev.pdev;
  const minsz = vfio_pci_hot_reset_info.offsetofend('count');
  const buf = readHeader(arg, minsz);
  if (typeof buf === 'number') return buf;
  const hdr = mut(vfio_pci_hot_reset_info.decode(buf));
  if (hdr.argsz < minsz)
    return fail(EINVAL, `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: argsz ${hdr.argsz} < ${minsz}`);
  hdr.flags = 0;
  /* Can we do a slot or bus reset or neither? */
  if (pciProbeResetSlot(pdev) !== 0 && pciProbeResetBus(pdev) !== 0)
    return fail(
      ENODEV,
      `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: ${pdev.name} is on a root bus (no slot or bus reset)`,
    );
  const affected = pciBusResetAffected(pdev);
  const count = affected.length;
  if (vdev.profile.hotResetByFile && count === 0) return -ERANGE;
  let ret = 0;
  let devices: Uint8Array | undefined;
  if (hdr.argsz < minsz + count * vfio_pci_dependent_device.size) {
    /* not enough room: -ENOSPC and the count, so the user can retry */
    ret = fail(ENOSPC, `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: room for ${count} devices needed`);
    hdr.count = count;
  } else {
    devices = new Uint8Array(count * vfio_pci_dependent_device.size);
    for (let i = 0; i < count; i++) {
      const d = affected[i] as PciDev;
      const gid = groupIdOf(d);
      if (gid === undefined) {
        ret = fail(EPERM, `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: ${d.name} has no IOMMU group`);
        /* 6.x gives up at once; 4.1 still writes the header back (flags 0, the user's count) */
        if (vdev.profile.hotResetByFile) return ret;
        break;
      }
      vfio_pci_dependent_device.encode(
        { group_id: gid, segment: d.domain, bus: d.busnr, devfn: d.devfn },
        devices,
        i * vfio_pci_dependent_device.size,
      );
    }
    if (ret === 0) hdr.count = count;
  }
  if (vdev.profile.hotResetByFile && devices !== undefined) {
    if (copyToUser(arg + minsz, devices) !== 0) return fail(EFAULT, 'cannot write the device list');
  }
  if (copyToUser(arg, vfio_pci_hot_reset_info.encode(hdr), minsz) !== 0)
    return fail(EFAULT, 'cannot write the header');
  if (!vdev.profile.hotResetByFile && ret === 0 && devices !== undefined) {
    if (copyToUser(arg + minsz, devices) !== 0) return fail(EFAULT, 'cannot write the device list');
  }
  return ret;
}

export function vfioPciIoctlHotReset(vdev: VfioPciDevice, arg: number): number {
  const pdev = vdev.pdev;
  const minsz = vfio_pci_hot_reset.offsetofend('count');
  const buf = readHeader(arg, minsz);
  if (typeof buf === 'number') return buf;
  const hdr = vfio_pci_hot_reset.decode(buf);
  if (hdr.argsz < minsz || hdr.flags !== 0)
    return fail(EINVAL, 'VFIO_DEVICE_PCI_HOT_RESET: argsz < minsz or flags != 0');
  /* 6.x: a zero-length array is only for cdev-opened devices */
  if (vdev.profile.hotResetByFile && hdr.count === 0)
    return fail(EINVAL, 'VFIO_DEVICE_PCI_HOT_RESET: a group-opened device needs group fds');
  if (pciProbeResetSlot(pdev) !== 0 && pciProbeResetBus(pdev) !== 0)
    return fail(ENODEV, `VFIO_DEVICE_PCI_HOT_RESET: ${pdev.name} is on a root bus (no slot or bus reset)`);
  const affected = pciBusResetAffected(pdev);
  /* one group per device is the max; 4.1 also refuses an empty array */
  if (hdr.count === 0 || hdr.count > affected.length)
    return fail(
      EINVAL,
      `VFIO_DEVICE_PCI_HOT_RESET: ${hdr.count} group fds for ${affected.length} affected devices`,
    );
  const fdBytes = new Uint8Array(hdr.count * 4);
  if (copyFromUser(fdBytes, arg + minsz, fdBytes.length) !== 0)
    return fail(EFAULT, 'cannot read the group fds');
  const dv = new DataView(fdBytes.buffer);
  const fds = Array.from({ length: hdr.count }, (_, i) => dv.getInt32(i * 4, true));
  return vdev.profile.hotResetByFile
    ? hotResetFiles(vdev, affected, fds)
    : hotResetExternal(vdev, affected, fds);
}

/* 4.1: hold each group through the external user API for the duration of the reset */
function hotResetExternal(vdev: VfioPciDevice, affected: PciDev[], fds: number[]): number {
  const groups: VfioGroup[] = [];
  let ret = 0;
  for (const fd of fds) {
    const f = fd < 0 ? undefined : current().files.get(fd);
    if (f === undefined) {
      ret = fail(EBADF, `VFIO_DEVICE_PCI_HOT_RESET: fd ${fd} is not open`);
      break;
    }
    const g = vfioGroupGetExternalUser(f);
    if (typeof g === 'number') {
      ret = g;
      break;
    }
    groups.push(g);
  }
  if (ret === 0) {
    const ids = new Set(groups.map((g) => g.iommu_group?.id));
    for (const d of affected) {
      const gid = groupIdOf(d);
      if (gid === undefined) {
        ret = fail(EPERM, `VFIO_DEVICE_PCI_HOT_RESET: ${d.name} has no IOMMU group`);
        break;
      }
      if (!ids.has(gid)) {
        ret = fail(EINVAL, `VFIO_DEVICE_PCI_HOT_RESET: the group of ${d.name} (${gid}) was not supplied`);
        break;
      }
    }
    /* User has access, do the reset */
    if (ret === 0) ret = pciTryResetBus(vdev.pdev);
  }
  for (const g of groups.reverse()) vfioGroupPutExternalUser(g);
  return ret;
}

function vfioDeviceOf(pdev: PciDev): VfioDevice | undefined {
  return pdev.driver_data as VfioDevice | undefined;
}

/* 6.x: group files by reference; every function the reset reaches must be ours and in those groups */
function hotResetFiles(vdev: VfioPciDevice, affected: PciDev[], fds: number[]): number {
  const groups: VfioGroup[] = [];
  for (const fd of fds) {
    const f = fd < 0 ? undefined : current().files.get(fd);
    if (f === undefined) return fail(EBADF, `VFIO_DEVICE_PCI_HOT_RESET: fd ${fd} is not open`);
    const g = vfioFileGroup(f);
    if (g === undefined) return fail(EINVAL, `VFIO_DEVICE_PCI_HOT_RESET: fd ${fd} is not a VFIO group`);
    groups.push(g);
  }
  const set = vfioPciDevSet(vdev);
  /* vfio_pci_dev_set_resettable: every function on the bus is in the device set */
  if (affected.some((d) => !set.some((v) => v.pdev === d)))
    return fail(EINVAL, 'VFIO_DEVICE_PCI_HOT_RESET: a device on the bus is not bound to vfio-pci');
  for (const v of set) {
    const group = vfioDeviceOf(v.pdev)?.group;
    if (group === undefined || !groups.includes(group))
      return fail(EINVAL, `VFIO_DEVICE_PCI_HOT_RESET: ${v.pdev.name} is not in the supplied groups`);
  }
  for (const v of set) pciSetPowerState(v.pdev, 0);
  return pciTryResetBus(vdev.pdev);
}

/**
 * The 6.x device set: the vfio-pci devices sharing the reset domain (the
 * same bus below a bridge); a device on a root bus is alone.
 */
export function vfioPciDevSet(vdev: VfioPciDevice): VfioPciDevice[] {
  const bridge = vdev.pdev.bridge;
  if (bridge === undefined) return [vdev];
  return [...vfioPciStatics().devices.values()].filter((v) => v.pdev.bridge === bridge);
}

/* ---- VFIO_DEVICE_FEATURE (6.x) ---- */

/* vfio_check_feature: 1 to go on, 0 for a successful probe, -EINVAL */
function vfioCheckFeature(flags: number, argsz: number, supported: number, minsz: number): number {
  if (flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET) & ~supported)
    return fail(EINVAL, 'VFIO_DEVICE_FEATURE: GET/SET not supported by this feature');
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  /* Without PROBE one of GET or SET must be requested */
  if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)))
    return fail(EINVAL, 'VFIO_DEVICE_FEATURE: neither GET nor SET');
  if (argsz < minsz) return fail(EINVAL, `VFIO_DEVICE_FEATURE: ${argsz} bytes of data, ${minsz} needed`);
  return 1;
}

export function vfioPciIoctlFeature(vdev: VfioPciDevice, arg: number): number {
  const minsz = vfio_device_feature.offsetofend('flags');
  const buf = readHeader(arg, minsz);
  if (typeof buf === 'number') return buf;
  const feature = vfio_device_feature.decode(buf);
  if (feature.argsz < minsz) return fail(EINVAL, `VFIO_DEVICE_FEATURE: argsz ${feature.argsz} < ${minsz}`);
  const known =
    VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE;
  if (feature.flags & ~known) return fail(EINVAL, 'VFIO_DEVICE_FEATURE: unknown flags');
  /* GET & SET are mutually exclusive except with PROBE */
  if (
    !(feature.flags & VFIO_DEVICE_FEATURE_PROBE) &&
    feature.flags & VFIO_DEVICE_FEATURE_SET &&
    feature.flags & VFIO_DEVICE_FEATURE_GET
  )
    return fail(EINVAL, 'VFIO_DEVICE_FEATURE: GET and SET together');
  const dataArg = arg + minsz;
  const argsz = feature.argsz - minsz;
  switch (feature.flags & VFIO_DEVICE_FEATURE_MASK) {
    case VFIO_DEVICE_FEATURE_MIGRATION:
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
      return fail(ENOTTY, 'VFIO_DEVICE_FEATURE: vfio-pci has no migration support');
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
      return fail(ENOTTY, 'VFIO_DEVICE_FEATURE: vfio-pci has no DMA logging');
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: {
      const r = vfioCheckFeature(feature.flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
      return r !== 1 ? r : runtimePmEntry(vdev, undefined);
    }
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: {
      const r = vfioCheckFeature(feature.flags, argsz, VFIO_DEVICE_FEATURE_SET, 8);
      if (r !== 1) return r;
      const entry = new Uint8Array(8);
      if (copyFromUser(entry, dataArg, 8) !== 0) return fail(EFAULT, 'cannot read the wakeup eventfd');
      const fd = new DataView(entry.buffer).getInt32(0, true);
      if (fd < 0) return fail(EINVAL, 'VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: negative eventfd');
      const ctx = eventfdCtxFdget(fd);
      if (typeof ctx === 'number') return ctx;
      const ret = runtimePmEntry(vdev, ctx);
      if (ret !== 0) eventfdCtxPut(ctx);
      return ret;
    }
    case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: {
      const r = vfioCheckFeature(feature.flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
      if (r !== 1) return r;
      vfioPciRuntimePmExit(vdev);
      return 0;
    }
    default:
      /* PCI_VF_TOKEN: not an SR-IOV PF; everything else: no such feature */
      return fail(
        ENOTTY,
        `VFIO_DEVICE_FEATURE: feature ${feature.flags & VFIO_DEVICE_FEATURE_MASK} not supported`,
      );
  }
}

function runtimePmEntry(vdev: VfioPciDevice, ctx: EventfdCtx | undefined): number {
  if (vdev.pm_runtime_engaged) return fail(EINVAL, 'VFIO_DEVICE_FEATURE: the device is already in low power');
  vdev.pm_runtime_engaged = true;
  vdev.pm_wake_eventfd_ctx = ctx;
  return 0;
}

/** vfio_pci_runtime_pm_exit */
export function vfioPciRuntimePmExit(vdev: VfioPciDevice): void {
  if (!vdev.pm_runtime_engaged) return;
  vdev.pm_runtime_engaged = false;
  if (vdev.pm_wake_eventfd_ctx !== undefined) {
    eventfdCtxPut(vdev.pm_wake_eventfd_ctx);
    vdev.pm_wake_eventfd_ctx = undefined;
  }
}
