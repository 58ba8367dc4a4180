import { currentKernel, type Device, type Kernel, pr_info, pr_warn } from '../../kernel/index.ts';
import type { PciDev } from '../../pci/index.ts';
import { EINVAL, ENOMEM, EPERM } from '../../uapi/index.ts';
import type { DmaRun, IommuDomain, IommuFault } from '../domain.ts';
import type { IommuGroup } from '../iommu_group.ts';
import { type CoherentBuffer, iommuAllocCoherent, iommuFreeCoherent, iommuInitTable } from './dma_api.ts';
import { Eeh, EehPe } from './eeh.ts';
import { IommuTable, IommuTableGroup, type IommuTableGroupOps, UserspaceView } from './iommu_table.ts';
import { IOMMU_PAGE_SHIFT_4K, TCE_PCI_READ, TCE_PCI_WRITE } from './tce.ts';

/*
 * A PowerNV machine's PCI host bridges (arch/powerpc/platforms/powernv/
 * pci-ioda.c, PHB3/IODA2): one PHB per PCI domain, partitionable
 * endpoints (PEs) on it, each the unit of DMA isolation: one IOMMU group,
 * one table group with up to two DMA windows (TVEs), each translated by
 * a TCE table, and one EEH PE. The PE's DMA translation is the IOMMU
 * domain its devices sit behind, whoever owns the tables.
 */
export const POWERNV_IOMMU_MAX_LEVELS = 5;
/** the 64-bit window (#1) starts here on IODA2 */
export const TCE_BYPASS_BASE = 1n << 59n;
const SZ_4K = 0x1000;
const SZ_64K = 0x1_0000;
const SZ_16M = 0x100_0000;
/** the tables of the model keep at most this many entries (a bigger window is -ENOMEM) */
const MAX_TABLE_ENTRIES = 2 ** 32;
const SAFE_BUS_ADDR = BigInt(Number.MAX_SAFE_INTEGER);

export interface PowerPlatformOptions {
  /** the default (32-bit) DMA window of every PE */
  readonly dma32WindowStart: bigint;
  readonly dma32WindowSize: bigint;
  /** 6.x: a group's iommudata is its iommu_table_group (4.1: the iommu_table) */
  readonly iommuDataIsTableGroup: boolean;
  /** 6.x: the IODA2 table-group ops (dynamic windows, ownership by dropping the default table) */
  readonly tableGroupOps: boolean;
}

export class PnvPhb {
  readonly pes = new Map<number, PnvIodaPe>();
  nextPe = 0;
  /** the PHB's own EEH PE, parent of its PEs */
  readonly eehPe: EehPe;
  constructor(
    readonly platform: PowerPlatform,
    /** hose->global_number: the PCI domain */
    readonly global_number: number,
  ) {
    this.eehPe = new EehPe(platform.eeh, global_number, 0xff, undefined, []);
  }
}

/** struct pnv_ioda_pe */
export class PnvIodaPe {
  readonly devices: PciDev[] = [];
  readonly table_group: IommuTableGroup;
  readonly eeh: EehPe;
  readonly domain: TceDomain;
  readonly tce_bypass_base = TCE_BYPASS_BASE;
  /** IOMMU page shift of the default table */
  tcePageShift = IOMMU_PAGE_SHIFT_4K;
  constructor(
    readonly phb: PnvPhb,
    readonly pe_number: number,
    readonly group: IommuGroup,
    ops: IommuTableGroupOps,
  ) {
    const p = phb.platform;
    this.table_group = new IommuTableGroup(
      ops,
      Number(p.opts.dma32WindowStart),
      Number(p.opts.dma32WindowSize),
      p.opts.tableGroupOps ? SZ_4K | SZ_64K | SZ_16M : SZ_4K,
      p.opts.tableGroupOps ? 2 : 0,
      p.opts.tableGroupOps ? POWERNV_IOMMU_MAX_LEVELS : 1,
    );
    this.eeh = new EehPe(p.eeh, phb.global_number, pe_number, phb.eehPe, this.devices);
    this.domain = new TceDomain(this);
  }

