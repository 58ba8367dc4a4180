import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eehDevOpen, eehDevRelease } from '../../../src/iommu/index.ts';
import { runAs } from '../../../src/kernel/index.ts';
import {
  EFAULT,
  EINVAL,
  EIO,
  ENODEV,
  VFIO_CHECK_EXTENSION,
  VFIO_EEH,
  VFIO_EEH_PE_CONFIGURE,
  VFIO_EEH_PE_DISABLE,
  VFIO_EEH_PE_ENABLE,
  VFIO_EEH_PE_GET_STATE,
  VFIO_EEH_PE_INJECT_ERR,
  VFIO_EEH_PE_OP,
  VFIO_EEH_PE_RESET_DEACTIVATE,
  VFIO_EEH_PE_RESET_FUNDAMENTAL,
  VFIO_EEH_PE_RESET_HOT,
  VFIO_EEH_PE_STATE_NORMAL,
  VFIO_EEH_PE_STATE_STOPPED,
  VFIO_EEH_PE_STATE_STOPPED_DMA,
  VFIO_EEH_PE_UNFREEZE_DMA,
  VFIO_EEH_PE_UNFREEZE_IO,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU,
} from '../../../src/uapi/index.ts';
import { tceIommuDriverOps } from '../../../src/vfio/iommu_spapr_tce/index.ts';
import {
  dmaRead,
  dmaWrite,
  eehOp,
  logMark,
  mapDma,
  pe,
  ready,
  session,
  spaprHost,
  userMem,
} from './helpers.ts';

/*
 * VFIO_EEH_PE_OP (vfio_spapr_iommu_eeh_ioctl) over the PE's EEH state,
 * and the PHB freezing a PE on a bad DMA.
 */
const BDF = '0001:00:01.0';

function freeze(host: ReturnType<typeof spaprHost>): void {
  /* a DMA to an entry nobody mapped: the PHB freezes the PE */
  assert.equal(dmaRead(host, BDF, 0x7000_0000n, 4), undefined);
}

test('CHECK_EXTENSION(VFIO_EEH) follows eeh_enabled()', () => {
  const host = spaprHost({ devices: [] });
  const s = session(host);
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_EEH), 1);
  const plat = host.ppc64?.platform;
  assert.ok(plat !== undefined);
  plat.eeh.enabled = false;
  assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_EEH), 0);
});

test('GET_STATE is NORMAL; a faulting DMA freezes the PE (STOPPED) and the next DMA goes nowhere', () => {
  const { host, s } = ready();
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_NORMAL);
  const log = logMark(host);
  freeze(host);
  assert.ok(log().includes('EEH: Frozen PE#0 on PHB#1 detected'), log().join('\n'));
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_STOPPED);
  assert.equal(dmaRead(host, BDF, 0n, 4), undefined, 'the mapped entry is unreachable while frozen');
  const f = host.iommu.faults.at(-1);
  assert.match(f?.reason ?? '', /frozen/);
});

test('UNFREEZE_IO then UNFREEZE_DMA thaw the PE step by step', () => {
  const { host, s } = ready();
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0x1000n }), 0);
  freeze(host);
  assert.equal(eehOp(s, VFIO_EEH_PE_UNFREEZE_IO), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_STOPPED_DMA);
  assert.equal(eehOp(s, VFIO_EEH_PE_UNFREEZE_IO), 0, 'already thawed');
  assert.equal(eehOp(s, VFIO_EEH_PE_UNFREEZE_DMA), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_NORMAL);
  s.p.mem.write(buf, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(dmaRead(host, BDF, 0n, 4), new Uint8Array([1, 2, 3, 4]));
});

test('ENABLE on a frozen PE unfreezes it (eeh_pe_change_owner); DISABLE does nothing', () => {
  const { host, s } = ready();
  freeze(host);
  assert.equal(eehOp(s, VFIO_EEH_PE_DISABLE), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_STOPPED);
  assert.equal(eehOp(s, VFIO_EEH_PE_ENABLE), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_NORMAL);
  const plat = host.ppc64?.platform;
  assert.ok(plat !== undefined);
  plat.eeh.enabled = false;
  assert.equal(eehOp(s, VFIO_EEH_PE_ENABLE), -EIO);
});

test('RESET_HOT freezes the PE and resets its devices; RESET_DEACTIVATE thaws it; CONFIGURE is 0', () => {
  const { host, s } = ready();
  const dev = host.device(BDF);
  assert.ok(dev !== undefined);
  dev.model.mmioWrite(0, 0, 4, 0x1234n);
  assert.equal(eehOp(s, VFIO_EEH_PE_RESET_HOT), 0);
  assert.equal(dev.model.mmioRead(0, 0, 4), 0n, 'the device went through reset');
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_STOPPED);
  assert.equal(pe(host, 1).eeh.hw.resetActive, true);
  assert.equal(eehOp(s, VFIO_EEH_PE_RESET_DEACTIVATE), 0);
  assert.equal(pe(host, 1).eeh.hw.resetActive, false);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_NORMAL);
  assert.equal(eehOp(s, VFIO_EEH_PE_RESET_FUNDAMENTAL), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_RESET_DEACTIVATE), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_CONFIGURE), 0);
});

