import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TCE_PCI_READ, TCE_PCI_WRITE } from '../../../src/iommu/index.ts';
import {
  EBUSY,
  EFAULT,
  EINVAL,
  EPERM,
  PROT_READ,
  VFIO_IOMMU_MAP_DMA,
  vfio_iommu_type1_dma_unmap,
} from '../../../src/uapi/index.ts';
import { dirty, logMark, mapDma, physOf, pins, ready, table, unmapDma, userMem } from './helpers.ts';

/*
 * VFIO_IOMMU_MAP_DMA and VFIO_IOMMU_UNMAP_DMA of the seed (4.1): one TCE
 * per IOMMU page, each pinning its host page; no overwrite of a valid
 * entry; rollback of what was built when a page fails.
 */
const RW = TCE_PCI_READ | TCE_PCI_WRITE;

test('MAP builds one TCE per 4 KiB IOMMU page, each pinning the 64 KiB host page it falls in', () => {
  const { host, s } = ready();
  const t = table(host, 1);
  const buf = userMem(s, 0x10000);
  const phys = physOf(s, buf);
  assert.equal(mapDma(s, { vaddr: buf + 0x2000n, iova: 0x10000n, size: 0x3000n }), 0);
  for (let i = 0; i < 3; i++) assert.equal(t.tceAt(16 + i), BigInt(phys + 0x2000 + i * 0x1000) | BigInt(RW));
  assert.equal(t.tceAt(15), 0n);
  assert.equal(t.tceAt(19), 0n);
  assert.equal(pins(host, phys), 3);
  assert.equal(t.validEntries(), 3);
});

test('MAP permissions: READ gives a read TCE, WRITE alone still reads (the PHB always grants read)', () => {
  const { host, s } = ready();
  const t = table(host, 1);
  const ro = userMem(s, 0x10000, PROT_READ);
  assert.equal(
    mapDma(s, { vaddr: ro, iova: 0n, size: 0x1000n, flags: 1 }),
    0,
    'read-only memory pins for read',
  );
  assert.equal(t.tceAt(0), BigInt(physOf(s, ro)) | BigInt(TCE_PCI_READ));
  const wo = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: wo, iova: 0x1000n, size: 0x1000n, flags: 2 }), 0);
  assert.equal(t.tceAt(1), BigInt(physOf(s, wo)) | BigInt(RW));
  assert.equal(
    mapDma(s, { vaddr: ro, iova: 0x2000n, size: 0x1000n, flags: 2 }),
    -EFAULT,
    'no write pin on read-only memory',
  );
  assert.equal(t.tceAt(2), 0n);
});

test('MAP argument checks, in order: argsz, flags, alignment, then the TCE/iova check', () => {
  const { host, s } = ready({ dma32WindowStart: 0x4000_0000n, dma32WindowSize: 0x1000_0000n });
  const t = table(host, 1);
  const buf = userMem(s, 0x10000);
  const base = 0x4000_0000n;
  assert.equal(mapDma(s, { vaddr: buf, iova: base, size: 0x1000n, argsz: 31 }), -EINVAL);
  assert.equal(mapDma(s, { vaddr: buf, iova: base, size: 0x1000n, flags: 4 }), -EINVAL);
  assert.equal(mapDma(s, { vaddr: buf, iova: base, size: 0x800n }), -EINVAL, 'size not IOMMU-page aligned');
  assert.equal(mapDma(s, { vaddr: buf + 0x800n, iova: base, size: 0x1000n }), -EINVAL, 'vaddr not aligned');
  assert.equal(mapDma(s, { vaddr: buf, iova: base, size: 0x1000n, flags: 0 }), -EINVAL, 'no permission');
  assert.equal(mapDma(s, { vaddr: buf, iova: base + 0x800n, size: 0x1000n }), -EINVAL, 'iova not aligned');
  assert.equal(mapDma(s, { vaddr: buf, iova: base - 0x1000n, size: 0x1000n }), -EINVAL, 'below the window');
  assert.equal(
    mapDma(s, { vaddr: buf, iova: base + 0x1000_0000n, size: 0x1000n }),
    -EINVAL,
    'past the window',
  );
  assert.equal(s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, 0x10n), -EFAULT);
  assert.equal(t.validEntries(), 0);
  assert.equal(pins(host, physOf(s, buf)), 0);
  assert.equal(mapDma(s, { vaddr: buf, iova: base + 0x0fff_f000n, size: 0x1000n }), 0, 'the last entry');
  assert.equal(t.tceAt(t.it_offset + t.it_size - 1), BigInt(physOf(s, buf)) | BigInt(RW));
});

