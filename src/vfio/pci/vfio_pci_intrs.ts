import {
  currentKernel,
  type EventfdCtx,
  eventfdCtxFdget,
  eventfdCtxPut,
  eventfdSignal,
  fail,
} from '../../kernel/index.ts';
import {
  disableIrqNosync,
  enableIrq,
  freeIrq,
  IRQ_HANDLED,
  IRQ_NONE,
  IRQF_NO_AUTOEN,
  IRQF_SHARED,
  PCI_IRQ_MSI,
  PCI_IRQ_MSIX,
  pciAllocIrqVectors,
  pciCheckAndMaskIntx,
  pciCheckAndUnmaskIntx,
  pciFreeIrqVectors,
  pciIntx,
  pciIrqVector,
  pciMsixAllocIrqAt,
  pciMsixCanAllocDyn,
  requestIrq,
} from '../../pci/index.ts';
import {
  EINVAL,
  ENODEV,
  ENOTTY,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_REQ_IRQ_INDEX,
} from '../../uapi/index.ts';
import { isIntx, isIrqNone, type VfioPciDevice, type VfioPciIrqCtx } from './vfio_pci_private.ts';
import { type VirqfdSlot, vfioVirqfdDisable, vfioVirqfdEnable } from './virqfd.ts';

/*
 * Interrupts (drivers/vfio/pci/vfio_pci_intrs.c): INTx with automasking,
 * MSI and MSI-X vectors, each delivered by signalling an eventfd the user
 * gave with VFIO_DEVICE_SET_IRQS, plus the ERR and REQ eventfds. One of
 * INTx, MSI and MSI-X is active at a time (vdev->irq_type).
 */

/* ---- contexts ---- */

function ctxAlloc(vdev: VfioPciDevice, index: number, name: string): VfioPciIrqCtx {
  const ctx: VfioPciIrqCtx = { trigger: undefined, unmask: undefined, mask: undefined, name, masked: false };
  vdev.ctx.set(index, ctx);
  currentKernel().objects.alloc('vfio_pci_irq_ctx');
  return ctx;
}

function ctxFree(vdev: VfioPciDevice, index: number): void {
  if (vdev.ctx.delete(index)) currentKernel().objects.free('vfio_pci_irq_ctx');
}

function slot(ctx: VfioPciIrqCtx, which: 'unmask' | 'mask'): VirqfdSlot {
  return {
    get: () => ctx[which],
    set: (v) => {
      ctx[which] = v;
    },
  };
}

function putTrigger(t: EventfdCtx | undefined): void {
  if (t !== undefined) eventfdCtxPut(t);
}

/* ---- INTx ---- */

function vfioSendIntxEventfd(vdev: VfioPciDevice): void {
  if (isIntx(vdev) && !vdev.virq_disabled) {
    const t = vdev.ctx.get(0)?.trigger;
    if (t !== undefined) eventfdSignal(t);
  }
}

/**
 * vfio_pci_intx_mask: masking comes from the interrupt, the ioctl, or config
 * space via INTx disable; without INTx delivery the physical bit just
 * follows the virtual one. True when the masked state changed.
 */
export function vfioPciIntxMask(vdev: VfioPciDevice): boolean {
  const pdev = vdev.pdev;
  if (!isIntx(vdev)) {
    if (vdev.pci_2_3) pciIntx(pdev, false);
    return false;
  }
  const ctx = vdev.ctx.get(0);
  if (ctx === undefined || ctx.masked) return false;
  /* Can't use check_and_mask here because we always want to mask */
  if (vdev.pci_2_3) pciIntx(pdev, false);
  else disableIrqNosync(pdev.irq);
  ctx.masked = true;
  return true;
}

/*
 * Returns >0 when the interrupt must be sent again: it is still pending,
 * so rather than unmask and take it at once, keep it masked and re-send.
 */
function vfioPciIntxUnmaskHandler(vdev: VfioPciDevice): number {
  const pdev = vdev.pdev;
  let ret = 0;
  if (!isIntx(vdev)) {
    if (vdev.pci_2_3) pciIntx(pdev, true);
    return 0;
  }
  const ctx = vdev.ctx.get(0);
  if (ctx?.masked && !vdev.virq_disabled) {
    if (vdev.pci_2_3) {
      if (!pciCheckAndUnmaskIntx(pdev)) ret = 1;
    } else enableIrq(pdev.irq);
    ctx.masked = ret > 0;
  }
  return ret;
}

