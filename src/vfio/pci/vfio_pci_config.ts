import { copyFromUser, copyToUser, currentKernel, type FilePos, fail } from '../../kernel/index.ts';
import {
  devPrintk,
  IORESOURCE_IO,
  IORESOURCE_MEM_64,
  IORESOURCE_PREFETCH,
  IORESOURCE_ROM_SHADOW,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_5,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_BIST,
  PCI_CACHE_LINE_SIZE,
  PCI_CAP_FLAGS,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MAX,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PCIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CAP_ID_VPD,
  PCI_CAP_LIST_ID,
  PCI_CAP_LIST_NEXT,
  PCI_CAP_SIZEOF,
  PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_SIZE,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_PHANTOM,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXP_DEVCTL2,
  PCI_EXP_DEVCTL2_ARI,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXP_FLAGS_VERS,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_MSI_PENDING_32,
  PCI_MSI_PENDING_64,
  PCI_PM_CAP_PME_MASK,
  PCI_PM_CTRL,
  PCI_PM_CTRL_PME_ENABLE,
  PCI_PM_CTRL_PME_STATUS,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_ENABLE,
  PCI_ROM_RESOURCE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_VENDOR_ID,
  type PciDev,
  pciReadConfig,
  pciSetPowerState,
  pciTryResetFunction,
  pciUserReadConfig,
  pciUserWriteConfig,
} from '../../pci/index.ts';
import { EFAULT, ENOMEM, VFIO_PCI_OFFSET_MASK } from '../../uapi/index.ts';
import type { VfioPciProfile } from './profile.ts';
import { vfioPciIntxMask, vfioPciIntxUnmask } from './vfio_pci_intrs.ts';
import {
  type ConfigReadFn,
  type ConfigWriteFn,
  isMsi,
  PCI_CAP_ID_BASIC,
  PCI_CAP_ID_INVALID,
  PCI_CAP_ID_INVALID_VIRT,
  type PermBits,
  type VfioPciDevice,
} from './vfio_pci_private.ts';

/*
 * Config space virtualization (drivers/vfio/pci/vfio_pci_config.c). A
 * per-device copy of config space (vconfig) and a byte map of which
 * capability owns each byte select, for every access, a table of two bit
 * masks: virt (the bit is served from / stored in vconfig) and write (the
 * user may change it). Everything else passes through to the hardware,
 * and special registers (BARs, command, MSI, PCIe device control, PM
 * control) have their own handlers.
 */

/* ---- little-endian helpers over byte arrays ---- */

function le(b: Uint8Array, off: number, count: number): number {
  let v = 0;
  for (let i = 0; i < count; i++) v |= (b[off + i] ?? 0) << (8 * i);
  return v >>> 0;
}

function setLe(b: Uint8Array, off: number, count: number, v: number): void {
  for (let i = 0; i < count; i++) b[off + i] = (v >>> (8 * i)) & 0xff;
}

function vcfg(vdev: VfioPciDevice): Uint8Array {
  const v = vdev.vconfig;
  if (v === undefined) throw new Error('vfio-pci: config access without vconfig');
  return v;
}

function cmap(vdev: VfioPciDevice): Uint8Array {
  const m = vdev.pci_config_map;
  if (m === undefined) throw new Error('vfio-pci: config access without a config map');
  return m;
}

const ALL = 0xffffffff;

function fullMask(count: number): number {
  return count === 4 ? ALL : (1 << (count * 8)) - 1;
}

/* ---- hardware accessors (pci_user_{read,write}_config_*) ---- */

function userRead(pdev: PciDev, pos: number, count: number): { value: number } | number {
  return pciUserReadConfig(pdev, pos, count as 1 | 2 | 4);
}

function userWrite(pdev: PciDev, pos: number, count: number, v: number): number {
  return pciUserWriteConfig(pdev, pos, count as 1 | 2 | 4, v);
}

/* ---- the generic handlers ---- */

const vfioDefaultConfigRead: ConfigReadFn = (vdev, pos, count, perm, offset, out) => {
  let val = le(vcfg(vdev), pos, count);
  const virt = perm.virt === undefined ? 0 : le(perm.virt, offset, count);
  /* Any non-virtualized bits? */
  if (virt !== fullMask(count)) {
    const phys = userRead(vdev.pdev, pos, count);
    if (typeof phys === 'number') return phys;
    val = ((phys.value & ~virt) | (val & virt)) >>> 0;
  }
  out.val = val;
  return count;
};

const vfioDefaultConfigWrite: ConfigWriteFn = (vdev, pos, count, perm, offset, val) => {
  const write = perm.write === undefined ? 0 : le(perm.write, offset, count);
  if (write === 0) return count; /* drop, no writable bits */
  const virt = perm.virt === undefined ? 0 : le(perm.virt, offset, count);
  /* Virtualized and writable bits go to vconfig */
  if (write & virt) {
    const vc = vcfg(vdev);
    let v = le(vc, pos, count);
    v = ((v & ~(write & virt)) | (val & write & virt)) >>> 0;
    setLe(vc, pos, count, v);
  }
  /* Non-virtualized and writable bits go to hardware */
  if (write & ~virt) {
    const phys = userRead(vdev.pdev, pos, count);
    if (typeof phys === 'number') return phys;
    const v = ((phys.value & ~(write & ~virt)) | (val & write & ~virt)) >>> 0;
    const ret = userWrite(vdev.pdev, pos, count, v);
    if (ret !== 0) return ret;
  }
  return count;
};

