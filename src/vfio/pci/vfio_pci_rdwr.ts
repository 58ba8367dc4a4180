import {
  copyFromUser,
  copyToUser,
  currentKernel,
  type FilePos,
  fail,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_PFNMAP,
  VM_SHARED,
  type Vma,
  type VmOperations,
} from '../../kernel/index.ts';
import {
  IORESOURCE_MEM,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_ROM_RESOURCE,
  pciBarRead,
  pciBarWrite,
  pciMapRom,
  pciUnmapRom,
} from '../../pci/index.ts';
import {
  EFAULT,
  EINVAL,
  EIO,
  ENOMEM,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_OFFSET_MASK,
  VFIO_PCI_OFFSET_SHIFT,
  VFIO_PCI_OFFSET_TO_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
} from '../../uapi/index.ts';
import { vfioPciConfigRw } from './vfio_pci_config.ts';
import type { VfioPciDevice } from './vfio_pci_private.ts';

/*
 * The device fd's read/write (drivers/vfio/pci/vfio_pci_rdwr.c and the rw
 * and mmap of vfio_pci.c): region index << 40 selects config space, a
 * BAR, the ROM or VGA; BAR accesses are split into naturally aligned
 * chunks, the MSI-X table reads as 0xff and swallows writes, and mmap
 * puts a BAR into the process as device memory.
 */

/* __vfio_pci_memory_enabled: the user's view of Memory Space Enable */
export function vfioPciMemoryEnabled(vdev: VfioPciDevice): boolean {
  const vc = vdev.vconfig;
  if (vc === undefined) return false;
  return (((vc[PCI_COMMAND] ?? 0) | ((vc[PCI_COMMAND + 1] ?? 0) << 8)) & PCI_COMMAND_MEMORY) !== 0;
}

/* one access at a time: a bounce buffer for the user copy (nothing re-enters the driver meanwhile) */
const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);

/*
 * do_io_rw: read or write an __iomem region with an excluded range
 * [xStart, xEnd) that reads as -1 and drops writes.
 */
function doIoRw(
  vdev: VfioPciDevice,
  testMem: boolean,
  bar: number,
  buf: number,
  off: number,
  count: number,
  xStart: number,
  xEnd: number,
  iswrite: boolean,
): number {
  const pdev = vdev.pdev;
  const q64 = vdev.profile.barRw64;
  const tmp = scratch;
  const dv = scratchView;
  let done = 0;
  while (count > 0) {
    let fillable: number;
    if (off < xStart) fillable = Math.min(count, xStart - off);
    else if (off >= xEnd) fillable = count;
    else fillable = 0;
    let filled: number;
    let size = 0;
    if (q64 && fillable >= 8 && off % 8 === 0) size = 8;
    else if (fillable >= 4 && off % 4 === 0) size = 4;
    else if (fillable >= 2 && off % 2 === 0) size = 2;
    else if (fillable > 0) size = 1;
    if (size > 0) {
      /* 6.x: Memory Space disabled by the user means -EIO, not a master abort */
      if (testMem && !vfioPciMemoryEnabled(vdev))
        return fail(EIO, `BAR${bar} access with memory decode disabled in the command register`);
      if (iswrite) {
        if (copyFromUser(tmp, buf, size) !== 0) return fail(EFAULT, 'BAR write: cannot read the user buffer');
        const v =
          size === 8
            ? dv.getBigUint64(0, true)
            : BigInt(
                size === 4 ? dv.getUint32(0, true) : size === 2 ? dv.getUint16(0, true) : dv.getUint8(0),
              );
        pciBarWrite(pdev, bar, off, size, v);
      } else {
        const v = pciBarRead(pdev, bar, off, size);
        if (size === 8) dv.setBigUint64(0, v, true);
        else dv.setUint32(0, Number(v), true);
        if (copyToUser(buf, tmp, size) !== 0) return fail(EFAULT, 'BAR read: cannot write the user buffer');
      }
      filled = size;
    } else {
      /* Fill reads with -1, drop writes */
      filled = Math.min(count, xEnd - off);
      if (!iswrite) {
        const ff = new Uint8Array(filled).fill(0xff);
        if (copyToUser(buf, ff, filled) !== 0) return fail(EFAULT, 'BAR read: cannot write the user buffer');
      }
    }
    count -= filled;
    done += filled;
    off += filled;
    buf += filled;
  }
  return done;
}