  get name(): string {
    return `PHB#${this.phb.global_number.toString(16)}-PE#${this.pe_number.toString(16)}`;
  }

  /** pe_info(): "pci 0001:00:01.0: [PE# 00] ..." */
  info(text: string): void {
    const d = this.devices[0];
    pr_info(
      `pci ${d?.name ?? `${this.phb.global_number.toString(16).padStart(4, '0')}:00`}: [PE# ${this.pe_number.toString(16).padStart(2, '0')}] ${text}`,
    );
  }
}

/**
 * The PE's DMA translation (its TVT): a bus address selects a window, the
 * window's table gives the TCE, the TCE the page and what the device may
 * do with it. Any failure freezes the PE, as the PHB does; a frozen PE's
 * DMA goes nowhere.
 */
export class TceDomain implements IommuDomain {
  readonly type = 'spapr-tce' as const;
  constructor(readonly pe: PnvIodaPe) {}

  /** the window holding bus address iova */
  private windowOf(iova: bigint): IommuTable | undefined {
    const tables = this.pe.table_group.tables;
    if (iova <= SAFE_BUS_ADDR) {
      /* the common case: no bigint arithmetic */
      const a = Number(iova);
      for (const t of tables) if (t !== undefined && a >= t.windowStartNum && a < t.windowEndNum) return t;
    }
    for (const t of tables)
      if (t !== undefined && iova >= t.windowStart && iova - t.windowStart < t.windowSize) return t;
    return undefined;
  }

  translate(iova: bigint, len: number, write: boolean, runs: DmaRun[]): IommuFault | undefined {
    const pe = this.pe;
    if (pe.eeh.hw.dmaFrozen) return { iova, write, reason: `${pe.name} is frozen (EEH): DMA is blocked` };
    const fault = this.walk(iova, len, write, runs);
    if (fault !== undefined) pe.phb.platform.eeh.freeze(pe.eeh);
    return fault;
  }

  private walk(iova: bigint, len: number, write: boolean, runs: DmaRun[]): IommuFault | undefined {
    /* bus addresses of the 64-bit window exceed 2^53: offsets are taken relative to the window */
    const tbl = this.windowOf(iova);
    if (tbl === undefined) return { iova, write, reason: 'no DMA window at this bus address' };
    const ps = tbl.pageSize;
    let rel = Number.isNaN(tbl.windowStartNum)
      ? Number(iova - tbl.windowStart)
      : Number(iova) - tbl.windowStartNum;
    const end = rel + len;
    const windowBytes = tbl.it_size * ps;
    const need = write ? TCE_PCI_WRITE : TCE_PCI_READ;
    while (rel < end) {
      const page = Math.floor(rel / ps);
      const entry = tbl.it_offset + page;
      if (rel >= windowBytes)
        return {
          iova: tbl.windowStart + BigInt(rel),
          write,
          reason: 'access runs past the end of the DMA window',
        };
      const perm = tbl.perm(entry);
      if ((perm & (TCE_PCI_READ | TCE_PCI_WRITE)) === 0)
        return {
          iova: tbl.windowStart + BigInt(rel),
          write,
          reason: `TCE #${entry.toString(16)} is not valid`,
        };
      if ((perm & need) === 0)
        return {
          iova: tbl.windowStart + BigInt(rel),
          write,
          reason: `TCE #${entry.toString(16)} does not permit ${write ? 'write' : 'read'}`,
        };
      const off = rel - page * ps;
      const n = Math.min(end - rel, ps - off);
      const phys = tbl.addr(entry) + off;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.phys + last.len === phys) last.len += n;
      else runs.push({ phys, len: n });
      rel += n;
    }
    return undefined;
  }
}

/* ---- the platform of one machine ---- */

const platforms = new WeakMap<Kernel, PowerPlatform>();