/* Allow direct read from hardware, except for capability next pointer */
const vfioDirectConfigRead: ConfigReadFn = (vdev, pos, count, _perm, offset, out) => {
  const phys = userRead(vdev.pdev, pos, count);
  if (typeof phys === 'number') return phys;
  let val = phys.value;
  const vc = vcfg(vdev);
  if (pos >= PCI_CFG_SPACE_SIZE) {
    /* Extended cap header mangling */
    if (offset < 4) val = le(vc, pos, count);
  } else if (pos >= PCI_STD_HEADER_SIZEOF) {
    /* Std cap mangling */
    if (offset === PCI_CAP_LIST_ID && count > 1) {
      const n = Math.min(PCI_CAP_FLAGS, count);
      val = ((val & ~fullMask(n)) | le(vc, pos, n)) >>> 0;
    } else if (offset === PCI_CAP_LIST_NEXT) val = ((val & ~0xff) | le(vc, pos, 1)) >>> 0;
  }
  out.val = val;
  return count;
};

/* Raw access skips any kind of virtualization */
const vfioRawConfigWrite: ConfigWriteFn = (vdev, pos, count, _perm, _offset, val) => {
  const ret = userWrite(vdev.pdev, pos, count, val);
  return ret !== 0 ? ret : count;
};

const vfioRawConfigRead: ConfigReadFn = (vdev, pos, count, _perm, _offset, out) => {
  const phys = userRead(vdev.pdev, pos, count);
  if (typeof phys === 'number') return phys;
  out.val = phys.value;
  return count;
};

/* Virt access uses only virtualization */
const vfioVirtConfigWrite: ConfigWriteFn = (vdev, pos, count, _perm, _offset, val) => {
  setLe(vcfg(vdev), pos, count, val);
  return count;
};

const vfioVirtConfigRead: ConfigReadFn = (vdev, pos, count, _perm, _offset, out) => {
  out.val = le(vcfg(vdev), pos, count);
  return count;
};

/* ---- permission tables ---- */

interface MutablePerm {
  virt: Uint8Array | undefined;
  write: Uint8Array | undefined;
  readfn: ConfigReadFn | undefined;
  writefn: ConfigWriteFn | undefined;
}

/* Round up to a dword: accesses past a capability's end stay inside its table */
function allocPermBits(size: number): MutablePerm {
  const n = Math.ceil(size / 4) * 4;
  return {
    virt: new Uint8Array(n),
    write: new Uint8Array(n),
    readfn: vfioDefaultConfigRead,
    writefn: vfioDefaultConfigWrite,
  };
}

function pSet(p: MutablePerm, off: number, size: number, virt: number, write: number): void {
  if (p.virt === undefined || p.write === undefined) return;
  setLe(p.virt, off, size, virt);
  setLe(p.write, off, size, write);
}

const PCI_CAP_VPD_SIZEOF = 8;
const PCI_VPD_ADDR = 2;
const PCI_VPD_DATA = 4;
const PCI_X_CMD = 2;
const PCI_X_ECC_CSR = 4;
const PCI_CAP_PCIX_SIZEOF_V0 = 8;
const PCI_CAP_PCIX_SIZEOF_V2 = 24;
const PCI_AF_CAP = 3;
const PCI_AF_CTRL = 4;
const PCI_AF_CTRL_FLR = 0x01;
const PCI_AF_CAP_TP = 0x01;
const PCI_AF_CAP_FLR = 0x02;
const PCI_CAP_AF_SIZEOF = 6;
const PCI_EXP_TYPE_RC_END = 0x9;

/** pci_cap_length: 0 hides the capability, 0xff means "ask vfio_cap_len" */
const PCI_CAP_LENGTH: Record<number, number> = {
  [PCI_CAP_ID_BASIC]: PCI_STD_HEADER_SIZEOF,
  [PCI_CAP_ID_PM]: 8,
  2: 12 /* AGP */,
  [PCI_CAP_ID_VPD]: PCI_CAP_VPD_SIZEOF,
  [PCI_CAP_ID_MSI]: 0xff,
  [PCI_CAP_ID_PCIX]: 0xff,
  8: 0xff /* HT */,
  [PCI_CAP_ID_VNDR]: 0xff,
  [PCI_CAP_ID_EXP]: 0xff,
  [PCI_CAP_ID_MSIX]: 12,
  18: 0xff /* SATA */,
  [PCI_CAP_ID_AF]: PCI_CAP_AF_SIZEOF,
};

const PCI_EXT_CAP_ID_ERR = 0x01;
const PCI_EXT_CAP_ID_VC = 0x02;
const PCI_EXT_CAP_ID_PWR = 0x04;
const PCI_EXT_CAP_ID_VNDR = 0x0b;
const PCI_EXT_CAP_ID_MAX = 0x1b;
const PCI_PWR_DATA = 4;

const PCI_EXT_CAP_LENGTH: Record<number, number> = {
  [PCI_EXT_CAP_ID_ERR]: 0x2c,
  [PCI_EXT_CAP_ID_VC]: 0xff,
  3: 12 /* DSN */,
  [PCI_EXT_CAP_ID_PWR]: 16,
  8: 0xff /* MFVC */,
  9: 0xff /* VC9 */,
  [PCI_EXT_CAP_ID_VNDR]: 0xff,
  13: 0xff /* ACS */,
  14: 8 /* ARI */,
  15: 8 /* ATS */,
  16: 64 /* SR-IOV */,
  18: 40 /* MCAST */,
  19: 16 /* PRI */,
  21: 0xff /* REBAR */,
  22: 0xff /* DPA */,
  23: 0xff /* TPH */,
  24: 8 /* LTR */,
};

interface PermTables {
  readonly cap: readonly PermBits[];
  readonly ecap: readonly PermBits[];
  readonly unassigned: PermBits;
  readonly virt: PermBits;
}