/* vfio_pci_setup_barmap: request the region and map it, once */
function vfioPciSetupBarmap(vdev: VfioPciDevice, bar: number): void {
  if (vdev.barmap[bar]) return;
  vdev.barmap[bar] = true;
}

export function vfioPciBarRw(
  vdev: VfioPciDevice,
  buf: number,
  count: number,
  ppos: FilePos,
  iswrite: boolean,
): number {
  const pdev = vdev.pdev;
  const pos = Number(ppos.pos & VFIO_PCI_OFFSET_MASK);
  const bar = VFIO_PCI_OFFSET_TO_INDEX(ppos.pos);
  const res = pdev.resource[bar];
  /* (no shadow ROMs on this platform: a ROM needs its BAR) */
  if (res === undefined || res.start === 0) return fail(EINVAL, `region ${bar}: the BAR is not implemented`);
  const end = res.len;
  if (pos >= end)
    return fail(EINVAL, `region ${bar}: offset 0x${pos.toString(16)} is past the ${end}-byte BAR`);
  count = Math.min(count, end - pos);
  let xStart = 0;
  let xEnd = 0;
  if (bar === PCI_ROM_RESOURCE) {
    /*
     * The ROM can fill less space than the BAR, so we start the excluded
     * range at the end of the actual ROM.
     */
    const rom = pciMapRom(pdev);
    if (rom === undefined) return fail(ENOMEM, 'ROM: cannot map the expansion ROM');
    xStart = rom.size;
    xEnd = end;
  } else vfioPciSetupBarmap(vdev, bar);
  if (bar === vdev.msix_bar) {
    xStart = vdev.msix_offset;
    xEnd = vdev.msix_offset + vdev.msix_size;
  }
  const testMem = vdev.profile.memoryEnableChecks && ((res?.flags ?? 0) & IORESOURCE_MEM) !== 0;
  const done = doIoRw(vdev, testMem && bar !== PCI_ROM_RESOURCE, bar, buf, pos, count, xStart, xEnd, iswrite);
  if (done >= 0) ppos.pos += BigInt(done);
  if (bar === PCI_ROM_RESOURCE) pciUnmapRom(pdev);
  return done;
}

/** vfio_pci_vga_rw: only for VGA devices with VGA support enabled (none here) */
export function vfioPciVgaRw(vdev: VfioPciDevice): number {
  if (!vdev.has_vga) return fail(EINVAL, 'VGA region: the device is not a VGA device');
  return -EINVAL;
}

/** vfio_pci_rw: dispatch by region index */
export function vfioPciRw(
  vdev: VfioPciDevice,
  buf: number,
  count: number,
  ppos: FilePos,
  iswrite: boolean,
): number {
  const index = VFIO_PCI_OFFSET_TO_INDEX(ppos.pos);
  if (index >= VFIO_PCI_NUM_REGIONS) return fail(EINVAL, `region index ${index} does not exist`);
  switch (index) {
    case VFIO_PCI_CONFIG_REGION_INDEX:
      return vfioPciConfigRw(vdev, buf, count, ppos, iswrite);
    case VFIO_PCI_ROM_REGION_INDEX:
      if (iswrite) return fail(EINVAL, 'ROM region is read-only');
      return vfioPciBarRw(vdev, buf, count, ppos, false);
    case VFIO_PCI_VGA_REGION_INDEX:
      return vfioPciVgaRw(vdev);
    default:
      if (index <= VFIO_PCI_BAR5_REGION_INDEX) return vfioPciBarRw(vdev, buf, count, ppos, iswrite);
  }
  return -EINVAL;
}

/* ---- mmap ---- */

interface BarMapping {
  readonly vdev: VfioPciDevice;
  readonly bar: number;
}

/*
 * A CPU access to the mapped BAR: split into naturally aligned loads and
 * stores of up to 8 bytes, each going to the device as MMIO. 6.x refuses
 * (SIGBUS) while the user has memory decode disabled or the device is in
 * low power; 4.1 mapped the pages directly, so the access reaches the bus
 * and a function that does not decode answers with all ones.
 */