export class PowerPlatform {
  readonly eeh: Eeh;
  readonly phbs = new Map<number, PnvPhb>();
  readonly peOfGroup = new Map<IommuGroup, PnvIodaPe>();
  readonly peOfDev = new WeakMap<Device, PnvIodaPe>();
  /** the DMA-API buffers host drivers hold, per device */
  readonly hostDma = new Map<Device, { tbl: IommuTable; buf: CoherentBuffer }[]>();
  constructor(
    readonly kernel: Kernel,
    readonly opts: PowerPlatformOptions,
  ) {
    this.eeh = new Eeh(kernel);
    platforms.set(kernel, this);
  }

  phb(domain: number): PnvPhb {
    let phb = this.phbs.get(domain);
    if (phb === undefined) {
      phb = new PnvPhb(this, domain);
      this.phbs.set(domain, phb);
      pr_info(`PCI host bridge PHB#${domain.toString(16)}: IODA2 (TCE tables, EEH)`);
    }
    return phb;
  }

  /**
   * A device appears in `group`: the group's PE is set up the first time
   * (its default table, EEH PE, translation) on the PHB of the device's
   * PCI domain; a group cannot span PHBs.
   */
  deviceAdd(pdev: PciDev, group: IommuGroup, tcePageShift = IOMMU_PAGE_SHIFT_4K): PnvIodaPe {
    let pe = this.peOfGroup.get(group);
    if (pe !== undefined && pe.phb.global_number !== pdev.domain)
      throw new Error(
        `IOMMU group ${group.id} is a PE of PHB#${pe.phb.global_number.toString(16)}: ${pdev.name} is on another PCI domain`,
      );
    if (pe === undefined) {
      const phb = this.phb(pdev.domain);
      const ops = this.opts.tableGroupOps ? pnvIoda2TableGroupOps : spapr41TableGroupOps;
      pe = new PnvIodaPe(phb, phb.nextPe++, group, ops);
      phb.pes.set(pe.pe_number, pe);
      this.peOfGroup.set(group, pe);
      pe.devices.push(pdev);
      pe.tcePageShift = tcePageShift;
      pnvPciIoda2SetupDefaultConfig(pe);
      iommuRegisterGroup(this, pe);
      group.default_domain = pe.domain;
      group.domain = pe.domain;
    } else pe.devices.push(pdev);
    this.peOfDev.set(pdev, pe);
    this.eeh.devPe.set(pdev, pe.eeh);
    return pe;
  }

  /** a host (DMA-API) driver bound to pdev: it maps a coherent ring for its own use */
  driverBound(pdev: PciDev, size = 0x1_0000): void {
    const pe = this.peOfDev.get(pdev);
    const tbl = pe?.table_group.tables[0];
    if (tbl === undefined || tbl.it_map === undefined) return;
    const buf = iommuAllocCoherent(pdev, tbl, size, 0xffff_ffff);
    if (buf === undefined) return;
    const l = this.hostDma.get(pdev) ?? [];
    l.push({ tbl, buf });
    this.hostDma.set(pdev, l);
  }

  /** the host driver unbound: its mappings go */
  driverUnbound(pdev: PciDev): void {
    for (const { tbl, buf } of this.hostDma.get(pdev) ?? []) iommuFreeCoherent(tbl, buf);
    this.hostDma.delete(pdev);
  }
}

export function powerPlatformOf(kernel: Kernel): PowerPlatform | undefined {
  return platforms.get(kernel);
}

/** the platform of the kernel running now (undefined off POWER) */
export function powerPlatform(): PowerPlatform | undefined {
  return platforms.get(currentKernel());
}

/** the EEH core of the kernel running now (undefined off POWER) */
export function eehCore(): Eeh | undefined {
  return platforms.get(currentKernel())?.eeh;
}

/**
 * The EEH PE of a device (undefined off POWER): vfio-pci's
 * vfio_spapr_pci_eeh_open/release are eehDevOpen/eehDevRelease on it, and
 * MMIO to a PE with hw.mmioFrozen reads all ones.
 */
export function eehPeOfDevice(dev: Device): EehPe | undefined {
  return platforms.get(currentKernel())?.eeh.devPe.get(dev);
}

/** the PE a group is (undefined for a group of another platform) */
export function pnvPeOfGroup(group: IommuGroup): PnvIodaPe | undefined {
  return platforms.get(currentKernel())?.peOfGroup.get(group);
}