function initBasicPerm(): MutablePerm {
  const p = allocPermBits(PCI_STD_HEADER_SIZEOF);
  p.readfn = vfioBasicConfigRead;
  p.writefn = vfioBasicConfigWrite;
  /* Virtualized for SR-IOV functions, which just have FFFF */
  pSet(p, PCI_VENDOR_ID, 2, 0xffff, 0);
  pSet(p, PCI_DEVICE_ID, 2, 0xffff, 0);
  /* Virtualize INTx disable, we use it internally for interrupt control */
  pSet(p, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE, 0xffff);
  /* Virtualize capability list, we might want to skip/disable */
  pSet(p, PCI_STATUS, 2, PCI_STATUS_CAP_LIST, 0);
  /* No harm to write */
  pSet(p, PCI_CACHE_LINE_SIZE, 1, 0, 0xff);
  pSet(p, PCI_LATENCY_TIMER, 1, 0, 0xff);
  pSet(p, PCI_BIST, 1, 0, 0xff);
  /* Virtualize all bars, can't touch the real ones */
  for (let off = PCI_BASE_ADDRESS_0; off <= PCI_BASE_ADDRESS_5; off += 4) pSet(p, off, 4, ALL, ALL);
  pSet(p, PCI_ROM_ADDRESS, 4, ALL, ALL);
  /* Allow us to adjust capability chain */
  pSet(p, PCI_CAPABILITY_LIST, 1, 0xff, 0);
  /* Sometimes used by sw, just virtualize */
  pSet(p, PCI_INTERRUPT_LINE, 1, 0xff, 0xff);
  /* Virtualize interrupt pin to allow hiding INTx */
  pSet(p, PCI_INTERRUPT_PIN, 1, 0xff, 0);
  return p;
}

function initPmPerm(profile: VfioPciProfile): MutablePerm {
  const p = allocPermBits(8);
  p.writefn = vfioPmConfigWrite;
  /* We always virtualize the next field so we can remove capabilities */
  pSet(p, PCI_CAP_LIST_NEXT, 1, 0xff, 0);
  if (profile.pmPmeVirtualized) {
    /* the user cannot handle PME: PME_Support, PME_En and PME_Status read as 0 */
    pSet(p, PCI_PM_PMC, 2, PCI_PM_CAP_PME_MASK, 0);
    pSet(
      p,
      PCI_PM_CTRL,
      4,
      PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS,
      ~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS | PCI_PM_CTRL_STATE_MASK) >>> 0,
    );
  } else {
    /* Power state bits are read-only: the write is trapped and done by the kernel */
    pSet(p, PCI_PM_CTRL, 4, 0, ~PCI_PM_CTRL_STATE_MASK >>> 0);
  }
  return p;
}

function initVpdPerm(): MutablePerm {
  const p = allocPermBits(PCI_CAP_VPD_SIZEOF);
  pSet(p, PCI_CAP_LIST_NEXT, 1, 0xff, 0);
  /* address and data emulated (the kernel's VPD accessors are behind them) */
  pSet(p, PCI_VPD_ADDR, 2, 0xffff, 0xffff);
  pSet(p, PCI_VPD_DATA, 4, ALL, ALL);
  return p;
}

function initPcixPerm(): MutablePerm {
  const p = allocPermBits(PCI_CAP_PCIX_SIZEOF_V2);
  pSet(p, PCI_CAP_LIST_NEXT, 1, 0xff, 0);
  pSet(p, PCI_X_CMD, 2, 0, 0xffff);
  pSet(p, PCI_X_ECC_CSR, 4, 0, ALL);
  return p;
}

function initExpPerm(): MutablePerm {
  const p = allocPermBits(60);
  p.writefn = vfioExpConfigWrite;
  pSet(p, PCI_CAP_LIST_NEXT, 1, 0xff, 0);
  /*
   * Allow writes to device control fields, except devctl_phantom, which
   * could confuse IOMMU, MPS, which can break communication with other
   * physical devices, and the ARI bit in devctl2, which is set at probe
   * time. FLR and MRRS get virtualized via our writefn.
   */
  pSet(
    p,
    PCI_EXP_DEVCTL,
    2,
    PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_READRQ,
    ~PCI_EXP_DEVCTL_PHANTOM & 0xffff,
  );
  pSet(p, PCI_EXP_DEVCTL2, 2, 0, ~PCI_EXP_DEVCTL2_ARI & 0xffff);
  return p;
}

function initAfPerm(): MutablePerm {
  const p = allocPermBits(PCI_CAP_AF_SIZEOF);
  p.writefn = vfioAfConfigWrite;
  pSet(p, PCI_CAP_LIST_NEXT, 1, 0xff, 0);
  pSet(p, PCI_AF_CTRL, 1, PCI_AF_CTRL_FLR, PCI_AF_CTRL_FLR);
  return p;
}

function initErrPerm(): MutablePerm {
  const p = allocPermBits(0x2c);
  /* Virtualize the first dword of all express capabilities: it holds next */
  pSet(p, 0, 4, ALL, 0);
  const unc = 0x0001f030 | 0x00e00000 | 0x01000000 | 0x02000000; /* the writable uncorrectable bits */
  pSet(p, 4, 4, 0, unc);
  pSet(p, 8, 4, 0, unc);
  pSet(p, 12, 4, 0, unc);
  const cor =
    0x00000001 | 0x00000040 | 0x00000080 | 0x00000100 | 0x00001000 | 0x00002000 | 0x00004000 | 0x00008000;
  pSet(p, 16, 4, 0, cor);
  pSet(p, 20, 4, 0, cor);
  pSet(p, 24, 4, 0, 0x00000020 | 0x00000080);
  return p;
}

function initPwrPerm(): MutablePerm {
  const p = allocPermBits(16);
  pSet(p, 0, 4, ALL, 0);
  /* Writing the data selector is OK, the info is still read-only */
  pSet(p, PCI_PWR_DATA, 1, 0, 0xff);
  return p;
}

const direct = (): MutablePerm => ({
  virt: undefined,
  write: undefined,
  readfn: vfioDirectConfigRead,
  writefn: undefined,
});

