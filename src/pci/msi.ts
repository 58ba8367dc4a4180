import { currentKernel, devName, fail } from '../kernel/index.ts';
import { EBUSY, EINVAL, ENOSPC, ERANGE } from '../uapi/index.ts';
import { pciIntx } from './access.ts';
import { pciSubsystem } from './bus.ts';
import { genericHandleIrq, irqDescAlloc, irqDescFree, irqToDesc } from './irq.ts';
import type { PciDev } from './pci.ts';
import {
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
} from './regs.ts';

/*
 * MSI and MSI-X as the host kernel sets them up (drivers/pci/msi):
 * vectors come out of the platform's budget (host.pci.msiVectorBudget),
 * each gets an interrupt line, and the function is programmed with the
 * message address/data (the MSI capability, or the MSI-X table in its
 * BAR). When the device signals vector n, the line of vector n fires.
 */
export const PCI_IRQ_INTX = 1 << 0;
export const PCI_IRQ_MSI = 1 << 1;
export const PCI_IRQ_MSIX = 1 << 2;

/** where x86 MSIs are addressed (the local APIC window) */
const MSI_ADDRESS = 0xfee00000;

interface MsiState {
  readonly kind: 'msi' | 'msix';
  /** vector index -> interrupt line */
  readonly irqs: (number | undefined)[];
  /** MSI: the vectors enabled (MME) */
  nvec: number;
}

function stateOf(pdev: PciDev): MsiState | undefined {
  return pdev.msiState as MsiState | undefined;
}

/** pci_msi_vec_count: vectors the MSI capability offers, or -EINVAL without one */
export function pciMsiVecCount(pdev: PciDev): number {
  if (pdev.msi_cap === 0) return -EINVAL;
  const flags = pdev.cfg.read(pdev.msi_cap + PCI_MSI_FLAGS, 2);
  return 1 << ((flags & PCI_MSI_FLAGS_QMASK) >> 1);
}

