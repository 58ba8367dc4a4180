import { capable, current, currentKernel, type MmStruct, pr_debug, WARN_ON } from '../../kernel/index.ts';
import {
  CAP_IPC_LOCK,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  ENXIO,
  RLIMIT_MEMLOCK,
} from '../../uapi/index.ts';
import { putPage } from './page.ts';

/*
 * Memory preregistration (arch/powerpc/mm/book3s64/iommu_api.c): a VMM
 * pins its guest RAM once, per mm, and later maps TCEs into it without
 * pinning again. The regions hang off the mm (mm->context.
 * iommu_group_mem_list), charged to its locked_vm.
 */
export class MmIommuTableGroupMem {
  /** users: registrations (one per container that registered it) */
  used = 1;
  /** 1 + the TCEs pointing into the region; 0 once the last put started releasing it */
  mapped = 1;
  /** the host physical address of each pinned page */
  readonly hpas: Float64Array;
  constructor(
    readonly ua: number,
    readonly entries: number,
    /** the largest IOMMU page the region can back */
    public pageshift: number,
    /** PAGE_SIZE of the mm */
    readonly pageSize: number,
  ) {
    this.hpas = new Float64Array(entries);
  }
}

const lists = new WeakMap<MmStruct, MmIommuTableGroupMem[]>();

function memList(mm: MmStruct): MmIommuTableGroupMem[] {
  let l = lists.get(mm);
  if (l === undefined) {
    l = [];
    lists.set(mm, l);
  }
  return l;
}

/** the registered regions of mm, newest first */
export function mmIommuRegions(mm: MmStruct): readonly MmIommuTableGroupMem[] {
  return lists.get(mm) ?? [];
}

/**
 * account_locked_vm (mm/util.c): charge or uncharge pages to mm, checked
 * against the caller's RLIMIT_MEMLOCK unless it has CAP_IPC_LOCK.
 */
export function accountLockedVm(mm: MmStruct | null, pages: number, inc: boolean): number {
  if (pages === 0 || mm === null) return 0;
  const task = current();
  const k = currentKernel();
  let ret = 0;
  const lockedVm = mm.locked_vm;
  if (inc) {
    if (!capable(task, CAP_IPC_LOCK)) {
      const limit = Number(task.rlimit(RLIMIT_MEMLOCK).cur >> BigInt(k.pageShift));
      if (lockedVm + pages > limit) ret = -ENOMEM;
    }
    if (ret === 0) mm.locked_vm = lockedVm + pages;
  } else {
    WARN_ON(pages > lockedVm, 'account_locked_vm: uncharging more than is charged');
    /* unsigned long arithmetic wraps in the kernel; the model keeps the (negative) difference */
    mm.locked_vm = lockedVm - pages;
  }
  pr_debug(
    `__account_locked_vm: [${task.pid}] ${inc ? '+' : '-'}${pages * k.pageSize} ${lockedVm * k.pageSize}/${task.rlimit(RLIMIT_MEMLOCK).cur}${ret !== 0 ? ' - exceeded' : ''}`,
  );
  return ret;
}

function ffs(v: number): number {
  if (v === 0) return 64;
  let n = 0;
  while (v % 2 === 0) {
    v /= 2;
    n++;
  }
  return n;
}

/**
 * mm_iommu_new (mm_iommu_do_alloc): charge, pin every page writable and
 * long-term, refuse an overlap with a registered region. A partial pin
 * returns how many pages the last attempt pinned, as the kernel does.
 */