function buildPermTables(profile: VfioPciProfile): PermTables {
  const cap: MutablePerm[] = [];
  for (let i = 0; i <= PCI_CAP_ID_MAX; i++) cap.push(direct());
  const ecap: MutablePerm[] = [];
  for (let i = 0; i <= PCI_EXT_CAP_ID_MAX; i++) ecap.push(direct());
  cap[PCI_CAP_ID_BASIC] = initBasicPerm();
  cap[PCI_CAP_ID_PM] = initPmPerm(profile);
  cap[PCI_CAP_ID_VPD] = initVpdPerm();
  cap[PCI_CAP_ID_PCIX] = initPcixPerm();
  cap[PCI_CAP_ID_VNDR] = { ...direct(), writefn: vfioRawConfigWrite };
  cap[PCI_CAP_ID_EXP] = initExpPerm();
  cap[PCI_CAP_ID_AF] = initAfPerm();
  ecap[PCI_EXT_CAP_ID_ERR] = initErrPerm();
  ecap[PCI_EXT_CAP_ID_PWR] = initPwrPerm();
  ecap[PCI_EXT_CAP_ID_VNDR] = { ...direct(), writefn: vfioRawConfigWrite };
  return {
    cap,
    ecap,
    /*
     * Default unassigned regions to raw read-write access. Some devices
     * hide registers in the gaps between capabilities.
     */
    unassigned: { virt: undefined, write: undefined, readfn: vfioRawConfigRead, writefn: vfioRawConfigWrite },
    virt: { virt: undefined, write: undefined, readfn: vfioVirtConfigRead, writefn: vfioVirtConfigWrite },
  };
}

/* The shared tables (vfio_pci_init_perm_bits): immutable, one per profile */
const permTables = new Map<VfioPciProfile, PermTables>();

function perms(profile: VfioPciProfile): PermTables {
  let t = permTables.get(profile);
  if (t === undefined) {
    t = buildPermTables(profile);
    permTables.set(profile, t);
  }
  return t;
}

/* ---- the basic header ---- */

function isBar(offset: number): boolean {
  return (
    (offset >= PCI_BASE_ADDRESS_0 && offset < PCI_BASE_ADDRESS_5 + 4) ||
    (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4)
  );
}

function barFlags(pdev: PciDev, bar: number): number {
  const flags = pdev.resource[bar]?.flags ?? 0;
  if (flags & IORESOURCE_IO) return PCI_BASE_ADDRESS_SPACE_IO;
  let val = 0; /* PCI_BASE_ADDRESS_SPACE_MEMORY */
  if (flags & IORESOURCE_PREFETCH) val |= PCI_BASE_ADDRESS_MEM_PREFETCH;
  if (flags & IORESOURCE_MEM_64) val |= PCI_BASE_ADDRESS_MEM_TYPE_64;
  return val;
}

/** ~(len - 1) as two u32 halves */
function sizeMask(len: number): { lo: number; hi: number } {
  const lo = len >= 2 ** 32 ? 0 : ~(len - 1) >>> 0;
  const hi = len > 2 ** 32 ? ~(Math.floor(len / 2 ** 32) - 1) >>> 0 : 0xffffffff;
  return { lo, hi };
}

/*
 * Pretend we're hardware and tweak the values of the *virtual* PCI BARs
 * to reflect the hardware capabilities. This implements BAR sizing.
 */
function vfioBarFixup(vdev: VfioPciDevice): void {
  const pdev = vdev.pdev;
  const vc = vcfg(vdev);
  for (let i = 0; i < 6; i++) {
    const off = PCI_BASE_ADDRESS_0 + 4 * i;
    const res = pdev.resource[i];
    if (res === undefined || res.start === 0) {
      setLe(vc, off, 4, 0); /* Unmapped by host = unimplemented to user */
      continue;
    }
    const mask = sizeMask(res.len);
    let bar = (le(vc, off, 4) & mask.lo) >>> 0;
    bar = (bar | barFlags(pdev, i)) >>> 0;
    setLe(vc, off, 4, bar);
    if (bar & PCI_BASE_ADDRESS_MEM_TYPE_64 && i < 5) {
      setLe(vc, off + 4, 4, (le(vc, off + 4, 4) & mask.hi) >>> 0);
      i++;
    }
  }
  const rom = pdev.resource[PCI_ROM_RESOURCE];
  if (rom !== undefined && rom.start !== 0) {
    const mask = (sizeMask(rom.len).lo | PCI_ROM_ADDRESS_ENABLE) >>> 0;
    setLe(vc, PCI_ROM_ADDRESS, 4, (le(vc, PCI_ROM_ADDRESS, 4) & mask) >>> 0);
  } else if (rom !== undefined && rom.flags & IORESOURCE_ROM_SHADOW) {
    const mask = (~(0x20000 - 1) | PCI_ROM_ADDRESS_ENABLE) >>> 0;
    setLe(vc, PCI_ROM_ADDRESS, 4, (le(vc, PCI_ROM_ADDRESS, 4) & mask) >>> 0);
  } else setLe(vc, PCI_ROM_ADDRESS, 4, 0);
  vdev.bardirty = false;
}

const vfioBasicConfigRead: ConfigReadFn = (vdev, pos, count, perm, offset, out) => {
  if (isBar(offset)) vfioBarFixup(vdev);
  return vfioDefaultConfigRead(vdev, pos, count, perm, offset, out);
};

/* Restore the *real* BARs after we detect a FLR or backdoor reset */
function vfioBarRestore(vdev: VfioPciDevice): void {
  const pdev = vdev.pdev;
  if (vdev.profile.messages === '4.1')
    currentKernel().printk('info', `vfio_bar_restore: ${pdev.name} reset recovery - restoring bars`);
  else devPrintk('info', pdev, 'vfio_bar_restore: reset recovery - restoring BARs');
  for (let i = 0; i < 6; i++) userWrite(pdev, PCI_BASE_ADDRESS_0 + 4 * i, 4, vdev.rbar[i] ?? 0);
  userWrite(pdev, PCI_ROM_ADDRESS, 4, vdev.rbar[6] ?? 0);
  if (vdev.nointx) {
    const c = pciReadConfig(pdev, PCI_COMMAND, 2) ?? 0;
    userWrite(pdev, PCI_COMMAND, 2, c | PCI_COMMAND_INTX_DISABLE);
  }
}

