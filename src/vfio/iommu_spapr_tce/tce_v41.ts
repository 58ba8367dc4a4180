import {
  DMA_TO_DEVICE,
  type IommuGroup,
  type IommuTable,
  iommuClearTce,
  iommuFlushTce,
  iommuGroupGetIommudata,
  iommuGroupId,
  iommuReleaseOwnership,
  iommuTakeOwnership,
  iommuTceBuild,
  iommuTceClearParamCheck,
  iommuTceDirection,
  iommuTcePutParamCheck,
  putPage,
  TCE_PCI_READ,
  TCE_PCI_WRITE,
  tceAddr,
  tcePerm,
} from '../../iommu/index.ts';
import {
  capable,
  current,
  currentKernel,
  fail,
  Mutex,
  pr_err,
  pr_warn,
  traced,
  WARN_ON,
} from '../../kernel/index.ts';
import {
  CAP_IPC_LOCK,
  EBUSY,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOMEM,
  ENOTTY,
  ENXIO,
  EPERM,
  ESRCH,
  RLIMIT_MEMLOCK,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_EEH_PE_OP,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SPAPR_TCE_IOMMU,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '../../uapi/index.ts';
import type { VfioIommuDriverOps } from '../index.ts';
import { vfioSpaprIommuEehIoctl } from './eeh.ts';
import {
  checkMapAlignment,
  checkUnmapSize,
  fmtBuildArgs,
  fmtClearArgs,
  prErrBuildFailed,
  prof,
  tcePageIsContained,
} from './tce_common.ts';
import { copyIoctlArg, copyStructToUser } from './uaccess.ts';

/*
 * drivers/vfio/vfio_iommu_spapr_tce.c as the seed walks it (v3.19-v4.1):
 * one group, hence one iommu_table, per container; the whole window is
 * charged to locked_vm at ENABLE; every MAP pins each IOMMU page and
 * writes one TCE, never over a valid one.
 */
export class TceContainerV41 {
  readonly lock = new Mutex('tce_container->lock');
  tbl: IommuTable | undefined;
  enabled = false;

  /** debugfs hook (src/debugfs/json.ts): the container and its one table */
  debugSnapshot(): object {
    return {
      type: 'tce_container',
      enabled: this.enabled,
      tables: this.tbl === undefined ? [] : [this.tbl.debugSnapshot()],
    };
  }
}

/** the pages ENABLE charges: (it_size << it_page_shift) >> PAGE_SHIFT */
export function tceWindowPages(tbl: IommuTable): number {
  return Math.floor((tbl.it_size * tbl.pageSize) / currentKernel().pageSize);
}

export const tceIommuEnable = traced('tce_iommu_enable', (container: TceContainerV41): number => {
  const tbl = container.tbl;
  if (tbl === undefined)
    return fail(prof().enableNoGroupErrno, 'VFIO_IOMMU_ENABLE: no group is attached to the container');
  const task = current();
  const mm = task.mm;
  if (mm === null)
    return fail(ESRCH, 'VFIO_IOMMU_ENABLE: the process has exited (no mm)'); /* process exited */
  if (container.enabled) return fail(EBUSY, 'VFIO_IOMMU_ENABLE: the container is enabled already');
  /*
   * The worst case of locked memory, the whole window, is accounted at
   * once: the map/unmap paths are too hot to account page by page.
   */
  const npages = tceWindowPages(tbl);
  const locked = mm.locked_vm + npages;
  const rlim = task.rlimit(RLIMIT_MEMLOCK).cur;
  const lockLimit = Number(rlim >> BigInt(currentKernel().pageShift));
  if (locked > lockLimit && !capable(task, CAP_IPC_LOCK)) {
    pr_warn(`RLIMIT_MEMLOCK (${BigInt.asIntN(64, rlim)}) exceeded`);
    return fail(
      ENOMEM,
      `VFIO_IOMMU_ENABLE: locking the ${npages}-page window would exceed RLIMIT_MEMLOCK (${locked} > ${lockLimit} pages)`,
    );
  }
  mm.locked_vm += npages;
  container.enabled = true;
  return 0;
});

export const tceIommuDisable = traced('tce_iommu_disable', (container: TceContainerV41): void => {
  if (!container.enabled) return;
  container.enabled = false;
  const mm = current().mm;
  if (container.tbl === undefined || mm === null) return;
  mm.locked_vm -= tceWindowPages(container.tbl);
});

export const tceIommuOpen = traced(
  'tce_iommu_open',
  (arg: bigint): object | number => {
    if (arg !== BigInt(VFIO_SPAPR_TCE_IOMMU)) {
      pr_err('tce_vfio: Wrong IOMMU type');
      return -EINVAL;
    }
    currentKernel().objects.alloc('tce_container');
    return new TceContainerV41();
  },
  (arg) => `arg=${arg}`,
);

export const tceIommuRelease = traced('tce_iommu_release', (data: object): void => {
  const container = data as TceContainerV41;
  WARN_ON(
    container.tbl !== undefined && container.tbl.it_group === undefined,
    'tce_iommu_release: table without group',
  );
  tceIommuDisable(container);
  const g = container.tbl?.it_group;
  if (container.tbl !== undefined && g !== undefined) tceIommuDetachGroup(container, g);
  currentKernel().objects.free('tce_container');
});

/** tce_iommu_clear: clear `pages` entries from `entry`, releasing each page (dirty if the device could write) */
export const tceIommuClear = traced(
  'tce_iommu_clear',
  (_container: TceContainerV41, tbl: IommuTable, entry: number, pages: number): number => {
    for (; pages > 0; --pages, ++entry) {
      const oldtce = iommuClearTce(tbl, entry);
      if (oldtce === 0) continue;
      putPage(tceAddr(oldtce), (tcePerm(oldtce) & TCE_PCI_WRITE) !== 0);
    }
    return 0;
  },
  fmtClearArgs,
);

/**
 * tce_iommu_build: one TCE per IOMMU page, each pinning the host page it
 * falls in; on failure the entries built so far are cleared. A host page
 * smaller than the IOMMU page is -EPERM, and (as in the kernel) the page
 * just pinned is not released on that path.
 */
export const tceIommuBuild = traced(
  'tce_iommu_build',
  (container: TceContainerV41, tbl: IommuTable, entry: number, tce: number, pages: number): number => {
    const k = currentKernel();
    const mm = current().mm;
    const direction = iommuTceDirection(tce);
    const psize = k.pageSize;
    const iopsize = tbl.pageSize;
    let ret = 0;
    let i = 0;
    for (; i < pages; ++i) {
      const vaddr = tce - tcePerm(tce);
      /* offset = tce & IOMMU_PAGE_MASK(tbl) & ~PAGE_MASK */
      const offset = (vaddr % psize) - ((vaddr % psize) % iopsize);
      const page = mm === null ? -EFAULT : mm.pinPage(vaddr - (vaddr % psize), direction !== DMA_TO_DEVICE);
      if (page < 0) {
        ret = -EFAULT;
        break;
      }
      if (!tcePageIsContained(tbl.it_page_shift)) {
        ret = -EPERM;
        break;
      }
      const hva = page + offset;
      ret = iommuTceBuild(tbl, entry + i, hva, direction);
      if (ret !== 0) {
        putPage(page, false);
        prErrBuildFailed('tce_iommu_build', entry, iopsize, tce, ret);
        break;
      }
      tce += iopsize;
    }
    if (ret !== 0) tceIommuClear(container, tbl, entry, i);
    return ret;
  },
  fmtBuildArgs,
);

function getInfo(container: TceContainerV41, arg: bigint): number {
  const tbl = container.tbl;
  if (WARN_ON(tbl === undefined, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO without a table') || tbl === undefined)
    return fail(ENXIO, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO: no group is attached');
  const minsz = vfio_iommu_spapr_tce_info.offsetofend('dma32_window_size');
  const info = copyIoctlArg('VFIO_IOMMU_SPAPR_TCE_GET_INFO', vfio_iommu_spapr_tce_info, arg, minsz);
  if (typeof info === 'number') return info;
  const out = {
    argsz: info.argsz,
    flags: 0,
    /* u32 fields: the window is truncated as the kernel's assignment does */
    dma32_window_start: Number(tbl.windowStart & 0xffff_ffffn),
    dma32_window_size: Number(tbl.windowSize & 0xffff_ffffn),
  };
  if (!copyStructToUser(vfio_iommu_spapr_tce_info, arg, out, minsz)) return -EFAULT;
  return 0;
}

function mapDma(container: TceContainerV41, arg: bigint): number {
  const tbl = container.tbl;
  if (tbl === undefined) return fail(ENXIO, 'VFIO_IOMMU_MAP_DMA: no group is attached');
  if (tbl.it_group === undefined) currentKernel().bug('tce_iommu_ioctl: BUG_ON(!tbl->it_group)');
  const minsz = vfio_iommu_type1_dma_map.offsetofend('size');
  const param = copyIoctlArg(
    'VFIO_IOMMU_MAP_DMA',
    vfio_iommu_type1_dma_map,
    arg,
    minsz,
    VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
  );
  if (typeof param === 'number') return param;
  const aligned = checkMapAlignment(tbl, param.vaddr, param.size);
  if (aligned !== 0) return aligned;
  /* iova is checked by the IOMMU API */
  let tce = param.vaddr;
  if (param.flags & VFIO_DMA_MAP_FLAG_READ) tce |= BigInt(TCE_PCI_READ);
  if (param.flags & VFIO_DMA_MAP_FLAG_WRITE) tce |= BigInt(TCE_PCI_WRITE);
  const ret = iommuTcePutParamCheck(tbl, param.iova, tce);
  if (ret !== 0)
    return fail(
      -ret,
      `VFIO_IOMMU_MAP_DMA: iommu_tce_put_param_check refused iova 0x${param.iova.toString(16)} (no READ/WRITE, misaligned, or outside the ${tbl.windowStart.toString(16)}+${tbl.windowSize.toString(16)} window)`,
    );
  const r = tceIommuBuild(
    container,
    tbl,
    Number(param.iova >> BigInt(tbl.it_page_shift)),
    Number(tce),
    Number(param.size >> BigInt(tbl.it_page_shift)),
  );
  iommuFlushTce(tbl);
  return r;
}

function unmapDma(container: TceContainerV41, arg: bigint): number {
  const tbl = container.tbl;
  if (WARN_ON(tbl === undefined, 'VFIO_IOMMU_UNMAP_DMA without a table') || tbl === undefined)
    return fail(ENXIO, 'VFIO_IOMMU_UNMAP_DMA: no group is attached');
  const minsz = vfio_iommu_type1_dma_unmap.offsetofend('size');
  /* No flag is supported now */
  const param = copyIoctlArg('VFIO_IOMMU_UNMAP_DMA', vfio_iommu_type1_dma_unmap, arg, minsz, 0);
  if (typeof param === 'number') return param;
  const aligned = checkUnmapSize(tbl, param.size);
  if (aligned !== 0) return aligned;
  const npages = param.size >> BigInt(tbl.it_page_shift);
  const ret = iommuTceClearParamCheck(tbl, param.iova, 0n, npages);
  if (ret !== 0)
    return fail(
      -ret,
      `VFIO_IOMMU_UNMAP_DMA: iova 0x${param.iova.toString(16)} is misaligned or the range leaves the window`,
    );
  const r = tceIommuClear(container, tbl, Number(param.iova >> BigInt(tbl.it_page_shift)), Number(npages));
  iommuFlushTce(tbl);
  return r;
}

export const tceIommuIoctl = traced(
  'tce_iommu_ioctl',
  (data: object | null, cmd: number, arg: bigint): number => {
    const container = data as TceContainerV41 | null;
    switch (cmd) {
      case VFIO_CHECK_EXTENSION: {
        const ret =
          arg === BigInt(VFIO_SPAPR_TCE_IOMMU)
            ? 1
            : vfioSpaprIommuEehIoctl(undefined, cmd, arg, prof().eehInjectErr);
        return ret < 0 ? 0 : ret;
      }
    }
    if (container === null) return fail(ENOTTY, 'tce_iommu_ioctl: no container');
    switch (cmd) {
      case VFIO_IOMMU_SPAPR_TCE_GET_INFO:
        return getInfo(container, arg);
      case VFIO_IOMMU_MAP_DMA:
        return mapDma(container, arg);
      case VFIO_IOMMU_UNMAP_DMA:
        return unmapDma(container, arg);
      case VFIO_IOMMU_ENABLE: {
        container.lock.lock();
        const ret = tceIommuEnable(container);
        container.lock.unlock();
        return ret;
      }
      case VFIO_IOMMU_DISABLE:
        container.lock.lock();
        tceIommuDisable(container);
        container.lock.unlock();
        return 0;
      case VFIO_EEH_PE_OP: {
        const g = container.tbl?.it_group;
        if (g === undefined) return fail(ENODEV, 'VFIO_EEH_PE_OP: no group is attached');
        return vfioSpaprIommuEehIoctl(g, cmd, arg, prof().eehInjectErr);
      }
    }
    return fail(ENOTTY, `tce_iommu_ioctl: unknown ioctl 0x${cmd.toString(16)}`);
  },
  (_d, cmd, arg) => `cmd=0x${cmd.toString(16)} arg=0x${arg.toString(16)}`,
);

export const tceIommuAttachGroup = traced(
  'tce_iommu_attach_group',
  (data: object, iommuGroup: IommuGroup): number => {
    const container = data as TceContainerV41;
    const tbl = iommuGroupGetIommudata(iommuGroup) as IommuTable | undefined;
    if (tbl === undefined) currentKernel().bug('tce_iommu_attach_group: BUG_ON(!tbl)');
    let ret: number;
    container.lock.lock();
    if (container.tbl !== undefined) {
      const existing = container.tbl.it_group;
      pr_warn(
        `tce_vfio: Only one group per IOMMU container is allowed, existing id=${existing === undefined ? 0 : iommuGroupId(existing)}, attaching id=${iommuGroupId(iommuGroup)}`,
      );
      ret = -EBUSY;
    } else if (container.enabled) {
      pr_err(`tce_vfio: attaching group #${iommuGroupId(iommuGroup)} to enabled container`);
      ret = -EBUSY;
    } else {
      ret = iommuTakeOwnership(tbl as IommuTable);
      if (ret === 0) container.tbl = tbl;
    }
    container.lock.unlock();
    return ret;
  },
  (_d, g) => `group=${g.id}`,
);

export const tceIommuDetachGroup = traced(
  'tce_iommu_detach_group',
  (data: object, iommuGroup: IommuGroup): void => {
    const container = data as TceContainerV41;
    const tbl = iommuGroupGetIommudata(iommuGroup) as IommuTable | undefined;
    if (tbl === undefined) currentKernel().bug('tce_iommu_detach_group: BUG_ON(!tbl)');
    const t = tbl as IommuTable;
    container.lock.lock();
    if (t !== container.tbl) {
      pr_warn(
        `tce_vfio: detaching group #${iommuGroupId(iommuGroup)}, expected group is #${t.it_group === undefined ? 0 : iommuGroupId(t.it_group)}`,
      );
    } else {
      if (container.enabled) {
        pr_warn(
          `tce_vfio: detaching group #${t.it_group === undefined ? 0 : iommuGroupId(t.it_group)} from enabled container, forcing disable`,
        );
        tceIommuDisable(container);
      }
      container.tbl = undefined;
      tceIommuClear(container, t, t.it_offset, t.it_size);
      iommuReleaseOwnership(t);
    }
    container.lock.unlock();
  },
  (_d, g) => `group=${g.id}`,
);

export function tceIommuDriverOpsV41(): Omit<VfioIommuDriverOps, 'owner'> {
  return {
    name: 'iommu-vfio-powerpc',
    open: tceIommuOpen,
    release: tceIommuRelease,
    ioctl: tceIommuIoctl,
    attach_group: tceIommuAttachGroup,
    detach_group: tceIommuDetachGroup,
  };
}