export function vfioPciIntxUnmask(vdev: VfioPciDevice): void {
  if (vfioPciIntxUnmaskHandler(vdev) > 0) vfioSendIntxEventfd(vdev);
}

function vfioIntxHandler(vdev: VfioPciDevice): number {
  const ctx = vdev.ctx.get(0);
  if (ctx === undefined) return IRQ_NONE;
  let ret = IRQ_NONE;
  if (!vdev.pci_2_3) {
    disableIrqNosync(vdev.pdev.irq);
    ctx.masked = true;
    ret = IRQ_HANDLED;
  } else if (!ctx.masked && pciCheckAndMaskIntx(vdev.pdev)) {
    ctx.masked = true;
    ret = IRQ_HANDLED;
  }
  if (ret === IRQ_HANDLED) vfioSendIntxEventfd(vdev);
  return ret;
}

/* 4.1: the line is requested when an eventfd is set; 6.12: at enable */
function vfioIntxEnable41(vdev: VfioPciDevice): number {
  if (!isIrqNone(vdev)) return fail(EINVAL, 'SET_IRQS INTx: another interrupt type is active');
  if (vdev.pdev.irq === 0) return fail(ENODEV, `SET_IRQS INTx: ${vdev.pdev.name} has no INTx line`);
  const ctx = ctxAlloc(vdev, 0, '');
  vdev.num_ctx = 1;
  /*
   * If the virtual interrupt is masked, restore it. Devices supporting
   * DisINTx can be masked at the hardware level here, non-PCI-2.3 devices
   * will have to wait until the interrupt is enabled.
   */
  ctx.masked = vdev.virq_disabled;
  if (vdev.pci_2_3) pciIntx(vdev.pdev, !ctx.masked);
  vdev.irq_type = VFIO_PCI_INTX_IRQ_INDEX;
  return 0;
}

function vfioIntxSetSignal41(vdev: VfioPciDevice, fd: number): number {
  const pdev = vdev.pdev;
  const ctx = vdev.ctx.get(0);
  if (ctx === undefined) return -EINVAL;
  if (ctx.trigger !== undefined) {
    freeIrq(pdev.irq, vdev);
    putTrigger(ctx.trigger);
    ctx.trigger = undefined;
  }
  if (fd < 0) return 0; /* Disable only */
  ctx.name = `vfio-intx(${pdev.name})`;
  const trigger = eventfdCtxFdget(fd);
  if (typeof trigger === 'number') return trigger;
  ctx.trigger = trigger;
  const ret = requestIrq(
    pdev.irq,
    () => vfioIntxHandler(vdev),
    vdev.pci_2_3 ? IRQF_SHARED : 0,
    ctx.name,
    vdev,
  );
  if (ret !== 0) {
    ctx.trigger = undefined;
    eventfdCtxPut(trigger);
    return ret;
  }
  /* INTx disable will stick across the new irq setup, disable_irq won't */
  if (!vdev.pci_2_3 && ctx.masked) disableIrqNosync(pdev.irq);
  return 0;
}

function vfioIntxEnable612(vdev: VfioPciDevice, trigger: EventfdCtx | undefined): number {
  const pdev = vdev.pdev;
  if (!isIrqNone(vdev)) return fail(EINVAL, 'SET_IRQS INTx: another interrupt type is active');
  if (pdev.irq === 0) return fail(ENODEV, `SET_IRQS INTx: ${pdev.name} has no INTx line`);
  const ctx = ctxAlloc(vdev, 0, `vfio-intx(${pdev.name})`);
  ctx.trigger = trigger;
  ctx.masked = vdev.virq_disabled;
  if (vdev.pci_2_3) pciIntx(pdev, !ctx.masked);
  vdev.irq_type = VFIO_PCI_INTX_IRQ_INDEX;
  /* without DisINTx the line starts disabled when masked */
  const irqflags = vdev.pci_2_3 ? IRQF_SHARED : ctx.masked ? IRQF_NO_AUTOEN : 0;
  const ret = requestIrq(pdev.irq, () => vfioIntxHandler(vdev), irqflags, ctx.name, ctx);
  if (ret !== 0) {
    vdev.irq_type = VFIO_PCI_NUM_IRQS;
    ctxFree(vdev, 0);
    return ret;
  }
  return 0;
}