/* Test whether BARs match the value we think they should contain */
function vfioNeedBarRestore(vdev: VfioPciDevice): boolean {
  for (let i = 0; i < 6; i++) {
    const r = vdev.rbar[i] ?? 0;
    if (r !== 0 && (pciReadConfig(vdev.pdev, PCI_BASE_ADDRESS_0 + 4 * i, 4) ?? 0) !== r) return true;
  }
  return false;
}

const vfioBasicConfigWrite: ConfigWriteFn = (vdev, pos, count, perm, offset, val) => {
  const pdev = vdev.pdev;
  const vc = vcfg(vdev);
  let newCmd = 0;
  if (offset === PCI_COMMAND) {
    const phys = userRead(pdev, PCI_COMMAND, 2);
    if (typeof phys === 'number') return phys;
    newCmd = val & 0xffff;
    const virtCmd = le(vc, PCI_COMMAND, 2);
    const physMem = (phys.value & PCI_COMMAND_MEMORY) !== 0;
    const virtMem = (virtCmd & PCI_COMMAND_MEMORY) !== 0;
    const newMem = (newCmd & PCI_COMMAND_MEMORY) !== 0;
    const physIo = (phys.value & PCI_COMMAND_IO) !== 0;
    const virtIo = (virtCmd & PCI_COMMAND_IO) !== 0;
    const newIo = (newCmd & PCI_COMMAND_IO) !== 0;
    /*
     * If the user is writing mem/io enable and we think it's already
     * enabled, but the hardware shows it disabled, the device has
     * undergone some kind of backdoor reset and needs its BARs back.
     */
    if (
      (newMem && virtMem && !physMem) ||
      (newIo && virtIo && !physIo) ||
      (vdev.profile.memoryEnableChecks && vfioNeedBarRestore(vdev))
    )
      vfioBarRestore(vdev);
  }
  const ret = vfioDefaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (ret < 0) return ret;
  /* Save current memory/io enable bits in vconfig to allow for the test above next time */
  if (offset === PCI_COMMAND) {
    const mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
    setLe(vc, PCI_COMMAND, 2, (le(vc, PCI_COMMAND, 2) & ~mask) | (newCmd & mask));
  }
  /* Emulate INTx disable */
  if (offset >= PCI_COMMAND && offset <= PCI_COMMAND + 1) {
    const virtIntxDisable = (le(vc, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) !== 0;
    if (virtIntxDisable && !vdev.virq_disabled) {
      vdev.virq_disabled = true;
      vfioPciIntxMask(vdev);
    } else if (!virtIntxDisable && vdev.virq_disabled) {
      vdev.virq_disabled = false;
      vfioPciIntxUnmask(vdev);
    }
  }
  if (isBar(offset)) vdev.bardirty = true;
  return ret;
};

/* ---- capabilities with handlers ---- */

const vfioPmConfigWrite: ConfigWriteFn = (vdev, pos, count, perm, offset, val) => {
  const ret = vfioDefaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (ret < 0) return ret;
  if (offset === PCI_PM_CTRL) pciSetPowerState(vdev.pdev, val & PCI_PM_CTRL_STATE_MASK);
  return ret;
};

const vfioExpConfigWrite: ConfigWriteFn = (vdev, pos, count, perm, offset, val) => {
  const vc = vcfg(vdev);
  const ctrlOff = pos - offset + PCI_EXP_DEVCTL;
  const readrq = le(vc, ctrlOff, 2) & PCI_EXP_DEVCTL_READRQ;
  const ret = vfioDefaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (ret < 0) return ret;
  /*
   * The FLR bit is virtualized: if set and the device supports PCIe FLR,
   * issue a reset_function. Regardless, clear the bit, the spec requires
   * it to be always read as zero.
   */
  let ctrl = le(vc, ctrlOff, 2);
  if (ctrl & PCI_EXP_DEVCTL_BCR_FLR) {
    ctrl &= ~PCI_EXP_DEVCTL_BCR_FLR;
    setLe(vc, ctrlOff, 2, ctrl);
    const cap = userRead(vdev.pdev, pos - offset + PCI_EXP_DEVCAP, 4);
    if (typeof cap !== 'number' && cap.value & PCI_EXP_DEVCAP_FLR) pciTryResetFunction(vdev.pdev);
  }
  /*
   * MPS is virtualized to the user; MRRS writes reach the hardware with
   * the physical MPS as a floor.
   */
  if (readrq !== (ctrl & PCI_EXP_DEVCTL_READRQ)) {
    const pdev = vdev.pdev;
    const hwCtl = pciReadConfig(pdev, pos - offset + PCI_EXP_DEVCTL, 2) ?? 0;
    const mps = 128 << ((hwCtl & PCI_EXP_DEVCTL_PAYLOAD) >> 5);
    const rq = Math.max(128 << ((ctrl & PCI_EXP_DEVCTL_READRQ) >> 12), mps);
    const field = (Math.log2(rq) - 7) << 12;
    userWrite(pdev, pos - offset + PCI_EXP_DEVCTL, 2, (hwCtl & ~PCI_EXP_DEVCTL_READRQ) | field);
  }
  return ret;
};

const vfioAfConfigWrite: ConfigWriteFn = (vdev, pos, count, perm, offset, val) => {
  const vc = vcfg(vdev);
  const ctrlOff = pos - offset + PCI_AF_CTRL;
  const ret = vfioDefaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (ret < 0) return ret;
  const ctrl = vc[ctrlOff] ?? 0;
  if (ctrl & PCI_AF_CTRL_FLR) {
    vc[ctrlOff] = ctrl & ~PCI_AF_CTRL_FLR;
    const cap = userRead(vdev.pdev, pos - offset + PCI_AF_CAP, 1);
    if (typeof cap !== 'number' && cap.value & PCI_AF_CAP_FLR && cap.value & PCI_AF_CAP_TP)
      pciTryResetFunction(vdev.pdev);
  }
  return ret;
};

/* ---- MSI ---- */

function vfioFindCapStart(vdev: VfioPciDevice, pos: number): number {
  const map = cmap(vdev);
  const base = pos >= PCI_CFG_SPACE_SIZE ? PCI_CFG_SPACE_SIZE : PCI_STD_HEADER_SIZEOF;
  const cap = map[pos];
  if (cap === PCI_CAP_ID_BASIC) return 0;
  while (pos - 1 >= base && map[pos - 1] === cap) pos--;
  return pos;
}

const vfioMsiConfigRead: ConfigReadFn = (vdev, pos, count, perm, offset, out) => {
  /* Update max available queue size from msi_qmax */
  if (offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS) {
    const start = vfioFindCapStart(vdev, pos);
    const vc = vcfg(vdev);
    let flags = le(vc, start + PCI_MSI_FLAGS, 2);
    flags = (flags & ~PCI_MSI_FLAGS_QMASK) | (vdev.msi_qmax << 1);
    setLe(vc, start + PCI_MSI_FLAGS, 2, flags);
  }
  return vfioDefaultConfigRead(vdev, pos, count, perm, offset, out);
};

const vfioMsiConfigWrite: ConfigWriteFn = (vdev, pos, count, perm, offset, val) => {
  const ret = vfioDefaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (ret < 0) return ret;
  /* Fixup and write configured queue size and enable to hardware */
  if (offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS) {
    const start = vfioFindCapStart(vdev, pos);
    const vc = vcfg(vdev);
    let flags = le(vc, start + PCI_MSI_FLAGS, 2);
    /* MSI is enabled via ioctl */
    if (!isMsi(vdev)) flags &= ~PCI_MSI_FLAGS_ENABLE;
    /* Check queue size */
    if ((flags & PCI_MSI_FLAGS_QSIZE) >> 4 > vdev.msi_qmax) {
      flags &= ~PCI_MSI_FLAGS_QSIZE;
      flags |= vdev.msi_qmax << 4;
    }
    /* Write back to virt and to hardware */
    setLe(vc, start + PCI_MSI_FLAGS, 2, flags);
    const r = userWrite(vdev.pdev, start + PCI_MSI_FLAGS, 2, flags);
    if (r !== 0) return r;
  }
  return ret;
};

/* MSI determination is per-device (its length depends on the flags) */
function initPciCapMsiPerm(len: number, flags: number): PermBits {
  const p = allocPermBits(len);
  p.readfn = vfioMsiConfigRead;
  p.writefn = vfioMsiConfigWrite;
  pSet(p, PCI_CAP_LIST_NEXT, 1, 0xff, 0);
  /* The upper byte of the control register is reserved, just setup the lower byte */
  pSet(p, PCI_MSI_FLAGS, 1, 0xff, 0xff);
  pSet(p, PCI_MSI_ADDRESS_LO, 4, ALL, ALL);
  if (flags & PCI_MSI_FLAGS_64BIT) {
    pSet(p, PCI_MSI_ADDRESS_HI, 4, ALL, ALL);
    pSet(p, PCI_MSI_DATA_64, 2, 0xffff, 0xffff);
    if (flags & PCI_MSI_FLAGS_MASKBIT) {
      pSet(p, PCI_MSI_MASK_64, 4, 0, ALL);
      pSet(p, PCI_MSI_PENDING_64, 4, 0, ALL);
    }
  } else {
    pSet(p, PCI_MSI_DATA_32, 2, 0xffff, 0xffff);
    if (flags & PCI_MSI_FLAGS_MASKBIT) {
      pSet(p, PCI_MSI_MASK_32, 4, 0, ALL);
      pSet(p, PCI_MSI_PENDING_32, 4, 0, ALL);
    }
  }
  return p;
}

/* ---- capability lengths and the walk (vfio_cap_init / vfio_ecap_init) ---- */

function vfioMsiCapLen(vdev: VfioPciDevice, pos: number): number {
  const flags = pciReadConfig(vdev.pdev, pos + PCI_MSI_FLAGS, 2);
  if (flags === undefined) return -EFAULT;
  let len = 10; /* Minimum size */
  if (flags & PCI_MSI_FLAGS_64BIT) len += 4;
  if (flags & PCI_MSI_FLAGS_MASKBIT) len += 10;
  if (vdev.msi_perm !== undefined) return len;
  vdev.msi_perm = initPciCapMsiPerm(len, flags);
  currentKernel().objects.alloc('vfio_pci_msi_perm');
  return len;
}

function testExtendedCaps(vdev: VfioPciDevice): void {
  const pdev = vdev.pdev;
  if (pdev.cfg_size > PCI_CFG_SPACE_SIZE)
    vdev.extended_caps = (pciReadConfig(pdev, PCI_CFG_SPACE_SIZE, 4) ?? 0) !== 0;
}

function vfioCapLen(vdev: VfioPciDevice, cap: number, pos: number): number {
  const pdev = vdev.pdev;
  switch (cap) {
    case PCI_CAP_ID_MSI:
      return vfioMsiCapLen(vdev, pos);
    case PCI_CAP_ID_PCIX: {
      const cmd = pciReadConfig(pdev, pos + PCI_X_CMD, 2) ?? 0;
      if ((cmd >> 12) & 3) {
        testExtendedCaps(vdev);
        return PCI_CAP_PCIX_SIZEOF_V2;
      }
      return PCI_CAP_PCIX_SIZEOF_V0;
    }
    case PCI_CAP_ID_VNDR:
      /* length follows next field */
      return pciReadConfig(pdev, pos + PCI_CAP_FLAGS, 1) ?? 0;
    case PCI_CAP_ID_EXP: {
      testExtendedCaps(vdev);
      const flags = pciReadConfig(pdev, pos + PCI_EXP_FLAGS, 2) ?? 0;
      const type = (flags & PCI_EXP_FLAGS_TYPE) >> 4;
      if ((flags & PCI_EXP_FLAGS_VERS) === 1) return type === PCI_EXP_TYPE_RC_END ? 0xc : 20;
      return type === PCI_EXP_TYPE_RC_END ? 0x2c : 60;
    }
    default:
      currentKernel().printk(
        'warn',
        `${pdev.name}: vfio_cap_len unknown length for pci cap 0x${cap.toString(16)}@0x${pos.toString(16)}`,
      );
      return 0;
  }
}

function vfioExtCapLen(vdev: VfioPciDevice, ecap: number, epos: number): number {
  const pdev = vdev.pdev;
  if (ecap === PCI_EXT_CAP_ID_VNDR) return (pciReadConfig(pdev, epos + 4, 4) ?? 0) >>> 20;
  currentKernel().printk(
    'warn',
    `${pdev.name}: vfio_ext_cap_len unknown length for pci ecap 0x${ecap.toString(16)}@0x${epos.toString(16)}`,
  );
  return 0;
}

/* Fill vconfig from the hardware (dword accesses where aligned) */
function vfioFillVconfigBytes(vdev: VfioPciDevice, offset: number, size: number): void {
  const vc = vcfg(vdev);
  for (let i = 0; i < size; i++) vc[offset + i] = pciReadConfig(vdev.pdev, offset + i, 1) ?? 0;
}

function vfioCapInit(vdev: VfioPciDevice): number {
  const pdev = vdev.pdev;
  const map = cmap(vdev);
  const vc = vcfg(vdev);
  const status = pciReadConfig(pdev, PCI_STATUS, 2) ?? 0;
  if (!(status & PCI_STATUS_CAP_LIST)) return 0; /* Done */
  let pos = pciReadConfig(pdev, PCI_CAPABILITY_LIST, 1) ?? 0;
  /* Mark the previous position in case we want to skip a capability */
  let prev = PCI_CAPABILITY_LIST;
  let caps = 0;
  /* We can bound our loop, capabilities are dword aligned */
  let loops = (PCI_CFG_SPACE_SIZE - PCI_STD_HEADER_SIZEOF) / PCI_CAP_SIZEOF;
  while (pos !== 0 && loops-- > 0) {
    const cap = pciReadConfig(pdev, pos, 1) ?? 0;
    const next = pciReadConfig(pdev, pos + PCI_CAP_LIST_NEXT, 1) ?? 0;
    let len = 0;
    /* ID 0 is a NULL capability, conflicting with our fake PCI_CAP_ID_BASIC */
    if (cap !== 0 && cap <= PCI_CAP_ID_MAX) {
      len = PCI_CAP_LENGTH[cap] ?? 0;
      if (len === 0xff) {
        len = vfioCapLen(vdev, cap, pos);
        if (len < 0) return len;
      }
    }
    if (len === 0) {
      currentKernel().printk('info', `vfio_cap_init: ${pdev.name} hiding cap 0x${cap.toString(16)}`);
      vc[prev] = next;
      pos = next;
      continue;
    }
    /* Sanity check, do we overlap other capabilities? */
    for (let i = 0; i < len; i++) {
      if (map[pos + i] === PCI_CAP_ID_INVALID) continue;
      currentKernel().printk(
        'warn',
        `vfio_cap_init: ${pdev.name} pci config conflict @0x${(pos + i).toString(16)}, was cap 0x${(map[pos + i] ?? 0).toString(16)} now cap 0x${cap.toString(16)}`,
      );
    }
    map.fill(cap, pos, pos + len);
    vfioFillVconfigBytes(vdev, pos, len);
    if (cap === PCI_CAP_ID_PM && vdev.profile.pmPmeVirtualized) {
      /* vfio_update_pm_vconfig_bytes: the user sees no PME support */
      setLe(vc, pos + PCI_PM_PMC, 2, le(vc, pos + PCI_PM_PMC, 2) & ~PCI_PM_CAP_PME_MASK);
      const ctrl = le(vc, pos + PCI_PM_CTRL, 2) & ~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS);
      setLe(vc, pos + PCI_PM_CTRL, 2, ctrl);
    }
    prev = pos + PCI_CAP_LIST_NEXT;
    pos = next;
    caps++;
  }
  /* If we didn't fill any capabilities, clear the status flag */
  if (caps === 0) setLe(vc, PCI_STATUS, 2, le(vc, PCI_STATUS, 2) & ~PCI_STATUS_CAP_LIST);
  return 0;
}

