import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  IommuTable,
  iommuDirectionToTcePerm,
  iommuTceCheckGpa,
  iommuTceCheckIoba,
  iommuTceClearParamCheck,
  iommuTceClearParamCheck6,
  iommuTceDirection,
  iommuTcePutParamCheck,
  iommuTcePutParamCheck6,
  TCE_PCI_READ,
  TCE_PCI_WRITE,
  tceAddr,
  tcePerm,
} from '../../../src/iommu/index.ts';
import { EINVAL } from '../../../src/uapi/index.ts';

/*
 * struct iommu_table as the hardware sees it: 8-byte TCEs, the real
 * address above bit 12, READ/WRITE in bits 0 and 1; and the SPAPR TCE
 * parameter checks of both kernel generations.
 */
function tbl(offset = 0, size = 1024, pageShift = 12): IommuTable {
  return new IommuTable({ index: 0x10000, offset, size, pageShift });
}

test('TCE values: address | READ | WRITE, 8 bytes an entry, exact above 4 GiB', () => {
  const t = tbl();
  const phys = 0x12_3456_7000;
  t.build(5, 2, phys, DMA_BIDIRECTIONAL);
  assert.equal(t.tceAt(5), BigInt(phys) | 3n);
  assert.equal(t.tceAt(6), BigInt(phys + 0x1000) | 3n);
  const arr = t.tceArray;
  assert.equal(arr.length, 1024);
  assert.equal(arr[5], BigInt(phys) | 3n);
  assert.equal(arr[4], 0n);
  assert.equal(t.get(5), phys + 3);
  assert.equal(t.addr(5), phys);
  assert.equal(t.perm(5), TCE_PCI_READ | TCE_PCI_WRITE);
  assert.equal(tceAddr(t.get(6)), phys + 0x1000);
  assert.equal(tcePerm(t.get(6)), 3);
});

test('the PHB grants read with every TCE; write unless the DMA goes to the device only', () => {
  const t = tbl();
  t.build(0, 1, 0x1_0000_0000, DMA_TO_DEVICE);
  t.build(1, 1, 0x1_0000_0000, DMA_FROM_DEVICE);
  t.build(2, 1, 0x1_0000_0000, DMA_BIDIRECTIONAL);
  assert.equal(t.perm(0), TCE_PCI_READ);
  assert.equal(t.perm(1), TCE_PCI_READ | TCE_PCI_WRITE);
  assert.equal(t.perm(2), TCE_PCI_READ | TCE_PCI_WRITE);
  t.free(0, 3);
  assert.equal(t.validEntries(), 0);
});

test('entries are absolute: a window at it_offset starts there; outside it reads 0 and writes nowhere', () => {
  const t = tbl(0x40000, 16);
  assert.equal(t.windowStart, 0x4000_0000n);
  assert.equal(t.windowSize, 0x10000n);
  t.build(0x40000, 1, 0x2_0000_0000, DMA_BIDIRECTIONAL);
  assert.equal(t.tceAt(0x40000), 0x2_0000_0003n);
  assert.equal(t.tceAt(0), 0n);
  assert.equal(t.contains(0x3ffff), false);
  assert.equal(t.contains(0x4000f), true);
  assert.equal(t.contains(0x40010), false);
  t.free(0x3fff0, 0x100);
  assert.equal(t.validEntries(), 0);
});

test('xchg (6.x) replaces an entry, returns the old address and direction; DMA_NONE clears', () => {
  const t = tbl();
  assert.deepEqual(t.xchg(3, 0x1_0000_0000, DMA_FROM_DEVICE), { hpa: 0, direction: DMA_NONE });
  assert.equal(t.perm(3), 3, 'write implies read');
  assert.deepEqual(t.xchg(3, 0x1_0001_0000, DMA_TO_DEVICE), {
    hpa: 0x1_0000_0000,
    direction: DMA_BIDIRECTIONAL,
  });
  assert.deepEqual(t.xchg(3, 0, DMA_NONE), { hpa: 0x1_0001_0000, direction: DMA_TO_DEVICE });
  assert.equal(t.tceAt(3), 0n);
});