function vfioIntxSetSignal612(vdev: VfioPciDevice, trigger: EventfdCtx | undefined): number {
  const ctx = vdev.ctx.get(0);
  if (ctx === undefined) return -EINVAL;
  const old = ctx.trigger;
  ctx.trigger = trigger;
  putTrigger(old);
  return 0;
}

function vfioIntxDisable(vdev: VfioPciDevice): void {
  const pdev = vdev.pdev;
  const ctx = vdev.ctx.get(0);
  if (ctx !== undefined) {
    vfioVirqfdDisable(slot(ctx, 'unmask'));
    vfioVirqfdDisable(slot(ctx, 'mask'));
    if (vdev.profile.intxTriggerFdFirst) {
      freeIrq(pdev.irq, ctx);
      putTrigger(ctx.trigger);
      ctx.trigger = undefined;
    } else vfioIntxSetSignal41(vdev, -1);
  }
  ctxFree(vdev, 0);
  vdev.irq_type = VFIO_PCI_NUM_IRQS;
  vdev.num_ctx = 0;
}

/* ---- MSI / MSI-X ---- */

function vfioMsiEnable(vdev: VfioPciDevice, nvec: number, msix: boolean): number {
  if (!isIrqNone(vdev)) return fail(EINVAL, 'SET_IRQS MSI: another interrupt type is active');
  /* return the number of supported vectors if we can't get all */
  const ret = pciAllocIrqVectors(vdev.pdev, 1, nvec, msix ? PCI_IRQ_MSIX : PCI_IRQ_MSI);
  if (ret < nvec) {
    if (ret > 0) pciFreeIrqVectors(vdev.pdev);
    return ret;
  }
  if (!vdev.profile.msiSparseCtx) {
    vdev.num_ctx = nvec;
    for (let i = 0; i < nvec; i++) ctxAlloc(vdev, i, '');
  }
  vdev.irq_type = msix ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
  /* the virtual hardware field for max msi vectors: log2 of the number of vectors */
  if (!msix) vdev.msi_qmax = Math.ceil(Math.log2(nvec));
  return 0;
}

/* 6.12 vfio_msi_alloc_irq: the vector's line, allocated on demand with dynamic MSI-X */
function vfioMsiAllocIrq(vdev: VfioPciDevice, vector: number, msix: boolean): number {
  const irq = pciIrqVector(vdev.pdev, vector);
  if (irq > 0 || !msix || !vdev.has_dyn_msix) return irq;
  return pciMsixAllocIrqAt(vdev.pdev, vector);
}

function vfioMsiSetVectorSignal(vdev: VfioPciDevice, vector: number, fd: number, msix: boolean): number {
  const pdev = vdev.pdev;
  const sparse = vdev.profile.msiSparseCtx;
  if (!sparse && (vector < 0 || vector >= vdev.num_ctx))
    return fail(EINVAL, `SET_IRQS: vector ${vector} beyond the ${vdev.num_ctx} enabled`);
  let irq = sparse ? -EINVAL : pciIrqVector(pdev, vector);
  let ctx = vdev.ctx.get(vector);
  if (ctx?.trigger !== undefined) {
    irq = pciIrqVector(pdev, vector);
    freeIrq(irq, ctx.trigger);
    putTrigger(ctx.trigger);
    ctx.trigger = undefined;
    /* Interrupt stays allocated, will be freed at MSI-X disable */
  }
  if (sparse && ctx !== undefined) {
    ctxFree(vdev, vector);
    ctx = undefined;
  }
  if (fd < 0) return 0;
  if (irq === -EINVAL) {
    irq = vfioMsiAllocIrq(vdev, vector, msix);
    if (irq < 0) return irq === -EINVAL ? fail(EINVAL, `SET_IRQS: vector ${vector} is not allocated`) : irq;
  }
  const name = `vfio-msi${msix ? 'x' : ''}[${vector}](${pdev.name})`;
  if (ctx === undefined) ctx = ctxAlloc(vdev, vector, name);
  ctx.name = name;
  const trigger = eventfdCtxFdget(fd);
  if (typeof trigger === 'number') {
    if (sparse) ctxFree(vdev, vector);
    return trigger;
  }
  const handler = (): number => {
    eventfdSignal(trigger);
    return IRQ_HANDLED;
  };
  const ret = requestIrq(irq, handler, 0, name, trigger);
  if (ret !== 0) {
    eventfdCtxPut(trigger);
    if (sparse) ctxFree(vdev, vector);
    return ret;
  }
  ctx.trigger = trigger;
  return 0;
}