function vfioEcapInit(vdev: VfioPciDevice): number {
  const pdev = vdev.pdev;
  const map = cmap(vdev);
  const vc = vcfg(vdev);
  if (!vdev.extended_caps) return 0;
  let epos = PCI_CFG_SPACE_SIZE;
  let prev = -1;
  let ecaps = 0;
  let loops = (pdev.cfg_size - PCI_CFG_SPACE_SIZE) / PCI_CAP_SIZEOF;
  while (loops-- > 0 && epos >= PCI_CFG_SPACE_SIZE) {
    const header = pciReadConfig(pdev, epos, 4) ?? 0;
    const ecap = header & 0xffff;
    let len = 0;
    let hidden = false;
    if (ecap <= PCI_EXT_CAP_ID_MAX) {
      len = PCI_EXT_CAP_LENGTH[ecap] ?? 0;
      if (len === 0xff) len = vfioExtCapLen(vdev, ecap, epos);
    }
    if (len === 0) {
      currentKernel().printk(
        'info',
        `vfio_ecap_init: ${pdev.name} hiding ecap 0x${ecap.toString(16)}@0x${epos.toString(16)}`,
      );
      /* If not the first in the chain, we can skip over it */
      if (prev >= 0) {
        epos = header >>> 20;
        setLe(vc, prev, 4, ((le(vc, prev, 4) & ~(0xffc << 20)) | (epos << 20)) >>> 0);
        continue;
      }
      /* Otherwise, fill in a placeholder, the direct readfn virtualizes it */
      len = PCI_CAP_SIZEOF;
      hidden = true;
    }
    map.fill(ecap, epos, epos + len);
    vfioFillVconfigBytes(vdev, epos, len);
    /* If we're just using this capability to anchor the list, hide the real ID */
    if (hidden) setLe(vc, epos, 4, (le(vc, epos, 4) & (0xffc << 20)) >>> 0);
    else ecaps++;
    prev = epos;
    epos = header >>> 20;
  }
  if (ecaps === 0) setLe(vc, PCI_CFG_SPACE_SIZE, 4, 0);
  return 0;
}