test('MAP of size 0 passes every check and maps nothing', () => {
  const { host, s } = ready();
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0n, size: 0n }), 0);
  assert.equal(table(host, 1).validEntries(), 0);
  assert.equal(pins(host, physOf(s, buf)), 0);
});

test('MAP onto a valid TCE is -EBUSY; the pages of this call are rolled back, the old entry kept', () => {
  const { host, s } = ready();
  const t = table(host, 1);
  const a = userMem(s, 0x10000);
  const b = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: a, iova: 0x2000n, size: 0x1000n }), 0);
  const log = logMark(host);
  assert.equal(mapDma(s, { vaddr: b, iova: 0x1000n, size: 0x2000n }), -EBUSY);
  assert.ok(
    log().includes(
      `iommu_tce: tce_iommu_build failed ioba=1000, tce=${(Number(b) + 0x1000 + 3).toString(16)}, ret=-16`,
    ),
    log().join('\n'),
  );
  assert.equal(t.tceAt(1), 0n, 'entry 1 was built, then cleared');
  assert.equal(t.tceAt(2), BigInt(physOf(s, a)) | BigInt(RW));
  assert.equal(pins(host, physOf(s, b)), 0);
  assert.equal(pins(host, physOf(s, a)), 1);
  assert.equal(dirty(host, physOf(s, b)), true, 'the rolled-back entry was writable');
});

test('MAP: a page that cannot be pinned is -EFAULT; the entries before it are rolled back', () => {
  const { host, s } = ready();
  const t = table(host, 1);
  const buf = userMem(s, 0x20000);
  assert.equal(s.p.munmap(buf + 0x10000n, 0x10000), 0);
  assert.equal(mapDma(s, { vaddr: buf + 0xe000n, iova: 0n, size: 0x3000n }), -EFAULT);
  assert.equal(t.validEntries(), 0);
  assert.equal(pins(host, physOf(s, buf)), 0);
});

test('MAP running past the end of the window fails and rolls back (the kernel would write past the table)', () => {
  const { host, s } = ready({ dma32WindowSize: 0x10_0000n });
  const t = table(host, 1);
  const buf = userMem(s, 0x10000);
  const log = logMark(host);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0xff000n, size: 0x2000n }), -EINVAL);
  assert.ok(log().some((l) => l.startsWith('iommu_tce: tce_iommu_build failed ioba=ff000')));
  assert.equal(t.validEntries(), 0);
  assert.equal(pins(host, physOf(s, buf)), 0);
});

test('MAP into a 64 KiB-page table: one TCE per host page', () => {
  const { host, s } = ready({ devices: [{ bdf: '0001:00:01.0', group: 1, tcePageShift: 16 }] });
  const t = table(host, 1);
  assert.equal(t.it_page_shift, 16);
  assert.equal(t.it_size, 0x4000);
  const buf = userMem(s, 0x20000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x10000n, size: 0x20000n }), 0);
  assert.equal(t.tceAt(1), BigInt(physOf(s, buf)) | BigInt(RW));
  assert.equal(t.tceAt(2), BigInt(physOf(s, buf + 0x10000n)) | BigInt(RW));
  assert.equal(
    mapDma(s, { vaddr: buf, iova: 0x8000n, size: 0x10000n }),
    -EINVAL,
    'iova aligned to the table page',
  );
});