/**
 * iommu_register_group: the group's iommudata is what the VFIO driver
 * gets back (the iommu_table in 4.1, the iommu_table_group in 6.x).
 */
function iommuRegisterGroup(platform: PowerPlatform, pe: PnvIodaPe): void {
  const tg = pe.table_group;
  tg.group = pe.group;
  const tbl = tg.tables[0];
  if (platform.opts.iommuDataIsTableGroup) pe.group.iommu_data = tg;
  else {
    pe.group.iommu_data = tbl;
    if (tbl !== undefined) tbl.it_group = pe.group;
  }
}

/** the PE's default DMA window: the table the host's DMA API allocates from */
function pnvPciIoda2SetupDefaultConfig(pe: PnvIodaPe): number {
  const tg = pe.table_group;
  const shift = pe.tcePageShift;
  const tbl = new IommuTable({
    index: (pe.phb.global_number << 16) | pe.pe_number,
    offset: Number(BigInt(tg.tce32_start) >> BigInt(shift)),
    size: Number(BigInt(tg.tce32_size) >> BigInt(shift)),
    pageShift: shift,
  });
  currentKernel().objects.alloc('iommu_table');
  tbl.it_allocated_size = tbl.it_size * 8;
  iommuInitTable(tbl);
  if (pe.phb.platform.opts.tableGroupOps) return pnvPciIoda2SetWindow(tg, 0, tbl, pe, true);
  const end = tg.tce32_start + tg.tce32_size - 1;
  pe.info(`Setting up 32-bit TCE table at ${hex8(tg.tce32_start)}..${hex8(end)}`);
  tg.tables[0] = tbl;
  return 0;
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, '0');
}

function peOfTableGroup(tg: IommuTableGroup): PnvIodaPe {
  const g = tg.group;
  const pe = g === undefined ? undefined : platforms.get(currentKernel())?.peOfGroup.get(g);
  if (pe === undefined) throw new Error('table group without a PE');
  return pe;
}

/** iommu_tce_table_put: the last reference frees the table */
export function iommuTceTablePut(tbl: IommuTable): boolean {
  if (--tbl.it_kref > 0) return false;
  currentKernel().objects.free('iommu_table');
  return true;
}

/* ---- IODA2 table group ops (6.x) ---- */

function isPow2(v: bigint): boolean {
  return v > 0n && (v & (v - 1n)) === 0n;
}

function ilog2(v: bigint): number {
  return v.toString(2).length - 1;
}

/** pnv_pci_ioda2_get_table_size: bytes of the hardware table plus its userspace copy; 0 if impossible */
function pnvPciIoda2GetTableSize(pageShift: number, windowSize: bigint, levels: number): number {
  const pageShiftHost = currentKernel().pageShift;
  if (levels === 0 || levels > POWERNV_IOMMU_MAX_LEVELS || !isPow2(windowSize)) return 0;
  const windowShift = ilog2(windowSize);
  if (windowShift < pageShift) return 0;
  let entriesShift = windowShift - pageShift;
  let tceTableSize = Math.max(0x1000, 2 ** (entriesShift + 3));
  entriesShift = Math.floor((entriesShift + levels - 1) / levels);
  const tableShift = Math.max(entriesShift + 3, pageShiftHost);
  const direct = 2 ** tableShift;
  let bytes = 0;
  for (; levels > 0; --levels) {
    bytes += Math.ceil(tceTableSize / direct) * direct;
    tceTableSize = Math.floor(tceTableSize / direct) * 8;
    tceTableSize = Math.max(tceTableSize, direct);
  }
  return bytes + bytes;
}