export function mmIommuNew(mm: MmStruct, ua: number, entries: number): MmIommuTableGroupMem | number {
  const k = currentKernel();
  const shift = k.pageShift;
  let ret = accountLockedVm(mm, entries, true);
  if (ret !== 0) return ret;
  const mem = new MmIommuTableGroupMem(
    ua,
    entries,
    Math.min(ffs(ua), ffs(entries * k.pageSize), 63),
    k.pageSize,
  );
  k.objects.alloc('mm_iommu_table_group_mem_t');
  let pinned = 0;
  ret = 0;
  for (let i = 0; i < entries; i++) {
    const phys = mm.pinPage(ua + i * k.pageSize, true);
    if (phys < 0) {
      ret = pinned > 0 ? pinned : phys;
      break;
    }
    mem.hpas[i] = phys;
    pinned++;
  }
  const fail = (errno: number): number => {
    for (let i = 0; i < pinned; i++) putPage(mem.hpas[i] ?? 0, false);
    k.objects.free('mm_iommu_table_group_mem_t');
    accountLockedVm(mm, entries, false);
    return errno;
  };
  if (pinned !== entries) return fail(ret === 0 ? -EFAULT : ret);
  const list = memList(mm);
  for (const mem2 of list) {
    /* Overlap? */
    if (mem2.ua < ua + entries * k.pageSize && ua < mem2.ua + mem2.entries * k.pageSize) return fail(-EINVAL);
  }
  /* no huge pages in the model: every region is backed by PAGE_SIZE pages */
  mem.pageshift = Math.min(mem.pageshift, shift);
  list.unshift(mem);
  return mem;
}

/** mm_iommu_get: the region registered with exactly this ua and size, referenced */
export function mmIommuGet(mm: MmStruct, ua: number, entries: number): MmIommuTableGroupMem | undefined {
  for (const mem of memList(mm)) {
    if (mem.ua === ua && mem.entries === entries) {
      ++mem.used;
      return mem;
    }
  }
  return undefined;
}

/** mm_iommu_put: drop a reference; the last one releases the pages unless TCEs still point there */
export function mmIommuPut(mm: MmStruct, mem: MmIommuTableGroupMem): number {
  let ret = 0;
  let unlock = 0;
  if (mem.used === 0) return -ENOENT;
  --mem.used;
  /* There are still users, exit */
  if (mem.used === 0) {
    /* Are there still mappings? */
    if (mem.mapped !== 1) {
      ++mem.used;
      ret = -EBUSY;
    } else {
      mem.mapped = 0;
      unlock = mem.entries;
      mmIommuRelease(mm, mem);
    }
  }
  accountLockedVm(mm, unlock, false);
  return ret;
}

function mmIommuRelease(mm: MmStruct, mem: MmIommuTableGroupMem): void {
  const list = memList(mm);
  list.splice(list.indexOf(mem), 1);
  for (let i = 0; i < mem.entries; i++) putPage(mem.hpas[i] ?? 0, false);
  currentKernel().objects.free('mm_iommu_table_group_mem_t');
}

/** mm_iommu_lookup: the region containing [ua, ua + size) */
export function mmIommuLookup(mm: MmStruct, ua: number, size: number): MmIommuTableGroupMem | undefined {
  const ps = currentKernel().pageSize;
  for (const mem of memList(mm)) if (mem.ua <= ua && ua + size <= mem.ua + mem.entries * ps) return mem;
  return undefined;
}

/** mm_iommu_ua_to_hpa: the host physical address of ua, for an IOMMU page of 2^pageshift */
export function mmIommuUaToHpa(mem: MmIommuTableGroupMem, ua: number, pageshift: number): number {
  const ps = mem.pageSize;
  const entry = Math.floor((ua - mem.ua) / ps);
  if (entry >= mem.entries) return -EFAULT;
  if (pageshift > mem.pageshift) return -EFAULT;
  return (mem.hpas[entry] ?? 0) + (ua % ps);
}

/** mm_iommu_mapped_inc: -ENXIO once the region is being released */
export function mmIommuMappedInc(mem: MmIommuTableGroupMem): number {
  if (mem.mapped === 0) return -ENXIO;
  mem.mapped++;
  return 0;
}

/** mm_iommu_mapped_dec (atomic64_add_unless(&mapped, -1, 1)) */
export function mmIommuMappedDec(mem: MmIommuTableGroupMem): void {
  if (mem.mapped !== 1) mem.mapped--;
}
