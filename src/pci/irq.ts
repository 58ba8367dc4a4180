import { currentKernel, fail, type Kernel, WARN } from '../kernel/index.ts';
import { EBUSY, EINVAL } from '../uapi/index.ts';
import type { PciDev } from './pci.ts';

/*
 * The host's interrupt lines as drivers see them (kernel/irq): request_irq,
 * free_irq, disable_irq_nosync, enable_irq. A PCI function's INTx is a
 * level-triggered line (pdev->irq); each MSI or MSI-X vector gets a line
 * of its own when allocated (msi.ts). Delivery is synchronous: the handler
 * runs where the device raised the interrupt, in kernel context.
 */
export const IRQ_NONE = 0;
export const IRQ_HANDLED = 1;
export const IRQF_SHARED = 0x80;
/** request_irq leaves the line disabled (depth 1) until enable_irq */
export const IRQF_NO_AUTOEN = 0x80000;

export type IrqHandler = () => number;

export interface IrqAction {
  readonly handler: IrqHandler;
  readonly name: string;
  readonly devId: unknown;
}

export class IrqDesc {
  action: IrqAction | undefined;
  /** disable_irq depth: the line is masked at the interrupt controller while > 0 */
  depth = 0;
  /** the handler ran this many times (/proc/interrupts) */
  count = 0;
  /** an edge arrived while the line was disabled */
  pending = false;
  /** for a level line: is it asserted now */
  level: (() => boolean) | undefined;
  constructor(readonly irq: number) {}
}

const tables = new WeakMap<Kernel, Map<number, IrqDesc>>();

function table(): Map<number, IrqDesc> {
  const k = currentKernel();
  let t = tables.get(k);
  if (t === undefined) {
    t = new Map();
    tables.set(k, t);
  }
  return t;
}

export function irqToDesc(irq: number): IrqDesc | undefined {
  return table().get(irq);
}

/** create the descriptor of a line (the platform does this for INTx lines and MSI vectors) */
export function irqDescAlloc(irq: number): IrqDesc {
  const t = table();
  let d = t.get(irq);
  if (d === undefined) {
    d = new IrqDesc(irq);
    t.set(irq, d);
  }
  return d;
}

export function irqDescFree(irq: number): void {
  table().delete(irq);
}

function deliver(d: IrqDesc): void {
  if (d.action === undefined) return;
  if (d.depth > 0) {
    d.pending = true;
    return;
  }
  d.pending = false;
  d.count++;
  d.action.handler();
}

/** raise a line (an edge on an MSI vector, or INTx going high) */
export function genericHandleIrq(irq: number): void {
  const d = irqToDesc(irq);
  if (d !== undefined) deliver(d);
}

export function requestIrq(
  irq: number,
  handler: IrqHandler,
  flags: number,
  name: string,
  devId: unknown,
): number {
  const d = irqToDesc(irq);
  if (d === undefined) return fail(EINVAL, `request_irq: no interrupt line ${irq}`);
  if (d.action !== undefined)
    return fail(EBUSY, `request_irq: line ${irq} is already taken by ${d.action.name}`);
  d.action = { handler, name, devId };
  /* irq_startup: the first action enables the line */
  d.depth = flags & IRQF_NO_AUTOEN ? 1 : 0;
  d.pending = false;
  currentKernel().objects.alloc('irqaction');
  /* a level line already asserted fires at once */
  if (d.depth === 0 && d.level?.() === true) deliver(d);
  return 0;
}

export function freeIrq(irq: number, devId: unknown): void {
  const d = irqToDesc(irq);
  if (d === undefined || d.action === undefined || d.action.devId !== devId) {
    WARN(true, `Trying to free already-free IRQ ${irq}`);
    return;
  }
  d.action = undefined;
  d.pending = false;
  /* irq_shutdown: the line is off until the next request_irq */
  d.depth = 1;
  currentKernel().objects.free('irqaction');
}

export function disableIrqNosync(irq: number): void {
  const d = irqToDesc(irq);
  if (d !== undefined) d.depth++;
}

export function enableIrq(irq: number): void {
  const d = irqToDesc(irq);
  if (d === undefined) return;
  if (d.depth === 0) {
    WARN(true, `Unbalanced enable for IRQ ${irq}`);
    return;
  }
  /* a level line that is still asserted fires again; an edge that arrived meanwhile is replayed */
  if (--d.depth === 0 && (d.level !== undefined ? d.level() : d.pending)) deliver(d);
}

/** wire a function's INTx pin to its line (the platform's interrupt routing) */
export function pciRouteIntx(pdev: PciDev): void {
  if (pdev.irq === 0) return;
  const d = irqDescAlloc(pdev.irq);
  d.level = () => pdev.intxLine;
  /* the CPU takes the interrupt in kernel context, whatever raised the line */
  const k = currentKernel();
  pdev.intxHandler = () => k.inKernel(() => genericHandleIrq(pdev.irq));
}