/** pnv_pci_ioda2_create_table(_userspace): a table for window `num` (bus offset by window) */
function pnvPciIoda2CreateTable(
  tg: IommuTableGroup,
  num: number,
  pageShift: number,
  windowSize: bigint,
  levels: number,
): IommuTable | number {
  const pe = peOfTableGroup(tg);
  const busOffset = num !== 0 ? pe.tce_bypass_base : BigInt(tg.tce32_start);
  const pageShiftHost = currentKernel().pageShift;
  if (levels === 0 || levels > POWERNV_IOMMU_MAX_LEVELS) return -EINVAL;
  if (!isPow2(windowSize)) return -EINVAL;
  const windowShift = ilog2(windowSize);
  if (windowShift < pageShift) return -EINVAL;
  const entriesShift = Math.floor((windowShift - pageShift + levels - 1) / levels);
  const levelShift = Math.max(entriesShift + 3, pageShiftHost);
  if ((levelShift - 3) * levels + pageShift >= 55) return -EINVAL;
  const entries = Number(windowSize >> BigInt(pageShift));
  if (entries > MAX_TABLE_ENTRIES) return -ENOMEM;
  const tbl = new IommuTable({
    index: (pe.phb.global_number << 16) | pe.pe_number,
    offset: Number(busOffset >> BigInt(pageShift)),
    size: entries,
    pageShift,
  });
  currentKernel().objects.alloc('iommu_table');
  tbl.it_level_size = 2 ** (levelShift - 3);
  tbl.it_indirect_levels = levels - 1;
  tbl.it_userspace = new UserspaceView(entries);
  tbl.it_allocated_size = pnvPciIoda2GetTableSize(pageShift, windowSize, levels);
  return tbl;
}

/** pnv_pci_ioda2_set_window: program window `num` of the PE with `tbl` (TVE) */
function pnvPciIoda2SetWindow(
  tg: IommuTableGroup,
  num: number,
  tbl: IommuTable,
  pe = peOfTableGroup(tg),
  boot = false,
): number {
  const start = tbl.windowStart;
  const end = start + tbl.windowSize - 1n;
  pe.info(
    `Setting up window#${num} ${start.toString(16)}..${end.toString(16)} pg=${tbl.pageSize.toString(16)}`,
  );
  /* pnv_pci_link_table_and_group: the group holds a reference */
  tg.tables[num] = tbl;
  if (!boot) tbl.it_kref++;
  return 0;
}

/** pnv_pci_ioda2_unset_window */
function pnvPciIoda2UnsetWindow(tg: IommuTableGroup, num: number): number {
  const tbl = tg.tables[num];
  if (tbl === undefined) return 0;
  tg.tables[num] = undefined;
  iommuTceTablePut(tbl);
  return 0;
}

/** pnv_ioda2_take_ownership: the host's default window and its table go; VFIO builds its own */
function pnvIoda2TakeOwnership(tg: IommuTableGroup): number {
  const pe = peOfTableGroup(tg);
  const tbl = tg.tables[0];
  if (tbl === undefined) return 0;
  /* unset_window drops the group's reference; the PE's own goes with iommu_tce_table_put */
  tg.tables[0] = undefined;
  iommuTceTablePut(tbl);
  for (const d of pe.devices) pe.phb.platform.hostDma.delete(d);
  return 0;
}

/** pnv_ioda2_release_ownership: back to the host's default configuration */
function pnvIoda2ReleaseOwnership(tg: IommuTableGroup): void {
  if (tg.tables[0] !== undefined) return;
  pnvPciIoda2SetupDefaultConfig(peOfTableGroup(tg));
}

export const pnvIoda2TableGroupOps: IommuTableGroupOps = {
  get_table_size: pnvPciIoda2GetTableSize,
  create_table: pnvPciIoda2CreateTable,
  set_window: (tg, num, tbl) => pnvPciIoda2SetWindow(tg, num, tbl),
  unset_window: pnvPciIoda2UnsetWindow,
  take_ownership: pnvIoda2TakeOwnership,
  release_ownership: pnvIoda2ReleaseOwnership,
};

/* 4.1 has no table-group ops: VFIO reaches the one table through iommudata */
const spapr41TableGroupOps: IommuTableGroupOps = {
  get_table_size: () => 0,
  create_table: () => -EPERM,
  set_window: () => -EPERM,
  unset_window: () => -EPERM,
  take_ownership: () => -EPERM,
  release_ownership: () => {
    pr_warn('table group ops are not available on this kernel');
  },
};