/**
 * vfio_config_init: the per-device config map and virtual config space,
 * filled from the hardware at open.
 */
export function vfioConfigInit(vdev: VfioPciDevice): number {
  const pdev = vdev.pdev;
  const k = currentKernel();
  const map = new Uint8Array(pdev.cfg_size);
  const vconfig = new Uint8Array(pdev.cfg_size);
  vdev.pci_config_map = map;
  vdev.vconfig = vconfig;
  k.objects.alloc('vfio_pci_vconfig');
  map.fill(PCI_CAP_ID_BASIC, 0, PCI_STD_HEADER_SIZEOF);
  map.fill(PCI_CAP_ID_INVALID, PCI_STD_HEADER_SIZEOF);
  vfioFillVconfigBytes(vdev, 0, PCI_STD_HEADER_SIZEOF);
  vdev.bardirty = true;
  /* For restore after reset */
  for (let i = 0; i < 6; i++) vdev.rbar[i] = le(vconfig, PCI_BASE_ADDRESS_0 + 4 * i, 4);
  vdev.rbar[6] = le(vconfig, PCI_ROM_ADDRESS, 4);
  if (vdev.nointx) vconfig[PCI_INTERRUPT_PIN] = 0;
  let ret = vfioCapInit(vdev);
  if (ret === 0) ret = vfioEcapInit(vdev);
  if (ret !== 0) {
    vfioConfigFree(vdev);
    return ret;
  }
  return 0;
}