function vfioMsiSetBlock(
  vdev: VfioPciDevice,
  start: number,
  count: number,
  fds: Int32Array | undefined,
  msix: boolean,
): number {
  if (!vdev.profile.msiSparseCtx && (start >= vdev.num_ctx || start + count > vdev.num_ctx))
    return fail(
      EINVAL,
      `SET_IRQS: vectors ${start}..${start + count - 1} beyond the ${vdev.num_ctx} enabled`,
    );
  let ret = 0;
  let j = start;
  for (let i = 0; i < count && ret === 0; i++, j++)
    ret = vfioMsiSetVectorSignal(vdev, j, fds?.[i] ?? -1, msix);
  if (ret !== 0) for (let k = j - 1; k >= start; k--) vfioMsiSetVectorSignal(vdev, k, -1, msix);
  return ret;
}

function vfioMsiDisable(vdev: VfioPciDevice, msix: boolean): void {
  for (const [i, ctx] of [...vdev.ctx]) {
    vfioVirqfdDisable(slot(ctx, 'unmask'));
    vfioVirqfdDisable(slot(ctx, 'mask'));
    vfioMsiSetVectorSignal(vdev, i, -1, msix);
  }
  for (const i of [...vdev.ctx.keys()]) ctxFree(vdev, i);
  pciFreeIrqVectors(vdev.pdev);
  /* Both disable paths above use pci_intx_for_msi() to clear DisINTx; restore for NoINTx */
  if (vdev.nointx) pciIntx(vdev.pdev, false);
  vdev.irq_type = VFIO_PCI_NUM_IRQS;
  vdev.num_ctx = 0;
}

/* ---- the SET_IRQS actions ---- */

type SetIrqsFn = (
  vdev: VfioPciDevice,
  index: number,
  start: number,
  count: number,
  flags: number,
  data: Uint8Array | undefined,
) => number;

function s32(data: Uint8Array | undefined, i = 0): number {
  if (data === undefined) return -1;
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getInt32(i * 4, true);
}

function byte(data: Uint8Array | undefined, i = 0): number {
  return data?.[i] ?? 0;
}

const vfioPciSetIntxUnmask: SetIrqsFn = (vdev, _index, start, count, flags, data) => {
  if (!isIntx(vdev) || start !== 0 || count !== 1)
    return fail(EINVAL, 'SET_IRQS INTx unmask: INTx is not enabled, or start != 0 or count != 1');
  if (flags & VFIO_IRQ_SET_DATA_NONE) vfioPciIntxUnmask(vdev);
  else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (byte(data)) vfioPciIntxUnmask(vdev);
  } else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    const ctx = vdev.ctx.get(0);
    if (ctx === undefined) return -EINVAL;
    const fd = s32(data);
    if (fd >= 0)
      return vfioVirqfdEnable(
        () => vfioPciIntxUnmaskHandler(vdev),
        () => vfioSendIntxEventfd(vdev),
        slot(ctx, 'unmask'),
        fd,
      );
    vfioVirqfdDisable(slot(ctx, 'unmask'));
  }
  return 0;
};

const vfioPciSetIntxMask: SetIrqsFn = (vdev, _index, start, count, flags, data) => {
  if (!isIntx(vdev) || start !== 0 || count !== 1)
    return fail(EINVAL, 'SET_IRQS INTx mask: INTx is not enabled, or start != 0 or count != 1');
  if (flags & VFIO_IRQ_SET_DATA_NONE) vfioPciIntxMask(vdev);
  else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (byte(data)) vfioPciIntxMask(vdev);
  } else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    return fail(ENOTTY, 'SET_IRQS: INTx MASK with an eventfd: the kernel has no handler for it');
  }
  return 0;
};

