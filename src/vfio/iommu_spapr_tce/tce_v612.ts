import {
  accountLockedVm,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  type DmaDirection,
  IOMMU_PAGE_SHIFT_4K,
  IOMMU_TABLE_GROUP_MAX_TABLES,
  type IommuGroup,
  type IommuTable,
  IommuTableGroup,
  iommuFlushTce,
  iommuGroupGetIommudata,
  iommuGroupId,
  iommuTceClearParamCheck6,
  iommuTceKill,
  iommuTcePutParamCheck6,
  iommuTceTablePut,
  iommuTceXchgNoKill,
  type MmIommuTableGroupMem,
  mmIommuGet,
  mmIommuLookup,
  mmIommuMappedDec,
  mmIommuMappedInc,
  mmIommuNew,
  mmIommuPut,
  mmIommuUaToHpa,
  putPage,
  UserspaceView,
} from '../../iommu/index.ts';
import {
  current,
  currentKernel,
  fail,
  type MmStruct,
  Mutex,
  pr_debug,
  pr_err,
  pr_warn,
  traced,
  WARN,
  WARN_ON,
} from '../../kernel/index.ts';
import {
  EBUSY,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOENT,
  ENOSPC,
  ENOTTY,
  ENXIO,
  EPERM,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_EEH,
  VFIO_EEH_PE_OP,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_INFO_DDW,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
  VFIO_IOMMU_SPAPR_TCE_CREATE,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO,
  VFIO_IOMMU_SPAPR_TCE_REMOVE,
  VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_spapr_tce_create,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_spapr_tce_remove,
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
 * drivers/vfio/vfio_iommu_spapr_tce.c as of 6.12: the container holds
 * table groups (one for v1, several for v2), up to two DMA windows
 * (the default one created on first use, more with TCE_CREATE), and the
 * mm it is bound to, which all locked_vm accounting goes to. v2 maps only
 * into memory preregistered with REGISTER_MEMORY.
 */
export class TceContainerV612 {
  readonly lock = new Mutex('tce_container->lock');
  enabled = false;
  def_window_pending = false;
  locked_pages = 0;
  mm: MmStruct | null = null;
  readonly tables: (IommuTable | undefined)[] = new Array(IOMMU_TABLE_GROUP_MAX_TABLES).fill(undefined);
  /** list_add order: the newest group first */
  readonly group_list: IommuGroup[] = [];
  readonly prereg_list: MmIommuTableGroupMem[] = [];
  constructor(readonly v2: boolean) {}

  /** debugfs hook (src/debugfs/json.ts): the container, its groups and tables */
  debugSnapshot(): object {
    return {
      type: this.v2 ? 'tce_container (v2)' : 'tce_container',
      enabled: this.enabled,
      locked_pages: this.locked_pages,
      groups: this.group_list.map((g) => g.id),
      prereg: this.prereg_list.length,
      tables: this.tables.filter((t) => t !== undefined).map((t) => t.debugSnapshot()),
    };
  }
}

function tableGroupOf(grp: IommuGroup): IommuTableGroup | undefined {
  const tg = iommuGroupGetIommudata(grp);
  return tg instanceof IommuTableGroup ? tg : undefined;
}

function groupsAttached(c: TceContainerV612): boolean {
  return c.group_list.length > 0;
}

/** tce_iommu_mm_set: bind the container to the caller's mm, once */
function tceIommuMmSet(c: TceContainerV612): number {
  const mm = current().mm;
  if (c.mm !== null) {
    if (c.mm === mm) return 0;
    return fail(EPERM, 'tce_iommu_mm_set: the container belongs to another process (mm)');
  }
  if (mm === null) currentKernel().bug('tce_iommu_mm_set: BUG_ON(!current->mm)');
  c.mm = mm;
  return 0;
}

/* ---- memory preregistration ---- */

function tceIommuPreregFree(c: TceContainerV612, mem: MmIommuTableGroupMem): number {
  const ret = mmIommuPut(c.mm as MmStruct, mem);
  if (ret !== 0) return ret;
  c.prereg_list.splice(c.prereg_list.indexOf(mem), 1);
  currentKernel().objects.free('tce_iommu_prereg');
  return 0;
}

const tceIommuUnregisterPages = traced(
  'tce_iommu_unregister_pages',
  (c: TceContainerV612, vaddr: bigint, size: bigint): number => {
    const k = currentKernel();
    const pmask = BigInt(k.pageSize) - 1n;
    if ((vaddr & pmask) !== 0n || (size & pmask) !== 0n)
      return fail(EINVAL, 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: vaddr or size is not page aligned');
    const mm = c.mm as MmStruct;
    const mem = mmIommuGet(mm, Number(vaddr), Number(size >> BigInt(k.pageShift)));
    if (mem === undefined)
      return fail(
        ENOENT,
        'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: no region registered with this vaddr and size',
      );
    const found = c.prereg_list.includes(mem);
    const ret = found
      ? tceIommuPreregFree(c, mem)
      : fail(
          ENOENT,
          'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: the region was not registered through this container',
        );
    mmIommuPut(mm, mem);
    return ret;
  },
);

const tceIommuRegisterPages = traced(
  'tce_iommu_register_pages',
  (c: TceContainerV612, vaddr: bigint, size: bigint): number => {
    const k = currentKernel();
    const pmask = BigInt(k.pageSize) - 1n;
    if ((vaddr & pmask) !== 0n || (size & pmask) !== 0n || BigInt.asUintN(64, vaddr + size) < vaddr)
      return fail(
        EINVAL,
        'VFIO_IOMMU_SPAPR_REGISTER_MEMORY: vaddr or size is not page aligned, or the range wraps',
      );
    const mm = c.mm as MmStruct;
    const entries = Number(size >> BigInt(k.pageShift));
    let mem = mmIommuGet(mm, Number(vaddr), entries);
    if (mem !== undefined) {
      if (c.prereg_list.includes(mem)) {
        mmIommuPut(mm, mem);
        return fail(EBUSY, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY: this container registered the region already');
      }
    } else {
      const m = mmIommuNew(mm, Number(vaddr), entries);
      if (typeof m === 'number') {
        if (m < 0) return fail(-m, `VFIO_IOMMU_SPAPR_REGISTER_MEMORY: mm_iommu_new failed (${m})`);
        return m;
      }
      mem = m;
    }
    currentKernel().objects.alloc('tce_iommu_prereg');
    c.prereg_list.unshift(mem);
    c.enabled = true;
    return 0;
  },
);

/* ---- tables ---- */

/** tce_iommu_find_table: the window holding ioba */
function tceIommuFindTable(c: TceContainerV612, ioba: bigint): { num: number; tbl: IommuTable } | undefined {
  for (let i = 0; i < IOMMU_TABLE_GROUP_MAX_TABLES; i++) {
    const tbl = c.tables[i];
    if (tbl === undefined) continue;
    const entry = ioba >> BigInt(tbl.it_page_shift);
    if (BigInt(tbl.it_offset) <= entry && entry < BigInt(tbl.it_offset + tbl.it_size)) return { num: i, tbl };
  }
  return undefined;
}

function tceIommuUnusePage(hpa: number): void {
  putPage(hpa, false);
}

/** the region the previous page was found in: regions do not overlap, so it is the one mm_iommu_lookup finds */
interface MemCache {
  mem: MmIommuTableGroupMem | undefined;
  end: number;
}

function tceIommuPreregUaToHpa(c: TceContainerV612, ua: number, shift: number, cache: MemCache): number {
  const size = 2 ** shift;
  let mem = cache.mem;
  if (mem === undefined || ua < mem.ua || ua + size > cache.end) {
    mem = mmIommuLookup(c.mm as MmStruct, ua, size);
    cache.mem = mem;
    if (mem === undefined) return -EINVAL;
    cache.end = mem.ua + mem.entries * mem.pageSize;
  }
  const hpa = mmIommuUaToHpa(mem, ua, shift);
  return hpa < 0 ? -EINVAL : hpa;
}

function tceIommuUnusePageV2(c: TceContainerV612, tbl: IommuTable, entry: number, cache: MemCache): void {
  const us = tbl.it_userspace;
  if (us === undefined) return;
  const i = entry - tbl.it_offset;
  const ua = us.get(i);
  const r = tceIommuPreregUaToHpa(c, ua, tbl.it_page_shift, cache);
  if (r < 0)
    pr_debug(
      `tce_iommu_unuse_page_v2: tce ${ua.toString(16)} at #${entry.toString(16)} was not cached, ret=${r}`,
    );
  if (cache.mem !== undefined && r >= 0) mmIommuMappedDec(cache.mem);
  us.set(i, 0);
}

const tceIommuClear = traced(
  'tce_iommu_clear',
  (c: TceContainerV612, tbl: IommuTable, entry: number, pages: number): number => {
    const first = entry;
    const last = entry + pages;
    const cache: MemCache = { mem: undefined, end: 0 };
    for (; entry < last; ++entry) {
      /* an empty entry exchanges to DMA_NONE; what was never populated is skipped (the multi-level shortcut) */
      if (tbl.perm(entry) === 0) {
        if (!tbl.populated(entry)) entry = tbl.nextPopulated(entry) - 1;
        continue;
      }
      const old = iommuTceXchgNoKill(c.mm, tbl, entry, 0, DMA_NONE);
      if (old.direction === DMA_NONE) continue;
      if (c.v2) {
        tceIommuUnusePageV2(c, tbl, entry, cache);
        continue;
      }
      tceIommuUnusePage(old.hpa);
    }
    iommuTceKill(tbl, first, pages);
    return 0;
  },
  fmtClearArgs,
);

/** tce_iommu_build (v1): pin each page (always for write: the direction is taken from the bare vaddr) */
const tceIommuBuild = traced(
  'tce_iommu_build',
  (
    c: TceContainerV612,
    tbl: IommuTable,
    entry: number,
    tce: number,
    pages: number,
    direction: DmaDirection,
  ): number => {
    const k = currentKernel();
    const mm = current().mm;
    const psize = k.pageSize;
    const iopsize = tbl.pageSize;
    let ret = 0;
    let i = 0;
    for (; i < pages; ++i) {
      const offset = (tce % psize) - ((tce % psize) % iopsize);
      /* tce_iommu_use_page: iommu_tce_direction(vaddr) is DMA_NONE, so FOLL_WRITE */
      const page = mm === null ? -EFAULT : mm.pinPage(tce - (tce % psize), true);
      if (page < 0) {
        ret = -EFAULT;
        break;
      }
      if (!tcePageIsContained(tbl.it_page_shift)) {
        ret = -EPERM;
        break;
      }
      const hpa = page + offset;
      if (!tbl.contains(entry + i)) {
        /* the kernel would write past the end of the TCE table */
        ret = -EINVAL;
        tceIommuUnusePage(hpa);
        prErrBuildFailed('tce_iommu_build', entry, iopsize, tce, ret);
        break;
      }
      const old = iommuTceXchgNoKill(c.mm, tbl, entry + i, hpa, direction);
      if (old.direction !== DMA_NONE) tceIommuUnusePage(old.hpa);
      tce += iopsize;
    }
    if (ret !== 0) tceIommuClear(c, tbl, entry, i);
    else iommuTceKill(tbl, entry, pages);
    return ret;
  },
  fmtBuildArgs,
);

/** tce_iommu_build_v2: TCEs into preregistered memory, no pinning */
const tceIommuBuildV2 = traced(
  'tce_iommu_build_v2',
  (
    c: TceContainerV612,
    tbl: IommuTable,
    entry: number,
    tce: number,
    pages: number,
    direction: DmaDirection,
  ): number => {
    const iopsize = tbl.pageSize;
    const us = tbl.it_userspace ?? new UserspaceView(tbl.it_size);
    tbl.it_userspace = us;
    const cache: MemCache = { mem: undefined, end: 0 };
    let ret = 0;
    let i = 0;
    for (; i < pages; ++i) {
      const hpa = tceIommuPreregUaToHpa(c, tce, tbl.it_page_shift, cache);
      if (hpa < 0) {
        ret = hpa;
        break;
      }
      const mem = cache.mem as MmIommuTableGroupMem;
      if (!tcePageIsContained(tbl.it_page_shift)) {
        ret = -EPERM;
        break;
      }
      /* The registered region is being unregistered */
      if (mmIommuMappedInc(mem) !== 0) break;
      if (!tbl.contains(entry + i)) {
        ret = -EINVAL;
        mmIommuMappedDec(mem);
        prErrBuildFailed('tce_iommu_build_v2', entry, iopsize, tce, ret);
        break;
      }
      const old = iommuTceXchgNoKill(c.mm, tbl, entry + i, hpa, direction);
      if (old.direction !== DMA_NONE) tceIommuUnusePageV2(c, tbl, entry + i, cache);
      us.set(entry + i - tbl.it_offset, tce);
      tce += iopsize;
    }
    if (ret !== 0) tceIommuClear(c, tbl, entry, i);
    else iommuTceKill(tbl, entry, pages);
    return ret;
  },
  fmtBuildArgs,
);

function tceIommuCreateTable(
  c: TceContainerV612,
  tg: IommuTableGroup,
  num: number,
  pageShift: number,
  windowSize: bigint,
  levels: number,
): IommuTable | number {
  const k = currentKernel();
  const tableSize = tg.ops.get_table_size(pageShift, windowSize, levels);
  if (tableSize === 0)
    return fail(
      EINVAL,
      `TCE table: no ${levels}-level table of 2^${pageShift} pages spans 0x${windowSize.toString(16)} bytes`,
    );
  if (prof().chargeTableMemory) {
    const ret = accountLockedVm(c.mm, Math.floor(tableSize / k.pageSize), true);
    if (ret !== 0) return fail(-ret, `TCE table: ${tableSize} bytes of table would exceed RLIMIT_MEMLOCK`);
  }
  /* a failed create_table leaves the charge in place, as the kernel does */
  const tbl = tg.ops.create_table(tg, num, pageShift, windowSize, levels);
  if (typeof tbl === 'number')
    return fail(-tbl, `TCE table: the platform could not create the table (${tbl})`);
  WARN_ON(tbl.it_allocated_size > tableSize, 'tce_iommu_create_table: it_allocated_size > table_size');
  return tbl;
}

function tceIommuFreeTable(c: TceContainerV612, tbl: IommuTable): void {
  const k = currentKernel();
  const pages = Math.floor(tbl.it_allocated_size / k.pageSize);
  iommuTceTablePut(tbl);
  accountLockedVm(c.mm, pages, false);
}

const tceIommuCreateWindow = traced(
  'tce_iommu_create_window',
  (
    c: TceContainerV612,
    pageShift: number,
    windowSize: bigint,
    levels: number,
  ): { start: bigint } | number => {
    const num = c.tables.indexOf(undefined);
    if (num < 0) return fail(ENOSPC, 'TCE window: both windows of the container are in use');
    /* Get the first group for ops::create_table */
    const first = c.group_list[0];
    const tg = first === undefined ? undefined : tableGroupOf(first);
    if (tg === undefined) return -EFAULT;
    if (pageShift >= 64 || (BigInt(tg.pgsizes) & (1n << BigInt(pageShift))) === 0n)
      return fail(
        EINVAL,
        `TCE window: page shift ${pageShift} is not among the PE's page sizes (0x${tg.pgsizes.toString(16)})`,
      );
    const tbl = tceIommuCreateTable(c, tg, num, pageShift, windowSize, levels);
    if (typeof tbl === 'number') return tbl;
    /* Program the table to every group */
    for (const g of c.group_list) {
      const gtg = tableGroupOf(g) as IommuTableGroup;
      const ret = gtg.ops.set_window(gtg, num, tbl);
      if (ret !== 0) {
        for (const g2 of c.group_list) {
          const t2 = tableGroupOf(g2) as IommuTableGroup;
          t2.ops.unset_window(t2, num);
        }
        tceIommuFreeTable(c, tbl);
        return ret;
      }
    }
    c.tables[num] = tbl;
    /* Return start address assigned by platform in create_table() */
    return { start: tbl.windowStart };
  },
);

const tceIommuRemoveWindow = traced(
  'tce_iommu_remove_window',
  (c: TceContainerV612, startAddr: bigint): number => {
    const found = tceIommuFindTable(c, startAddr);
    if (found === undefined)
      return fail(EINVAL, `VFIO_IOMMU_SPAPR_TCE_REMOVE: no window at 0x${startAddr.toString(16)}`);
    const { num, tbl } = found;
    tceIommuClear(c, tbl, tbl.it_offset, tbl.it_size);
    /* Detach groups from IOMMUs */
    for (const g of c.group_list) {
      const tg = tableGroupOf(g) as IommuTableGroup;
      tg.ops.unset_window(tg, num);
    }
    tceIommuFreeTable(c, tbl);
    c.tables[num] = undefined;
    return 0;
  },
);

const tceIommuCreateDefaultWindow = traced(
  'tce_iommu_create_default_window',
  (c: TceContainerV612): number => {
    if (!c.def_window_pending) return 0;
    const first = c.group_list[0];
    if (first === undefined) return fail(ENODEV, 'default TCE window: no group is attached');
    const tg = tableGroupOf(first);
    if (tg === undefined) return fail(ENODEV, 'default TCE window: the group has no table group');
    const r = tceIommuCreateWindow(c, IOMMU_PAGE_SHIFT_4K, BigInt(tg.tce32_size), 1);
    if (typeof r === 'number') return r;
    WARN(r.start !== 0n, 'WARN_ON_ONCE(!ret && start_addr): the default window does not start at 0');
    c.def_window_pending = false;
    return 0;
  },
);

/* ---- enable / disable, open / release ---- */

const tceIommuEnable = traced('tce_iommu_enable', (c: TceContainerV612): number => {
  if (c.enabled) return fail(EBUSY, 'VFIO_IOMMU_ENABLE: the container is enabled already');
  /*
   * The whole 32-bit window is accounted at once; a container with no
   * group cannot tell how much that is.
   */
  const first = c.group_list[0];
  if (first === undefined) return fail(prof().enableNoGroupErrno, 'VFIO_IOMMU_ENABLE: no group is attached');
  const tg = tableGroupOf(first);
  if (tg === undefined) return fail(ENODEV, 'VFIO_IOMMU_ENABLE: the group has no table group');
  if (tg.tce32_size === 0) return fail(EPERM, 'VFIO_IOMMU_ENABLE: the PE has no 32-bit DMA window');
  let ret = tceIommuMmSet(c);
  if (ret !== 0) return ret;
  const locked = Math.floor(tg.tce32_size / currentKernel().pageSize);
  ret = accountLockedVm(c.mm, locked, true);
  if (ret !== 0)
    return fail(-ret, `VFIO_IOMMU_ENABLE: locking the ${locked}-page window would exceed RLIMIT_MEMLOCK`);
  c.locked_pages = locked;
  c.enabled = true;
  return 0;
});

const tceIommuDisable = traced('tce_iommu_disable', (c: TceContainerV612): void => {
  if (!c.enabled) return;
  c.enabled = false;
  if (c.mm === null) currentKernel().bug('tce_iommu_disable: BUG_ON(!container->mm)');
  accountLockedVm(c.mm, c.locked_pages, false);
});

const tceIommuOpen = traced(
  'tce_iommu_open',
  (arg: bigint): object | number => {
    if (arg !== BigInt(VFIO_SPAPR_TCE_IOMMU) && !(prof().v2 && arg === BigInt(VFIO_SPAPR_TCE_v2_IOMMU))) {
      pr_err('tce_vfio: Wrong IOMMU type');
      return -EINVAL;
    }
    currentKernel().objects.alloc('tce_container');
    return new TceContainerV612(arg === BigInt(VFIO_SPAPR_TCE_v2_IOMMU));
  },
  (arg) => `arg=${arg}`,
);

const tceIommuRelease = traced('tce_iommu_release', (data: object): void => {
  const c = data as TceContainerV612;
  while (groupsAttached(c)) tceIommuDetachGroup(c, c.group_list[0] as IommuGroup);
  /* If VFIO created a table, it was not disposed by tce_iommu_detach_group() so do it now */
  for (let i = 0; i < IOMMU_TABLE_GROUP_MAX_TABLES; i++) {
    const tbl = c.tables[i];
    if (tbl === undefined) continue;
    tceIommuFreeTable(c, tbl);
  }
  for (const mem of [...c.prereg_list]) WARN_ON(tceIommuPreregFree(c, mem) !== 0, 'tce_iommu_prereg_free');
  tceIommuDisable(c);
  currentKernel().objects.free('tce_container');
});

/* ---- ioctls ---- */

function getInfo(c: TceContainerV612, arg: bigint): number {
  const first = c.group_list[0];
  if (first === undefined) return fail(ENXIO, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO: no group is attached');
  const tg = tableGroupOf(first);
  if (tg === undefined) return fail(ENXIO, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO: the group has no table group');
  let minsz = vfio_iommu_spapr_tce_info.offsetofend('dma32_window_size');
  const info = copyIoctlArg('VFIO_IOMMU_SPAPR_TCE_GET_INFO', vfio_iommu_spapr_tce_info, arg, minsz);
  if (typeof info === 'number') return info;
  const out = {
    argsz: info.argsz,
    flags: 0,
    dma32_window_start: tg.tce32_start >>> 0,
    dma32_window_size: tg.tce32_size >>> 0,
    ddw_pgsizes: 0n,
    ddw_max_dynamic_windows_supported: 0,
    ddw_levels: 0,
  };
  if (prof().getInfoDdw && tg.max_dynamic_windows_supported !== 0 && c.v2) {
    out.flags |= VFIO_IOMMU_SPAPR_INFO_DDW;
    out.ddw_pgsizes = BigInt(tg.pgsizes);
    out.ddw_max_dynamic_windows_supported = tg.max_dynamic_windows_supported;
    out.ddw_levels = tg.max_levels;
  }
  const ddwsz = vfio_iommu_spapr_tce_info.offsetofend('ddw_levels');
  if (info.argsz >= ddwsz) minsz = ddwsz;
  if (!copyStructToUser(vfio_iommu_spapr_tce_info, arg, out, minsz)) return -EFAULT;
  return 0;
}

/** MAP/UNMAP: create the default window if it is pending, then the window holding iova (-ENXIO if none) */
function windowFor(c: TceContainerV612, ioctl: string, iova: bigint): IommuTable | number {
  const ret = tceIommuCreateDefaultWindow(c);
  if (ret !== 0) return ret;
  const found = tceIommuFindTable(c, iova);
  if (found === undefined) return fail(ENXIO, `${ioctl}: no DMA window holds iova 0x${iova.toString(16)}`);
  return found.tbl;
}

/**
 * iommu_tce_{put,clear}_param_check failed: the 6.x macro evaluates to 1,
 * which the profile either returns as is or reads as -EINVAL.
 */
function paramCheckFailed(ioctl: string, iova: bigint, ret: number): number {
  currentKernel().logReason(
    EINVAL,
    `${ioctl}: iova 0x${iova.toString(16)} is not IOMMU-page aligned (the check macro evaluates to 1)`,
  );
  return prof().paramCheckFailure === 'one' ? ret : -EINVAL;
}

function mapDma(c: TceContainerV612, arg: bigint): number {
  if (prof().mapRequiresEnable && !c.enabled)
    return fail(
      EPERM,
      `VFIO_IOMMU_MAP_DMA: the container is not enabled (${c.v2 ? 'REGISTER_MEMORY' : 'VFIO_IOMMU_ENABLE'} first)`,
    );
  const minsz = vfio_iommu_type1_dma_map.offsetofend('size');
  const param = copyIoctlArg(
    'VFIO_IOMMU_MAP_DMA',
    vfio_iommu_type1_dma_map,
    arg,
    minsz,
    VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
  );
  if (typeof param === 'number') return param;
  const tbl = windowFor(c, 'VFIO_IOMMU_MAP_DMA', param.iova);
  if (typeof tbl === 'number') return tbl;
  const aligned = checkMapAlignment(tbl, param.vaddr, param.size);
  if (aligned !== 0) return aligned;
  /* iova is checked by the IOMMU API */
  let direction: DmaDirection;
  if (param.flags & VFIO_DMA_MAP_FLAG_READ)
    direction = param.flags & VFIO_DMA_MAP_FLAG_WRITE ? DMA_BIDIRECTIONAL : DMA_TO_DEVICE;
  else if (param.flags & VFIO_DMA_MAP_FLAG_WRITE) direction = DMA_FROM_DEVICE;
  else return fail(EINVAL, 'VFIO_IOMMU_MAP_DMA: neither READ nor WRITE requested');
  let ret = iommuTcePutParamCheck6(tbl, param.iova, param.vaddr);
  if (ret !== 0) return paramCheckFailed('VFIO_IOMMU_MAP_DMA', param.iova, ret);
  const entry = Number(param.iova >> BigInt(tbl.it_page_shift));
  const pages = Number(param.size >> BigInt(tbl.it_page_shift));
  const vaddr = Number(param.vaddr);
  ret = c.v2
    ? tceIommuBuildV2(c, tbl, entry, vaddr, pages, direction)
    : tceIommuBuild(c, tbl, entry, vaddr, pages, direction);
  iommuFlushTce(tbl);
  return ret;
}

function unmapDma(c: TceContainerV612, arg: bigint): number {
  if (prof().mapRequiresEnable && !c.enabled)
    return fail(EPERM, 'VFIO_IOMMU_UNMAP_DMA: the container is not enabled');
  const minsz = vfio_iommu_type1_dma_unmap.offsetofend('size');
  /* No flag is supported now */
  const param = copyIoctlArg('VFIO_IOMMU_UNMAP_DMA', vfio_iommu_type1_dma_unmap, arg, minsz, 0);
  if (typeof param === 'number') return param;
  const tbl = windowFor(c, 'VFIO_IOMMU_UNMAP_DMA', param.iova);
  if (typeof tbl === 'number') return tbl;
  const aligned = checkUnmapSize(tbl, param.size);
  if (aligned !== 0) return aligned;
  const npages = param.size >> BigInt(tbl.it_page_shift);
  let ret = iommuTceClearParamCheck6(tbl, param.iova, 0n, Number(npages));
  if (ret !== 0) return paramCheckFailed('VFIO_IOMMU_UNMAP_DMA', param.iova, ret);
  /* only the first page was checked: the clear stops at the end of the table */
  const entry = Number(param.iova >> BigInt(tbl.it_page_shift));
  const pages = Math.min(Number(npages), tbl.it_offset + tbl.it_size - entry);
  ret = tceIommuClear(c, tbl, entry, pages);
  iommuFlushTce(tbl);
  return ret;
}

function registerMemory(c: TceContainerV612, arg: bigint): number {
  const minsz = vfio_iommu_spapr_register_memory.offsetofend('size');
  let ret = tceIommuMmSet(c);
  if (ret !== 0) return ret;
  /* No flag is supported now */
  const param = copyIoctlArg(
    'VFIO_IOMMU_SPAPR_REGISTER_MEMORY',
    vfio_iommu_spapr_register_memory,
    arg,
    minsz,
    0,
  );
  if (typeof param === 'number') return param;
  c.lock.lock();
  ret = tceIommuRegisterPages(c, param.vaddr, param.size);
  c.lock.unlock();
  return ret;
}

function unregisterMemory(c: TceContainerV612, arg: bigint): number {
  if (c.mm === null) return fail(EPERM, 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: nothing was registered (no mm)');
  const minsz = vfio_iommu_spapr_register_memory.offsetofend('size');
  const param = copyIoctlArg(
    'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY',
    vfio_iommu_spapr_register_memory,
    arg,
    minsz,
    0,
  );
  if (typeof param === 'number') return param;
  c.lock.lock();
  const ret = tceIommuUnregisterPages(c, param.vaddr, param.size);
  c.lock.unlock();
  return ret;
}

function tceCreate(c: TceContainerV612, arg: bigint): number {
  let ret = tceIommuMmSet(c);
  if (ret !== 0) return ret;
  if (!groupsAttached(c)) return fail(ENXIO, 'VFIO_IOMMU_SPAPR_TCE_CREATE: no group is attached');
  const minsz = vfio_iommu_spapr_tce_create.offsetofend('start_addr');
  const create = copyIoctlArg('VFIO_IOMMU_SPAPR_TCE_CREATE', vfio_iommu_spapr_tce_create, arg, minsz, 0);
  if (typeof create === 'number') return create;
  c.lock.lock();
  ret = tceIommuCreateDefaultWindow(c);
  let start = 0n;
  if (ret === 0) {
    const r = tceIommuCreateWindow(c, create.page_shift, create.window_size, create.levels);
    if (typeof r === 'number') ret = r;
    else start = r.start;
  }
  c.lock.unlock();
  if (
    ret === 0 &&
    !copyStructToUser(vfio_iommu_spapr_tce_create, arg, { ...create, start_addr: start }, minsz)
  )
    ret = -EFAULT;
  return ret;
}

function tceRemove(c: TceContainerV612, arg: bigint): number {
  let ret = tceIommuMmSet(c);
  if (ret !== 0) return ret;
  if (!groupsAttached(c)) return fail(ENXIO, 'VFIO_IOMMU_SPAPR_TCE_REMOVE: no group is attached');
  const minsz = vfio_iommu_spapr_tce_remove.offsetofend('start_addr');
  const remove = copyIoctlArg('VFIO_IOMMU_SPAPR_TCE_REMOVE', vfio_iommu_spapr_tce_remove, arg, minsz, 0);
  if (typeof remove === 'number') return remove;
  if (c.def_window_pending && remove.start_addr === 0n) {
    c.def_window_pending = false;
    return 0;
  }
  c.lock.lock();
  ret = tceIommuRemoveWindow(c, remove.start_addr);
  c.lock.unlock();
  return ret;
}

const tceIommuIoctl = traced(
  'tce_iommu_ioctl',
  (data: object | null, cmd: number, arg: bigint): number => {
    if (cmd === VFIO_CHECK_EXTENSION) {
      if (arg === BigInt(VFIO_SPAPR_TCE_IOMMU) || (prof().v2 && arg === BigInt(VFIO_SPAPR_TCE_v2_IOMMU)))
        return 1;
      if (arg === BigInt(VFIO_EEH)) return vfioSpaprIommuEehIoctl(undefined, cmd, arg, prof().eehInjectErr);
      return 0;
    }
    const c = data as TceContainerV612 | null;
    if (c === null) return currentKernel().bug('tce_iommu_ioctl: BUG_ON(!container)');
    /* Sanity check to prevent one userspace from manipulating another userspace mm */
    if (prof().foreignMmEperm && c.mm !== null && c.mm !== current().mm)
      return fail(EPERM, 'tce_iommu_ioctl: the container belongs to another process (mm)');
    switch (cmd) {
      case VFIO_IOMMU_SPAPR_TCE_GET_INFO:
        return getInfo(c, arg);
      case VFIO_IOMMU_MAP_DMA:
        return mapDma(c, arg);
      case VFIO_IOMMU_UNMAP_DMA:
        return unmapDma(c, arg);
      case VFIO_IOMMU_SPAPR_REGISTER_MEMORY:
        if (!c.v2) break;
        return registerMemory(c, arg);
      case VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY:
        if (!c.v2) break;
        return unregisterMemory(c, arg);
      case VFIO_IOMMU_ENABLE: {
        if (c.v2) break;
        c.lock.lock();
        const ret = tceIommuEnable(c);
        c.lock.unlock();
        return ret;
      }
      case VFIO_IOMMU_DISABLE:
        if (c.v2) break;
        c.lock.lock();
        tceIommuDisable(c);
        c.lock.unlock();
        return 0;
      case VFIO_EEH_PE_OP: {
        let ret = 0;
        for (const g of c.group_list) {
          ret = vfioSpaprIommuEehIoctl(g, cmd, arg, prof().eehInjectErr);
          if (ret !== 0) return ret;
        }
        return ret;
      }
      case VFIO_IOMMU_SPAPR_TCE_CREATE:
        if (!c.v2) break;
        return tceCreate(c, arg);
      case VFIO_IOMMU_SPAPR_TCE_REMOVE:
        if (!c.v2) break;
        return tceRemove(c, arg);
    }
    return fail(
      ENOTTY,
      `tce_iommu_ioctl: ioctl 0x${cmd.toString(16)} is not handled by a ${c.v2 ? 'v2' : 'v1'} container`,
    );
  },
  (_d, cmd, arg) => `cmd=0x${cmd.toString(16)} arg=0x${arg.toString(16)}`,
);

/* ---- groups ---- */

function tceIommuReleaseOwnership(c: TceContainerV612, tg: IommuTableGroup): void {
  for (let i = 0; i < IOMMU_TABLE_GROUP_MAX_TABLES; i++) {
    const tbl = c.tables[i];
    if (tbl === undefined) continue;
    tceIommuClear(c, tbl, tbl.it_offset, tbl.it_size);
    tg.ops.unset_window(tg, i);
  }
}

function tceIommuTakeOwnership(c: TceContainerV612, tg: IommuTableGroup): number {
  /* Set all windows to the new group */
  for (let i = 0; i < IOMMU_TABLE_GROUP_MAX_TABLES; i++) {
    const tbl = c.tables[i];
    if (tbl === undefined) continue;
    const ret = tg.ops.set_window(tg, i, tbl);
    if (ret !== 0) {
      for (let j = 0; j < IOMMU_TABLE_GROUP_MAX_TABLES; j++) tg.ops.unset_window(tg, j);
      return ret;
    }
  }
  return 0;
}

/**
 * The platform side of DMA ownership: 6.12 takes the PE from the host
 * when VFIO_GROUP_SET_CONTAINER claims the group (the blocking domain's
 * attach) and gives it back when the claim is released. The model's
 * IOMMU core has no platform hook, so the driver does it here, right
 * before its own attach and right after its own detach; the PE's
 * translation stays the group's domain throughout.
 */
function platformTakeOwnership(grp: IommuGroup, tg: IommuTableGroup): number {
  const ret = tg.ops.take_ownership(tg);
  if (ret === 0 && grp.default_domain !== undefined) grp.domain = grp.default_domain;
  return ret;
}

/** the body of tce_iommu_attach_group under container->lock (its "goto unlock_exit" paths return) */
function tceIommuAttachGroupLocked(
  c: TceContainerV612,
  iommuGroup: IommuGroup,
  tg: IommuTableGroup | undefined,
): number {
  const id = iommuGroupId(iommuGroup);
  if (tg === undefined) return fail(ENODEV, `tce_iommu_attach_group: group ${id} has no table group`);
  /* v2 requires full support of dynamic DMA windows */
  if (c.v2 && tg.max_dynamic_windows_supported === 0)
    return fail(EINVAL, `tce_iommu_attach_group: group ${id} has no dynamic DMA windows (v2 needs them)`);
  /* v1 reuses TCE tables and does not share them among PEs */
  if (!c.v2 && groupsAttached(c))
    return fail(
      EBUSY,
      `tce_iommu_attach_group: a v1 container takes one group (group ${iommuGroupId(c.group_list[0] as IommuGroup)} is attached)`,
    );
  /* Check if new group has the same iommu_table_group_ops (i.e. compatible) */
  for (const g of c.group_list) {
    if (g === iommuGroup) {
      pr_warn(`tce_vfio: Group ${id} is already attached`);
      return -EBUSY;
    }
    const tmp = tableGroupOf(g) as IommuTableGroup;
    if (tmp.ops.create_table !== tg.ops.create_table) {
      pr_warn(`tce_vfio: Group ${id} is incompatible with group ${iommuGroupId(g)}`);
      return -EPERM;
    }
  }
  const ret = tceIommuTakeOwnership(c, tg);
  if (!groupsAttached(c) && c.tables[0] === undefined) c.def_window_pending = true;
  if (ret === 0) {
    currentKernel().objects.alloc('tce_iommu_group');
    c.group_list.unshift(iommuGroup);
  }
  return ret;
}

const tceIommuAttachGroup = traced(
  'tce_iommu_attach_group',
  (data: object, iommuGroup: IommuGroup): number => {
    const c = data as TceContainerV612;
    const tg = tableGroupOf(iommuGroup);
    const claimed = tg !== undefined && !c.group_list.includes(iommuGroup);
    if (claimed) {
      const r = platformTakeOwnership(iommuGroup, tg);
      if (r !== 0) return r;
    }
    c.lock.lock();
    const ret = tceIommuAttachGroupLocked(c, iommuGroup, tg);
    c.lock.unlock();
    /* the claim is released when the attach fails (vfio_group_set_container's error path) */
    if (ret !== 0 && claimed) tg.ops.release_ownership(tg);
    return ret;
  },
  (_d, g) => `group=${g.id}`,
);

const tceIommuDetachGroup = traced(
  'tce_iommu_detach_group',
  (data: object, iommuGroup: IommuGroup): void => {
    const c = data as TceContainerV612;
    c.lock.lock();
    const i = c.group_list.indexOf(iommuGroup);
    if (i < 0) {
      pr_warn(`tce_vfio: detaching unattached group #${iommuGroupId(iommuGroup)}`);
      c.lock.unlock();
      return;
    }
    c.group_list.splice(i, 1);
    currentKernel().objects.free('tce_iommu_group');
    const tg = tableGroupOf(iommuGroup);
    if (tg === undefined) currentKernel().bug('tce_iommu_detach_group: BUG_ON(!table_group)');
    const t = tg as IommuTableGroup;
    tceIommuReleaseOwnership(c, t);
    c.lock.unlock();
    /* what iommu_group_release_dma_owner does next: the PE goes back to the host */
    t.ops.release_ownership(t);
  },
  (_d, g) => `group=${g.id}`,
);

export function tceIommuDriverOpsV612(): Omit<VfioIommuDriverOps, 'owner'> {
  return {
    name: 'iommu-vfio-powerpc',
    open: tceIommuOpen,
    release: tceIommuRelease,
    ioctl: tceIommuIoctl,
    attach_group: tceIommuAttachGroup,
    detach_group: tceIommuDetachGroup,
  };
}