/** pci_msix_vec_count: MSI-X table size, or -EINVAL without MSI-X */
export function pciMsixVecCount(pdev: PciDev): number {
  if (pdev.msix_cap === 0) return -EINVAL;
  return (pdev.cfg.read(pdev.msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1;
}

export function pciMsiEnabled(pdev: PciDev): boolean {
  return stateOf(pdev)?.kind === 'msi';
}

export function pciMsixEnabled(pdev: PciDev): boolean {
  return stateOf(pdev)?.kind === 'msix';
}

/** pci_msix_can_alloc_dyn: can MSI-X vectors be added after enabling (6.x, x86 irq domains) */
export function pciMsixCanAllocDyn(pdev: PciDev): boolean {
  return pdev.msix_cap !== 0 && pciSubsystem().msixDynamicAlloc;
}

function budgetFree(): number {
  const pci = pciSubsystem();
  return pci.msiVectorBudget - pci.msiVectorsInUse;
}

function allocLine(): number {
  const pci = pciSubsystem();
  const irq = pci.nextMsiIrq++;
  irqDescAlloc(irq);
  pci.msiVectorsInUse++;
  currentKernel().objects.alloc('msi_desc');
  return irq;
}

function freeLine(irq: number): void {
  const d = irqToDesc(irq);
  if (d?.action !== undefined)
    currentKernel().printk(
      'warn',
      `WARNING: free_msi_irqs: irq ${irq} still has an action (${d.action.name})`,
    );
  irqDescFree(irq);
  pciSubsystem().msiVectorsInUse--;
  currentKernel().objects.free('msi_desc');
}

function msixTable(pdev: PciDev): { bar: number; off: number } {
  const t = pdev.cfg.read(pdev.msix_cap + PCI_MSIX_TABLE, 4);
  return { bar: t & PCI_MSIX_TABLE_BIR, off: (t & PCI_MSIX_TABLE_OFFSET) >>> 0 };
}

/* The table lives in device memory: the host writes it like any MMIO, decode enabled or not (6.x enables it around the write) */
function msixWriteEntry(pdev: PciDev, entry: number, irq: number | undefined): void {
  const { bar, off } = msixTable(pdev);
  const base = off + entry * PCI_MSIX_ENTRY_SIZE;
  if (irq === undefined) {
    pdev.model.mmioWrite(bar, base + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, BigInt(PCI_MSIX_ENTRY_CTRL_MASKBIT));
    return;
  }
  pdev.model.mmioWrite(bar, base + PCI_MSIX_ENTRY_LOWER_ADDR, 4, BigInt(MSI_ADDRESS));
  pdev.model.mmioWrite(bar, base + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0n);
  pdev.model.mmioWrite(bar, base + PCI_MSIX_ENTRY_DATA, 4, BigInt(irq & 0xff));
  pdev.model.mmioWrite(bar, base + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0n);
}

function programMsi(pdev: PciDev, st: MsiState): void {
  const pos = pdev.msi_cap;
  let flags = pdev.cfg.read(pos + PCI_MSI_FLAGS, 2);
  const first = st.irqs[0] ?? 0;
  pdev.configWrite(pos + PCI_MSI_ADDRESS_LO, 4, MSI_ADDRESS);
  if (flags & PCI_MSI_FLAGS_64BIT) {
    pdev.configWrite(pos + PCI_MSI_ADDRESS_HI, 4, 0);
    pdev.configWrite(pos + PCI_MSI_DATA_64, 2, first & 0xffff);
  } else pdev.configWrite(pos + PCI_MSI_DATA_32, 2, first & 0xffff);
  const mme = Math.ceil(Math.log2(st.nvec));
  flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (mme << 4) | PCI_MSI_FLAGS_ENABLE;
  pdev.configWrite(pos + PCI_MSI_FLAGS, 2, flags);
}

function programMsix(pdev: PciDev, st: MsiState): void {
  const pos = pdev.msix_cap;
  const flags = pdev.cfg.read(pos + PCI_MSIX_FLAGS, 2);
  pdev.configWrite(pos + PCI_MSIX_FLAGS, 2, flags | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  st.irqs.forEach((irq, i) => {
    if (irq !== undefined) msixWriteEntry(pdev, i, irq);
  });
  pdev.configWrite(pos + PCI_MSIX_FLAGS, 2, (flags | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);
}

function install(pdev: PciDev, st: MsiState): void {
  pdev.msiState = st;
  const k = currentKernel();
  pdev.msiHandler = (v) => {
    const s = stateOf(pdev);
    const irq = s?.irqs[v];
    /* the message lands on the CPU, which takes it in kernel context */
    if (irq !== undefined && (s?.kind === 'msix' || v < (s?.nvec ?? 0)))
      k.inKernel(() => genericHandleIrq(irq));
  };
  /* pci_intx_for_msi: INTx is off while MSI/MSI-X is on */
  pciIntx(pdev, false);
  if (st.kind === 'msi') programMsi(pdev, st);
  else programMsix(pdev, st);
}

/**
 * pci_alloc_irq_vectors(pdev, min, max, PCI_IRQ_MSI or PCI_IRQ_MSIX): the
 * number of vectors granted (between min and max), or -errno. Fewer than
 * requested when the platform's budget or the function's capability is
 * short; -ENOSPC when not even min fit.
 */
export function pciAllocIrqVectors(pdev: PciDev, min: number, max: number, flags: number): number {
  /* __pci_enable_msi(x)_range check the range before anything else */
  if (max < min) return fail(ERANGE, 'pci_alloc_irq_vectors: max < min');
  if (stateOf(pdev) !== undefined) return fail(EINVAL, `${devName(pdev)}: MSI or MSI-X is already enabled`);
  if (flags & PCI_IRQ_MSIX) {
    const hw = pciMsixVecCount(pdev);
    if (hw < 0) return fail(EINVAL, `${devName(pdev)}: no MSI-X capability`);
    const granted = Math.min(max, hw, budgetFree());
    if (granted < min) return fail(ENOSPC, `${devName(pdev)}: only ${budgetFree()} interrupt vectors left`);
    const st: MsiState = { kind: 'msix', irqs: [], nvec: granted };
    for (let i = 0; i < granted; i++) st.irqs.push(allocLine());
    install(pdev, st);
    return granted;
  }
  if (flags & PCI_IRQ_MSI) {
    const hw = pciMsiVecCount(pdev);
    if (hw < 0) return fail(EINVAL, `${devName(pdev)}: no MSI capability`);
    /* multiple-message MSI takes a naturally aligned power-of-two block of vectors */
    const roundUp = (n: number): number => 2 ** Math.ceil(Math.log2(n));
    let want = Math.min(max, hw);
    while (want >= 1 && roundUp(want) > budgetFree()) want = roundUp(want) / 2;
    if (want < min || want < 1)
      return fail(ENOSPC, `${devName(pdev)}: only ${budgetFree()} interrupt vectors left`);
    const st: MsiState = { kind: 'msi', irqs: [], nvec: want };
    for (let i = 0; i < want; i++) st.irqs.push(allocLine());
    pciSubsystem().msiVectorsInUse += roundUp(want) - want;
    install(pdev, st);
    return want;
  }
  return fail(EINVAL, 'pci_alloc_irq_vectors: no interrupt type requested');
}

/** pci_free_irq_vectors: the function back on INTx, its vectors back to the platform */
export function pciFreeIrqVectors(pdev: PciDev): void {
  const st = stateOf(pdev);
  if (st === undefined) return;
  if (st.kind === 'msi') {
    const pos = pdev.msi_cap;
    const flags = pdev.cfg.read(pos + PCI_MSI_FLAGS, 2);
    pdev.configWrite(pos + PCI_MSI_FLAGS, 2, flags & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
    const block = 2 ** Math.ceil(Math.log2(st.nvec));
    pciSubsystem().msiVectorsInUse -= block - st.nvec;
  } else {
    st.irqs.forEach((irq, i) => {
      if (irq !== undefined) msixWriteEntry(pdev, i, undefined);
    });
    const pos = pdev.msix_cap;
    const flags = pdev.cfg.read(pos + PCI_MSIX_FLAGS, 2);
    pdev.configWrite(pos + PCI_MSIX_FLAGS, 2, flags & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL));
  }
  for (const irq of st.irqs) if (irq !== undefined) freeLine(irq);
  pdev.msiState = undefined;
  pdev.msiHandler = undefined;
  pciIntx(pdev, true);
}

/** pci_irq_vector: the interrupt line of vector nr, or -EINVAL */
export function pciIrqVector(pdev: PciDev, nr: number): number {
  const st = stateOf(pdev);
  if (st === undefined) return nr === 0 && pdev.irq !== 0 ? pdev.irq : -EINVAL;
  return st.irqs[nr] ?? -EINVAL;
}

/** pci_msix_alloc_irq_at: add MSI-X vector `index` to an enabled function (dynamic MSI-X) */
export function pciMsixAllocIrqAt(pdev: PciDev, index: number): number {
  const st = stateOf(pdev);
  if (st?.kind !== 'msix' || !pciMsixCanAllocDyn(pdev))
    return fail(EINVAL, `${devName(pdev)}: dynamic MSI-X allocation is not possible`);
  if (index >= pciMsixVecCount(pdev))
    return fail(EINVAL, `${devName(pdev)}: MSI-X index ${index} out of range`);
  if (st.irqs[index] !== undefined) return fail(EBUSY, `${devName(pdev)}: MSI-X index ${index} is allocated`);
  if (budgetFree() < 1) return fail(ENOSPC, `${devName(pdev)}: no interrupt vector left`);
  const irq = allocLine();
  st.irqs[index] = irq;
  msixWriteEntry(pdev, index, irq);
  return irq;
}

/** pci_restore_msi_state: after a reset, program the function again from the kernel's records */
export function pciRestoreMsiState(pdev: PciDev): void {
  const st = stateOf(pdev);
  if (st === undefined) return;
  pciIntx(pdev, false);
  if (st.kind === 'msi') programMsi(pdev, st);
  else programMsix(pdev, st);
}