test('MAP with host pages smaller than the IOMMU page is -EPERM (and, as in the kernel, the page stays pinned)', () => {
  const { host, s } = ready({
    pageSize: 4096,
    devices: [{ bdf: '0001:00:01.0', group: 1, tcePageShift: 16 }],
  });
  const t = table(host, 1);
  const buf = userMem(s, 0x20000);
  const aligned = (buf + 0xffffn) & ~0xffffn;
  assert.equal(mapDma(s, { vaddr: aligned, iova: 0x10000n, size: 0x10000n }), -EPERM);
  assert.equal(t.validEntries(), 0);
  assert.equal(pins(host, physOf(s, aligned)), 1, 'tce_iommu_build breaks out without put_page');
});

test('UNMAP clears the entries, releases the pages (dirty when the device could write) and writes nothing back', () => {
  const { host, s } = ready();
  const t = table(host, 1);
  const rw = userMem(s, 0x10000);
  const ro = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: rw, iova: 0n, size: 0x2000n }), 0);
  assert.equal(mapDma(s, { vaddr: ro, iova: 0x2000n, size: 0x1000n, flags: 1 }), 0);
  assert.equal(unmapDma(s, { iova: 0n, size: 0x4000n }), 0);
  assert.equal(t.validEntries(), 0);
  assert.equal(pins(host, physOf(s, rw)), 0);
  assert.equal(pins(host, physOf(s, ro)), 0);
  assert.equal(dirty(host, physOf(s, rw)), true);
  assert.equal(dirty(host, physOf(s, ro)), false);
  const after = vfio_iommu_type1_dma_unmap.decode(s.p.mem.read(s.arg, 24));
  assert.equal(after.size, 0x4000n, 'size is not written back');
});

test('UNMAP of a part leaves the rest; unmapping empty entries is fine', () => {
  const { host, s } = ready();
  const t = table(host, 1);
  const buf = userMem(s, 0x10000);
  assert.equal(mapDma(s, { vaddr: buf, iova: 0x10000n, size: 0x4000n }), 0);
  assert.equal(unmapDma(s, { iova: 0x11000n, size: 0x2000n }), 0);
  assert.equal(t.validEntries(), 2);
  assert.equal(pins(host, physOf(s, buf)), 2);
  assert.equal(unmapDma(s, { iova: 0x100000n, size: 0x10000n }), 0);
  assert.equal(t.validEntries(), 2);
});

test('UNMAP argument checks: argsz, flags, size alignment, then iova and the whole range against the window', () => {
  const { host, s } = ready({ dma32WindowStart: 0x4000_0000n, dma32WindowSize: 0x10_0000n });
  const t = table(host, 1);
  const buf = userMem(s, 0x10000);
  const base = 0x4000_0000n;
  assert.equal(mapDma(s, { vaddr: buf, iova: base, size: 0x1000n }), 0);
  assert.equal(unmapDma(s, { iova: base, size: 0x1000n, argsz: 23 }), -EINVAL);
  assert.equal(unmapDma(s, { iova: base, size: 0x1000n, flags: 1 }), -EINVAL);
  assert.equal(unmapDma(s, { iova: base, size: 0x800n }), -EINVAL);
  assert.equal(unmapDma(s, { iova: base + 0x800n, size: 0x1000n }), -EINVAL);
  assert.equal(unmapDma(s, { iova: base - 0x1000n, size: 0x2000n }), -EINVAL);
  assert.equal(unmapDma(s, { iova: base, size: 0x10_1000n }), -EINVAL, 'runs past the window');
  assert.equal(unmapDma(s, { iova: base, size: 1n << 62n }), -EINVAL);
  assert.equal(s.p.ioctl(s.container, 0x3b72, 0x10n), -EFAULT);
  assert.equal(t.validEntries(), 1);
  assert.equal(unmapDma(s, { iova: base, size: 0x10_0000n }), 0, 'the whole window');
  assert.equal(t.validEntries(), 0);
});