test('a huge window costs what is written: chunks appear on first write, clearing skips the rest', () => {
  const t = tbl(1 << 20, 2 ** 30, 16);
  assert.equal(t.nextPopulated(t.it_offset), t.it_offset + t.it_size);
  t.build(t.it_offset + 3 * 65536 + 7, 1, 0x1_0000_0000, DMA_BIDIRECTIONAL);
  assert.equal(t.nextPopulated(t.it_offset), t.it_offset + 3 * 65536);
  assert.equal(t.nextPopulated(t.it_offset + 3 * 65536 + 100), t.it_offset + 3 * 65536 + 100);
  assert.equal(t.validEntries(), 1);
});

test('iommu_tce_direction / iommu_direction_to_tce_perm', () => {
  assert.equal(iommuTceDirection(3), DMA_BIDIRECTIONAL);
  assert.equal(iommuTceDirection(0x1000n | 1n), DMA_TO_DEVICE);
  assert.equal(iommuTceDirection(2), DMA_FROM_DEVICE);
  assert.equal(iommuTceDirection(0x5000), DMA_NONE);
  assert.equal(iommuDirectionToTcePerm(DMA_BIDIRECTIONAL), 3);
  assert.equal(iommuDirectionToTcePerm(DMA_FROM_DEVICE), TCE_PCI_WRITE);
  assert.equal(iommuDirectionToTcePerm(DMA_TO_DEVICE), TCE_PCI_READ);
  assert.equal(iommuDirectionToTcePerm(DMA_NONE), 0);
});

test('iommu_tce_put_param_check (4.1): each -EINVAL branch', () => {
  const t = tbl(0x100, 0x100);
  const ok = 0x100000n;
  assert.equal(iommuTcePutParamCheck(t, ok, 0x7000n | 1n), 0);
  assert.equal(iommuTcePutParamCheck(t, ok, 0x7000n), -EINVAL, 'no permission bit');
  assert.equal(iommuTcePutParamCheck(t, ok, 0x7004n | 1n), -EINVAL, 'bits outside page mask | R | W');
  assert.equal(iommuTcePutParamCheck(t, ok + 0x10n, 0x7000n | 2n), -EINVAL, 'ioba not aligned');
  assert.equal(iommuTcePutParamCheck(t, 0xff000n, 0x7000n | 3n), -EINVAL, 'below it_offset');
  assert.equal(iommuTcePutParamCheck(t, 0x1ff000n, 0x7000n | 3n), 0, 'the last entry');
  assert.equal(iommuTcePutParamCheck(t, 0x200000n, 0x7000n | 3n), -EINVAL, 'past the window');
});

test('iommu_tce_clear_param_check (4.1): the whole range must be inside', () => {
  const t = tbl(0x100, 0x100);
  assert.equal(iommuTceClearParamCheck(t, 0x100000n, 0n, 0x100n), 0);
  assert.equal(iommuTceClearParamCheck(t, 0x100000n, 1n, 1n), -EINVAL, 'only 0 can be written');
  assert.equal(iommuTceClearParamCheck(t, 0x100800n, 0n, 1n), -EINVAL);
  assert.equal(iommuTceClearParamCheck(t, 0xff000n, 0n, 1n), -EINVAL);
  assert.equal(iommuTceClearParamCheck(t, 0x101000n, 0n, 0x100n), -EINVAL);
});

test('6.x check macros evaluate to 1, and only look at the first page', () => {
  const t = tbl(0x100, 0x100);
  assert.equal(iommuTceCheckIoba(12, 0x100, 0x100, 0x1ff000n, 1000), 0, 'npages is not checked');
  assert.equal(iommuTceCheckIoba(12, 0x100, 0x100, 0x200000n, 1), -EINVAL);
  assert.equal(iommuTceCheckGpa(12, 0x1001n), -EINVAL);
  assert.equal(iommuTcePutParamCheck6(t, 0x100000n, 0x7000n), 0);
  assert.equal(iommuTcePutParamCheck6(t, 0x100800n, 0x7000n), 1);
  assert.equal(iommuTcePutParamCheck6(t, 0x100000n, 0x7800n), 1);
  assert.equal(iommuTceClearParamCheck6(t, 0x1ff000n, 0n, 0x1000), 0);
  assert.equal(iommuTceClearParamCheck6(t, 0x100000n, 5n, 1), 1);
});
