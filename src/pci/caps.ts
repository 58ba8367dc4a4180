import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_LIST_NEXT,
  PCI_CAPABILITY_LIST,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL2,
  PCI_EXP_FLAGS,
  PCI_EXP_LNKCTL,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_PME_ENABLE,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from './regs.ts';

/*
 * Capability structures in config space, built the way device firmware
 * lays them out: a chain from PCI_CAPABILITY_LIST, each entry with its id
 * and next pointer, plus the writable-bit masks the hardware implements.
 * Models describe their capabilities with CapBuilder; the PCI core finds
 * them again with pciFindCapabilityIn.
 */
function set(b: Uint8Array, off: number, size: 1 | 2 | 4, v: number): void {
  for (let i = 0; i < size; i++) b[off + i] = (v >>> (8 * i)) & 0xff;
}

function get(b: Uint8Array, off: number, size: 1 | 2 | 4): number {
  let v = 0;
  for (let i = 0; i < size; i++) v |= (b[off + i] ?? 0) << (8 * i);
  return v >>> 0;
}

export interface MsiCapSpec {
  /** vectors the function can request (1, 2, 4 ... 32): the MMC field */
  readonly vectors: number;
  readonly addr64: boolean;
  readonly perVectorMask?: boolean;
}

export interface MsixCapSpec {
  readonly tableSize: number;
  readonly tableBar: number;
  readonly tableOffset: number;
  readonly pbaBar: number;
  readonly pbaOffset: number;
}

export interface PcieCapSpec {
  /** PCI_EXP_TYPE_* */
  readonly type: number;
  readonly flr: boolean;
}

export class CapBuilder {
  private next = 0x40;
  private lastNext = PCI_CAPABILITY_LIST;

  constructor(
    readonly cfg: Uint8Array,
    readonly wmask: Uint8Array,
  ) {}

  /** append a capability of len bytes; returns its offset */
  add(id: number, len: number): number {
    const off = this.next;
    if (off + len > 0x100) throw new Error(`capability 0x${id.toString(16)} does not fit in config space`);
    this.cfg[off] = id;
    this.cfg[off + PCI_CAP_LIST_NEXT] = 0;
    this.cfg[this.lastNext] = off;
    this.lastNext = off + PCI_CAP_LIST_NEXT;
    set(this.cfg, PCI_STATUS, 2, get(this.cfg, PCI_STATUS, 2) | PCI_STATUS_CAP_LIST);
    this.next = (off + len + 3) & ~3;
    return off;
  }

  msi(s: MsiCapSpec): number {
    const len = 10 + (s.addr64 ? 4 : 0) + (s.perVectorMask ? 10 : 0);
    const off = this.add(PCI_CAP_ID_MSI, len);
    const mmc = Math.log2(s.vectors);
    if (!Number.isInteger(mmc) || mmc < 0 || mmc > 5) throw new Error(`MSI vectors ${s.vectors}`);
    const flags =
      (mmc << 1) | (s.addr64 ? PCI_MSI_FLAGS_64BIT : 0) | (s.perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0);
    set(this.cfg, off + PCI_MSI_FLAGS, 2, flags);
    set(this.wmask, off + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    set(this.wmask, off + PCI_MSI_ADDRESS_LO, 4, 0xfffffffc);
    if (s.addr64) {
      set(this.wmask, off + PCI_MSI_ADDRESS_HI, 4, 0xffffffff);
      set(this.wmask, off + PCI_MSI_DATA_64, 2, 0xffff);
      if (s.perVectorMask) set(this.wmask, off + PCI_MSI_MASK_64, 4, (2 ** s.vectors - 1) >>> 0);
    } else {
      set(this.wmask, off + PCI_MSI_DATA_32, 2, 0xffff);
      if (s.perVectorMask) set(this.wmask, off + PCI_MSI_MASK_32, 4, (2 ** s.vectors - 1) >>> 0);
    }
    return off;
  }

  msix(s: MsixCapSpec): number {
    const off = this.add(PCI_CAP_ID_MSIX, 12);
    set(this.cfg, off + PCI_MSIX_FLAGS, 2, s.tableSize - 1);
    set(this.wmask, off + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    set(this.cfg, off + PCI_MSIX_TABLE, 4, (s.tableOffset | s.tableBar) >>> 0);
    set(this.cfg, off + PCI_MSIX_PBA, 4, (s.pbaOffset | s.pbaBar) >>> 0);
    return off;
  }

  /** PCI Express capability, version 2, endpoint-sized (60 bytes) */
  pcie(s: PcieCapSpec): number {
    const off = this.add(PCI_CAP_ID_EXP, 60);
    set(this.cfg, off + PCI_EXP_FLAGS, 2, 0x2 | (s.type << 4));
    /* DEVCAP: MPS 256 (1), FLR */
    set(this.cfg, off + PCI_EXP_DEVCAP, 4, 0x1 | (s.flr ? PCI_EXP_DEVCAP_FLR : 0));
    /* DEVCTL: MPS 128, MRRS 512; all control bits writable, FLR initiates (reads 0) */
    set(this.cfg, off + PCI_EXP_DEVCTL, 2, 0x2000);
    set(this.wmask, off + PCI_EXP_DEVCTL, 2, s.flr ? 0xffff : 0x7fff);
    set(this.wmask, off + PCI_EXP_LNKCTL, 2, 0x0fff);
    set(this.wmask, off + PCI_EXP_DEVCTL2, 2, 0xffff);
    return off;
  }

  pm(s: { readonly noSoftReset: boolean }): number {
    const off = this.add(PCI_CAP_ID_PM, 8);
    /* PMC: version 3, D3hot PME support */
    set(this.cfg, off + PCI_PM_PMC, 2, 0x0003 | 0x4000);
    set(this.cfg, off + PCI_PM_CTRL, 2, s.noSoftReset ? PCI_PM_CTRL_NO_SOFT_RESET : 0);
    set(this.wmask, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK | PCI_PM_CTRL_PME_ENABLE);
    return off;
  }
}

/** pci_find_capability over raw config bytes: the offset of cap id, or 0 */
export function pciFindCapabilityIn(cfg: Uint8Array, id: number): number {
  if (!(get(cfg, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return 0;
  let pos = (cfg[PCI_CAPABILITY_LIST] ?? 0) & ~3;
  /* bounded as the kernel bounds it: caps are dword aligned within 256 bytes */
  for (let ttl = 48; pos >= 0x40 && ttl > 0; ttl--) {
    if (cfg[pos] === id) return pos;
    pos = (cfg[pos + PCI_CAP_LIST_NEXT] ?? 0) & ~3;
  }
  return 0;
}