export function vfioConfigFree(vdev: VfioPciDevice): void {
  const k = currentKernel();
  if (vdev.vconfig !== undefined) k.objects.free('vfio_pci_vconfig');
  vdev.vconfig = undefined;
  vdev.pci_config_map = undefined;
  if (vdev.msi_perm !== undefined) {
    vdev.msi_perm = undefined;
    k.objects.free('vfio_pci_msi_perm');
  }
}

/* ---- the access path ---- */

/*
 * Find the remaining number of bytes in a dword that match the given
 * position. Stop at either the end of the capability or the dword boundary.
 */
function vfioPciCapRemainingDword(vdev: VfioPciDevice, pos: number): number {
  const map = cmap(vdev);
  const cap = map[pos];
  let i = 1;
  while ((pos + i) % 4 !== 0 && map[pos + i] === cap) i++;
  return i;
}

function vfioConfigDoRw(
  vdev: VfioPciDevice,
  buf: number,
  count: number,
  pos: number,
  iswrite: boolean,
): number {
  const pdev = vdev.pdev;
  if (pos < 0 || pos >= pdev.cfg_size || pos + count > pdev.cfg_size)
    return fail(
      EFAULT,
      `config ${iswrite ? 'write' : 'read'} of ${count} at 0x${pos.toString(16)}: outside the ${pdev.cfg_size}-byte config space`,
    );
  /* Chop accesses into aligned chunks containing no more than a single capability */
  count = Math.min(count, vfioPciCapRemainingDword(vdev, pos));
  if (count >= 4 && pos % 4 === 0) count = 4;
  else if (count >= 2 && pos % 2 === 0) count = 2;
  else count = 1;
  let ret = count;
  const t = perms(vdev.profile);
  const capId = cmap(vdev)[pos] ?? PCI_CAP_ID_INVALID;
  let perm: PermBits | undefined;
  let capStart = 0;
  if (capId === PCI_CAP_ID_INVALID) {
    perm = t.unassigned;
    capStart = pos;
  } else if (capId === PCI_CAP_ID_INVALID_VIRT) {
    perm = t.virt;
    capStart = pos;
  } else if (pos >= PCI_CFG_SPACE_SIZE) {
    perm = t.ecap[capId];
    capStart = vfioFindCapStart(vdev, pos);
  } else {
    perm = capId === PCI_CAP_ID_MSI ? vdev.msi_perm : t.cap[capId];
    if (capId > PCI_CAP_ID_BASIC) capStart = vfioFindCapStart(vdev, pos);
  }
  if (perm === undefined) return -ENOMEM;
  const offset = pos - capStart;
  const bytes = new Uint8Array(4);
  if (iswrite) {
    if (perm.writefn === undefined) return ret;
    if (copyFromUser(bytes, buf, count) !== 0)
      return fail(EFAULT, 'config write: cannot read the user buffer');
    ret = perm.writefn(vdev, pos, count, perm, offset, le(bytes, 0, count));
  } else {
    const out = { val: 0 };
    if (perm.readfn !== undefined) {
      ret = perm.readfn(vdev, pos, count, perm, offset, out);
      if (ret < 0) return ret;
    }
    setLe(bytes, 0, count, out.val);
    if (copyToUser(buf, bytes, count) !== 0) return fail(EFAULT, 'config read: cannot write the user buffer');
  }
  return ret;
}

/** vfio_pci_config_rw: the CONFIG region at index 7 of the device fd */
export function vfioPciConfigRw(
  vdev: VfioPciDevice,
  buf: number,
  count: number,
  ppos: FilePos,
  iswrite: boolean,
): number {
  let done = 0;
  let pos = Number(ppos.pos & VFIO_PCI_OFFSET_MASK);
  while (count > 0) {
    const ret = vfioConfigDoRw(vdev, buf, count, pos, iswrite);
    if (ret < 0) return ret;
    count -= ret;
    done += ret;
    buf += ret;
    pos += ret;
  }
  ppos.pos += BigInt(done);
  return done;
}

/** the hardware's interrupt pin as vconfig shows it (6.x counts INTx from it) */
export function vfioVconfigByte(vdev: VfioPciDevice, off: number): number {
  return vdev.vconfig?.[off] ?? 0;
}