test('EEH_PE_OP checks: argsz < 12 or flags -EINVAL, bad pointer -EFAULT, unknown op -EINVAL; INJECT_ERR is 6.x', () => {
  const { s } = ready();
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE, { argsz: 11 }), -EINVAL);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE, { flags: 1 }), -EINVAL);
  assert.equal(s.p.ioctl(s.container, VFIO_EEH_PE_OP, 0x10n), -EFAULT);
  assert.equal(eehOp(s, 10), -EINVAL);
  assert.equal(eehOp(s, VFIO_EEH_PE_INJECT_ERR, { argsz: 40, err: { type: 0, func: 0 } }), -EINVAL);
});

test('EEH_PE_OP with no group behind the container is -ENODEV', () => {
  const host = spaprHost();
  const ops = host.inKernel(() => tceIommuDriverOps());
  assert.ok(ops !== undefined);
  const s = session(host);
  const c = runAs(host.kernel, s.p.task, () => ops.open(BigInt(VFIO_SPAPR_TCE_IOMMU)));
  assert.ok(typeof c !== 'number');
  assert.equal(
    runAs(host.kernel, s.p.task, () => ops.ioctl(c, VFIO_EEH_PE_OP, s.arg)),
    -ENODEV,
  );
});

test('6.12: INJECT_ERR freezes the PE; bad type or function is -EINVAL; short argsz -EINVAL', () => {
  const { s } = ready({ kernel: '6.12', type: VFIO_SPAPR_TCE_v2_IOMMU });
  assert.equal(eehOp(s, VFIO_EEH_PE_INJECT_ERR, { argsz: 39, err: { type: 0, func: 0 } }), -EINVAL);
  assert.equal(eehOp(s, VFIO_EEH_PE_INJECT_ERR, { argsz: 40, err: { type: 2, func: 0 } }), -EINVAL);
  assert.equal(eehOp(s, VFIO_EEH_PE_INJECT_ERR, { argsz: 40, err: { type: 1, func: 20 } }), -EINVAL);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_NORMAL);
  assert.equal(eehOp(s, VFIO_EEH_PE_INJECT_ERR, { argsz: 40, err: { type: 0, func: 19 } }), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_STOPPED);
});

test('6.12: EEH_PE_OP applies to every group of a v2 container', () => {
  const { host, s } = ready({
    kernel: '6.12',
    type: VFIO_SPAPR_TCE_v2_IOMMU,
    devices: [
      { bdf: '0001:00:01.0', group: 1 },
      { bdf: '0001:00:02.0', group: 2 },
    ],
  });
  assert.equal(eehOp(s, VFIO_EEH_PE_INJECT_ERR, { argsz: 40, err: { type: 0, func: 0 } }), 0);
  assert.equal(pe(host, 1).eeh.hw.dmaFrozen, true);
  assert.equal(pe(host, 2).eeh.hw.dmaFrozen, true);
  /* GET_STATE returns the first non-zero answer */
  assert.equal(eehOp(s, VFIO_EEH_PE_GET_STATE), VFIO_EEH_PE_STATE_STOPPED);
  assert.equal(eehOp(s, VFIO_EEH_PE_UNFREEZE_IO), 0);
  assert.equal(eehOp(s, VFIO_EEH_PE_UNFREEZE_DMA), 0);
  assert.equal(pe(host, 2).eeh.hw.dmaFrozen, false);
});

test('eeh_dev_open: a passed-through PE is unfrozen on open and its freezes are left to the user', () => {
  const host = spaprHost();
  const dev = host.device(BDF);
  assert.ok(dev !== undefined);
  freeze(host);
  const plat = host.ppc64?.platform;
  assert.ok(plat !== undefined);
  assert.equal(
    host.inKernel(() => eehDevOpen(plat.eeh, dev)),
    0,
  );
  assert.equal(pe(host, 1).eeh.pass_dev_cnt, 1);
  assert.equal(pe(host, 1).eeh.hw.dmaFrozen, false);
  const log = logMark(host);
  freeze(host);
  assert.ok(!log().some((l) => l.startsWith('EEH: Frozen')), 'the owner finds out with GET_STATE');
  host.inKernel(() => eehDevRelease(plat.eeh, dev));
  assert.equal(pe(host, 1).eeh.pass_dev_cnt, 0);
  assert.equal(pe(host, 1).eeh.hw.dmaFrozen, false, 'release changes owner again: thawed');
  assert.equal(
    host.inKernel(() => eehDevOpen(undefined, dev)),
    0,
    'no EEH platform: the stub',
  );
});

test('a DMA write through a read-only TCE faults', () => {
  const { host, s } = ready();
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x1000n, size: 0x1000n, flags: 1 }), 0);
  assert.equal(dmaWrite(host, BDF, 0x1000n, new Uint8Array([9])), false);
  assert.match(host.iommu.faults.at(-1)?.reason ?? '', /does not permit write/);
  assert.deepEqual(s.p.mem.read(buf, 1), new Uint8Array([0]));
});