const vfioPciSetIntxTrigger: SetIrqsFn = (vdev, _index, start, count, flags, data) => {
  if (isIntx(vdev) && count === 0 && flags & VFIO_IRQ_SET_DATA_NONE) {
    vfioIntxDisable(vdev);
    return 0;
  }
  if (!(isIntx(vdev) || isIrqNone(vdev)) || start !== 0 || count !== 1)
    return fail(
      EINVAL,
      'SET_IRQS INTx trigger: another interrupt type is active, or start != 0 or count != 1',
    );
  if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    const fd = s32(data);
    if (vdev.profile.intxTriggerFdFirst) {
      let trigger: EventfdCtx | undefined;
      if (fd >= 0) {
        const t = eventfdCtxFdget(fd);
        if (typeof t === 'number') return t;
        trigger = t;
      }
      const ret = isIntx(vdev) ? vfioIntxSetSignal612(vdev, trigger) : vfioIntxEnable612(vdev, trigger);
      if (ret !== 0 && trigger !== undefined) eventfdCtxPut(trigger);
      return ret;
    }
    if (isIntx(vdev)) return vfioIntxSetSignal41(vdev, fd);
    let ret = vfioIntxEnable41(vdev);
    if (ret !== 0) return ret;
    ret = vfioIntxSetSignal41(vdev, fd);
    if (ret !== 0) vfioIntxDisable(vdev);
    return ret;
  }
  if (!isIntx(vdev)) return fail(EINVAL, 'SET_IRQS INTx loopback: INTx is not enabled');
  if (flags & VFIO_IRQ_SET_DATA_NONE) vfioSendIntxEventfd(vdev);
  else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (byte(data)) vfioSendIntxEventfd(vdev);
  }
  return 0;
};

const vfioPciSetMsiTrigger: SetIrqsFn = (vdev, index, start, count, flags, data) => {
  const msix = index === VFIO_PCI_MSIX_IRQ_INDEX;
  if (vdev.irq_type === index && count === 0 && flags & VFIO_IRQ_SET_DATA_NONE) {
    vfioMsiDisable(vdev, msix);
    return 0;
  }
  if (!(vdev.irq_type === index || isIrqNone(vdev)))
    return fail(EINVAL, `SET_IRQS ${msix ? 'MSI-X' : 'MSI'}: another interrupt type is active`);
  if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    const fds = new Int32Array(count);
    for (let i = 0; i < count; i++) fds[i] = s32(data, i);
    if (vdev.irq_type === index) return vfioMsiSetBlock(vdev, start, count, fds, msix);
    let ret = vfioMsiEnable(vdev, start + count, msix);
    if (ret !== 0) return ret;
    ret = vfioMsiSetBlock(vdev, start, count, fds, msix);
    if (ret !== 0) vfioMsiDisable(vdev, msix);
    return ret;
  }
  if (vdev.irq_type !== index || (!vdev.profile.msiSparseCtx && start + count > vdev.num_ctx))
    return fail(
      EINVAL,
      `SET_IRQS ${msix ? 'MSI-X' : 'MSI'} loopback: not enabled, or beyond the enabled vectors`,
    );
  for (let i = start; i < start + count; i++) {
    const t = vdev.ctx.get(i)?.trigger;
    if (t === undefined) continue;
    if (flags & VFIO_IRQ_SET_DATA_NONE) eventfdSignal(t);
    else if (flags & VFIO_IRQ_SET_DATA_BOOL && byte(data, i - start)) eventfdSignal(t);
  }
  return 0;
};

function vfioPciSetCtxTriggerSingle(
  get: () => EventfdCtx | undefined,
  set: (t: EventfdCtx | undefined) => void,
  count: number,
  flags: number,
  data: Uint8Array | undefined,
): number {
  /* DATA_NONE/DATA_BOOL enables loopback testing */
  if (flags & VFIO_IRQ_SET_DATA_NONE) {
    const t = get();
    if (t !== undefined) {
      if (count) eventfdSignal(t);
      else {
        eventfdCtxPut(t);
        set(undefined);
      }
      return 0;
    }
  } else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (!count) return fail(EINVAL, 'SET_IRQS: BOOL with count 0');
    const t = get();
    if (byte(data) && t !== undefined) eventfdSignal(t);
    return 0;
  } else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    if (!count) return fail(EINVAL, 'SET_IRQS: EVENTFD with count 0');
    const fd = s32(data);
    if (fd === -1) {
      putTrigger(get());
      set(undefined);
    } else if (fd >= 0) {
      const efd = eventfdCtxFdget(fd);
      if (typeof efd === 'number') return efd;
      putTrigger(get());
      set(efd);
    }
    return 0;
  }
  return fail(EINVAL, 'SET_IRQS: nothing to signal (no eventfd set)');
}

/**
 * 4.1's vfio_pci_set_ctx_trigger_single: no count argument, so loopback
 * always succeeds (and never drops the eventfd), and an fd below -1 is refused.
 */