const vfioPciMmapOps: VmOperations = {
  name: 'vfio_pci_mmap_ops',
  access(vma: Vma, offset: number, buf: Uint8Array, write: boolean): boolean {
    const m = vma.vm_private_data as BarMapping;
    const vdev = m.vdev;
    const pdev = vdev.pdev;
    const res = pdev.resource[m.bar];
    if (res === undefined || vma.pfnBase === undefined) return false;
    if (vdev.profile.memoryEnableChecks && (vdev.pm_runtime_engaged || !vfioPciMemoryEnabled(vdev)))
      return false;
    let barOff = vma.pfnBase + offset - res.start;
    let i = 0;
    while (i < buf.length) {
      const left = buf.length - i;
      let size = 1;
      if (left >= 8 && barOff % 8 === 0) size = 8;
      else if (left >= 4 && barOff % 4 === 0) size = 4;
      else if (left >= 2 && barOff % 2 === 0) size = 2;
      if (size === 8) {
        const dv = new DataView(buf.buffer, buf.byteOffset + i, 8);
        if (write) pciBarWrite(pdev, m.bar, barOff, 8, dv.getBigUint64(0, true));
        else dv.setBigUint64(0, pciBarRead(pdev, m.bar, barOff, 8), true);
      } else if (write) {
        let v = 0;
        for (let k = size - 1; k >= 0; k--) v = v * 256 + (buf[i + k] ?? 0);
        pciBarWrite(pdev, m.bar, barOff, size, BigInt(v));
      } else {
        let v = Number(pciBarRead(pdev, m.bar, barOff, size));
        for (let k = 0; k < size; k++) {
          buf[i + k] = v & 0xff;
          v = Math.floor(v / 256);
        }
      }
      i += size;
      barOff += size;
    }
    return true;
  },
};

export function vfioPciMmap(vdev: VfioPciDevice, vma: Vma): number {
  const pdev = vdev.pdev;
  const k = currentKernel();
  const pageShift = k.pageShift;
  const pageSize = k.pageSize;
  const index = Math.floor(vma.vm_pgoff / 2 ** (VFIO_PCI_OFFSET_SHIFT - pageShift));
  if (vdev.profile.subPageBarMmap && index >= VFIO_PCI_NUM_REGIONS)
    return fail(EINVAL, `mmap: region index ${index} does not exist`);
  if (vma.end < vma.start) return -EINVAL;
  if ((vma.vm_flags & VM_SHARED) === 0) return fail(EINVAL, 'mmap of a device region needs MAP_SHARED');
  if (index >= VFIO_PCI_ROM_REGION_INDEX)
    return fail(EINVAL, `mmap: region ${index} cannot be mapped (BARs only)`);
  const res = pdev.resource[index];
  if (res === undefined) return -EINVAL;
  if (vdev.profile.subPageBarMmap) {
    if (!vdev.bar_mmap_supported[index]) return fail(EINVAL, `mmap: BAR${index} is not mmap-capable`);
  } else if (!(res.flags & IORESOURCE_MEM)) return fail(EINVAL, `mmap: BAR${index} is not a memory BAR`);
  const physLen = vdev.profile.subPageBarMmap ? Math.ceil(res.len / pageSize) * pageSize : res.len;
  const reqLen = vma.end - vma.start;
  const pgoff = vma.vm_pgoff % 2 ** (VFIO_PCI_OFFSET_SHIFT - pageShift);
  const reqStart = pgoff * pageSize;
  if ((!vdev.profile.subPageBarMmap && physLen < pageSize) || reqStart + reqLen > physLen)
    return fail(
      EINVAL,
      `mmap: 0x${reqLen.toString(16)} bytes at 0x${reqStart.toString(16)} do not fit BAR${index} (0x${res.len.toString(16)} bytes)`,
    );
  if (!vdev.profile.mmapMsixTable && index === vdev.msix_bar) {
    /*
     * Disallow mmaps overlapping the MSI-X table; users don't get to touch
     * this directly. If neither entirely above nor below, then it overlaps.
     */
    if (!(reqStart >= vdev.msix_offset + vdev.msix_size || reqStart + reqLen <= vdev.msix_offset))
      return fail(EINVAL, `mmap: the range overlaps the MSI-X table of BAR${index}`);
  }
  vfioPciSetupBarmap(vdev, index);
  const mapping: BarMapping = { vdev, bar: index };
  vma.vm_private_data = mapping;
  vma.vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
  vma.pfnBase = res.start + reqStart;
  vma.vm_ops = vfioPciMmapOps;
  /* 4.1 rewrote vm_pgoff to the BAR's pfn for remap_pfn_range */
  if (!vdev.profile.subPageBarMmap) vma.vm_pgoff = Math.floor(res.start / pageSize) + pgoff;
  return 0;
}