function vfioPciSetCtxTriggerSingle41(
  get: () => EventfdCtx | undefined,
  set: (t: EventfdCtx | undefined) => void,
  flags: number,
  data: Uint8Array | undefined,
): number {
  /* DATA_NONE/DATA_BOOL enables loopback testing */
  if (flags & VFIO_IRQ_SET_DATA_NONE) {
    const t = get();
    if (t !== undefined) eventfdSignal(t);
    return 0;
  }
  /* count 0 left 4.1 reading a zero-length copy (an oops); refused here, as v4.10 does */
  if (data === undefined || data.length === 0) return fail(EINVAL, 'SET_IRQS: BOOL or EVENTFD with count 0');
  if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    const t = get();
    if (byte(data) && t !== undefined) eventfdSignal(t);
    return 0;
  }
  const fd = s32(data);
  if (fd === -1) {
    putTrigger(get());
    set(undefined);
    return 0;
  }
  if (fd < 0) return fail(EINVAL, `SET_IRQS: eventfd ${fd} (only -1 clears)`);
  const efd = eventfdCtxFdget(fd);
  if (typeof efd === 'number') return efd;
  putTrigger(get());
  set(efd);
  return 0;
}

const vfioPciSetErrTrigger: SetIrqsFn = (vdev, index, start, count, flags, data) => {
  /* 4.1 never checked start and count here, and could not start later without breaking users */
  if (!vdev.profile.errReqCountChecks)
    return vfioPciSetCtxTriggerSingle41(
      () => vdev.err_trigger,
      (t) => {
        vdev.err_trigger = t;
      },
      flags,
      data,
    );
  if (index !== VFIO_PCI_ERR_IRQ_INDEX || start !== 0 || count > 1)
    return fail(EINVAL, 'SET_IRQS ERR: start must be 0 and count at most 1');
  return vfioPciSetCtxTriggerSingle(
    () => vdev.err_trigger,
    (t) => {
      vdev.err_trigger = t;
    },
    count,
    flags,
    data,
  );
};

const vfioPciSetReqTrigger: SetIrqsFn = (vdev, index, start, count, flags, data) => {
  if (!vdev.profile.errReqCountChecks) {
    if (start !== 0 || count !== 1) return fail(EINVAL, 'SET_IRQS REQ: start must be 0 and count 1');
    return vfioPciSetCtxTriggerSingle41(
      () => vdev.req_trigger,
      (t) => {
        vdev.req_trigger = t;
      },
      flags,
      data,
    );
  }
  if (index !== VFIO_PCI_REQ_IRQ_INDEX || start !== 0 || count > 1)
    return fail(EINVAL, 'SET_IRQS REQ: start must be 0 and count at most 1');
  return vfioPciSetCtxTriggerSingle(
    () => vdev.req_trigger,
    (t) => {
      vdev.req_trigger = t;
    },
    count,
    flags,
    data,
  );
};

/** vfio_pci_set_irqs_ioctl: dispatch by index and action; no handler is -ENOTTY */
export function vfioPciSetIrqsIoctl(
  vdev: VfioPciDevice,
  flags: number,
  index: number,
  start: number,
  count: number,
  data: Uint8Array | undefined,
): number {
  let func: SetIrqsFn | undefined;
  const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_MASK) func = vfioPciSetIntxMask;
      else if (action === VFIO_IRQ_SET_ACTION_UNMASK) func = vfioPciSetIntxUnmask;
      else if (action === VFIO_IRQ_SET_ACTION_TRIGGER) func = vfioPciSetIntxTrigger;
      break;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
      /* MASK/UNMASK of MSI(-X): the kernel never exported masking for them (-ENOTTY) */
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) func = vfioPciSetMsiTrigger;
      break;
    case VFIO_PCI_ERR_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER && vdev.pdev.is_pcie) func = vfioPciSetErrTrigger;
      break;
    case VFIO_PCI_REQ_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) func = vfioPciSetReqTrigger;
      break;
  }
  if (func === undefined)
    return fail(ENOTTY, `SET_IRQS: no handler for index ${index} with action flags 0x${action.toString(16)}`);
  return func(vdev, index, start, count, flags, data);
}

/** has_dyn_msix, decided at enable */
export function vfioPciProbeDynMsix(vdev: VfioPciDevice): boolean {
  return vdev.profile.msixResizable && pciMsixCanAllocDyn(vdev.pdev);
}
