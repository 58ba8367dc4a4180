import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fail, uarg } from '../../src/kernel/index.ts';
import { DmaBuffer, IovaAllocator, VfioContainer, VfioGroup } from '../../src/lib/index.ts';
import {
  EBUSY,
  EEXIST,
  EINVAL,
  ENXIO,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_EEH_PE_OP,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_INFO_DDW,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
  VFIO_IOMMU_SPAPR_TCE_CREATE,
  VFIO_IOMMU_SPAPR_TCE_REMOVE,
  VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
  VFIO_IOMMU_UNMAP_DMA,
  vfio_eeh_pe_op,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_spapr_tce_create,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_spapr_tce_remove,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '../../src/uapi/index.ts';
import { throwsVfio } from './fixture.ts';
import {
  bytesFromUser,
  fromUser,
  SCRIPTED_GROUP,
  SCRIPTED_IOMMU,
  type Script,
  scriptedMachine,
  toUser,
} from './scripted.ts';

function open(container: NonNullable<Script['container']>) {
  const s = scriptedMachine({ container });
  const c = VfioContainer.open(s.p);
  const g = VfioGroup.open(s.p, SCRIPTED_GROUP);
  g.setContainer(c);
  c.setIommu(SCRIPTED_IOMMU);
  assert.equal(c.iommuType, SCRIPTED_IOMMU);
  return {
    s,
    c,
    close() {
      g.close();
      c.close();
      assert.deepEqual(s.host.liveObjects(), s.spawned);
    },
  };
}

/* a 6.x type1 GET_INFO: IOVA ranges around the MSI window and DMA_AVAIL, 8-aligned caps */
function type1Info(arg: bigint, avail = 65535): number {
  const { argsz } = fromUser(arg, vfio_iommu_type1_info);
  const flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
  const need = 24 + 48 + 16;
  if (argsz < need) {
    toUser(
      arg,
      vfio_iommu_type1_info.encode({ argsz: need, flags, iova_pgsizes: 0x40201000n, cap_offset: 0 }),
    );
    return 0;
  }
  const b = new Uint8Array(need);
  const dv = new DataView(b.buffer);
  vfio_iommu_type1_info.encode({ argsz, flags, iova_pgsizes: 0x40201000n, cap_offset: 24 }, b);
  dv.setUint16(24, 1, true);
  dv.setUint16(26, 1, true);
  dv.setUint32(28, 72, true);
  dv.setUint32(32, 2, true);
  dv.setBigUint64(40, 0n, true);
  dv.setBigUint64(48, 0xfedf_ffffn, true);
  dv.setBigUint64(56, 0xfef0_0000n, true);
  dv.setBigUint64(64, 0x7f_ffff_ffffn, true);
  dv.setUint16(72, 3, true);
  dv.setUint16(74, 1, true);
  dv.setUint32(80, avail, true);
  toUser(arg, b);
  return 0;
}

test('type1 GET_INFO: the short-argsz round trip, then ranges and DMA_AVAIL decoded', () => {
  const argszs: number[] = [];
  const o = open((cmd, arg) => {
    assert.equal(cmd, VFIO_IOMMU_GET_INFO);
    argszs.push(fromUser(arg, vfio_iommu_type1_info).argsz);
    return type1Info(arg);
  });
  const info = o.c.iommuInfo();
  assert.deepEqual(argszs, [24, 88]);
  assert.equal(info.flags, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
  assert.equal(info.iovaPgsizes, 0x40201000n);
  assert.equal(info.minPageSize, 0x1000n);
  assert.deepEqual(info.iovaRanges, [
    { start: 0n, end: 0xfedf_ffffn },
    { start: 0xfef0_0000n, end: 0x7f_ffff_ffffn },
  ]);
  assert.equal(info.dmaAvail, 65535);
  assert.equal(info.migration, undefined);
  o.close();
});

test('type1 GET_INFO of a seed-era kernel: 16 bytes back, no caps', () => {
  const o = open((_cmd, arg) => {
    toUser(
      arg,
      vfio_iommu_type1_info
        .encode({ argsz: 24, flags: VFIO_IOMMU_INFO_PGSIZES, iova_pgsizes: 0x1000n })
        .subarray(0, 16),
    );
    return 0;
  });
  assert.deepEqual(o.c.iommuInfo(), { flags: 1, iovaPgsizes: 0x1000n, minPageSize: 0x1000n, raw: [] });
  /* and the allocator over the whole 64-bit space when no ranges are reported */
  assert.deepEqual(o.c.iovas().freeRanges(), [{ start: 0n, end: (1n << 64n) - 1n }]);
  o.close();
});

test('MAP_DMA and UNMAP_DMA: the exact structs; the size the kernel writes back is returned', () => {
  const maps: unknown[] = [];
  const unmaps: unknown[] = [];
  const o = open((cmd, arg) => {
    if (cmd === VFIO_IOMMU_MAP_DMA) {
      const m = fromUser(arg, vfio_iommu_type1_dma_map);
      maps.push(m);
      return m.iova === 0x5000n ? fail(EEXIST, 'VFIO_IOMMU_MAP_DMA: [0x5000, 0x6000) overlaps a mapping') : 0;
    }
    assert.equal(cmd, VFIO_IOMMU_UNMAP_DMA);
    const u = fromUser(arg, vfio_iommu_type1_dma_unmap);
    unmaps.push(u);
    toUser(
      arg,
      vfio_iommu_type1_dma_unmap.encode({
        ...u,
        size: u.flags & VFIO_DMA_UNMAP_FLAG_ALL ? 0x3000n : u.size * 2n,
      }),
    );
    return 0;
  });
  o.c.mapDma({ iova: 0x1000n, size: 0x2000n, vaddr: 0x7f00_0000_0000n });
  o.c.mapDma({ iova: 0x4000n, size: 0x1000n, vaddr: 0x7f00_0000_4000n, write: false });
  o.c.mapDma({ iova: 0x8000n, size: 0x1000n, vaddr: 0x7f00_0000_8000n, read: false });
  throwsVfio(() => o.c.mapDma({ iova: 0x5000n, size: 0x1000n, vaddr: 0x1000n, read: false, write: false }), {
    errno: EEXIST,
    code: 'EEXIST',
    request: 'VFIO_IOMMU_MAP_DMA',
    fd: o.c.fd,
    message: `VFIO_IOMMU_MAP_DMA(iova 0x5000, size 0x1000, vaddr 0x1000, 0) on fd ${o.c.fd} failed: EEXIST (File exists): [0x5000, 0x6000) overlaps a mapping`,
  });
  const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  assert.deepEqual(maps, [
    { argsz: 32, flags: RW, vaddr: 0x7f00_0000_0000n, iova: 0x1000n, size: 0x2000n },
    { argsz: 32, flags: VFIO_DMA_MAP_FLAG_READ, vaddr: 0x7f00_0000_4000n, iova: 0x4000n, size: 0x1000n },
    { argsz: 32, flags: VFIO_DMA_MAP_FLAG_WRITE, vaddr: 0x7f00_0000_8000n, iova: 0x8000n, size: 0x1000n },
    { argsz: 32, flags: 0, vaddr: 0x1000n, iova: 0x5000n, size: 0x1000n },
  ]);
  assert.equal(o.c.unmapDma(0x1000n, 0x1000n), 0x2000n);
  assert.equal(o.c.unmapAll(), 0x3000n);
  assert.deepEqual(unmaps, [
    { argsz: 24, flags: 0, iova: 0x1000n, size: 0x1000n },
    { argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_ALL, iova: 0n, size: 0n },
  ]);
  o.close();
});

test('dirty pages: START, STOP, and GET_BITMAP with a bitmap the kernel fills', () => {
  const seen: string[] = [];
  const o = open((cmd, arg) => {
    assert.equal(cmd, VFIO_IOMMU_DIRTY_PAGES);
    const h = fromUser(arg, vfio_iommu_type1_dirty_bitmap);
    seen.push(`flags ${h.flags} argsz ${h.argsz}`);
    if (h.flags !== 4) return 0;
    const g = vfio_iommu_type1_dirty_bitmap_get.decode(bytesFromUser(uarg(arg) + 8, 40));
    seen.push(
      `iova 0x${g.iova.toString(16)} size 0x${g.size.toString(16)} pgsize 0x${g.bitmap_pgsize.toString(16)} bytes ${g.bitmap_size}`,
    );
    const bits = new Uint8Array(Number(g.bitmap_size));
    bits[0] = 0b1000_0101;
    bits[8] = 0x01; /* page 64 */
    toUser(g.bitmap_data, bits);
    return 0;
  });
  o.c.startDirtyTracking();
  const bm = o.c.dirtyBitmap(0x10_0000n, 65n * 0x1000n, 0x1000n);
  o.c.stopDirtyTracking();
  assert.deepEqual(seen, [
    'flags 1 argsz 8',
    'flags 4 argsz 48',
    'iova 0x100000 size 0x41000 pgsize 0x1000 bytes 16',
    'flags 2 argsz 8',
  ]);
  assert.deepEqual([...bm], [0x85, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  o.close();
});

test('sPAPR: GET_INFO with and without DDW, ENABLE/DISABLE, windows, preregistration, EEH', () => {
  let ddw = false;
  const calls: string[] = [];
  const o = open((cmd, arg) => {
    switch (cmd) {
      case VFIO_IOMMU_GET_INFO: {
        const { argsz } = fromUser(arg, vfio_iommu_spapr_tce_info);
        assert.equal(argsz, 32);
        const v = vfio_iommu_spapr_tce_info.encode({
          argsz,
          flags: ddw ? VFIO_IOMMU_SPAPR_INFO_DDW : 0,
          dma32_window_start: 0,
          dma32_window_size: 0x4000_0000,
          ddw_pgsizes: 0x1011000n,
          ddw_max_dynamic_windows_supported: 1,
          ddw_levels: 5,
        });
        toUser(arg, ddw ? v : v.subarray(0, 16));
        return 0;
      }
      case VFIO_IOMMU_ENABLE:
        calls.push(`enable ${arg}`);
        return calls.length > 1 ? fail(EBUSY, 'VFIO_IOMMU_ENABLE: already enabled') : 0;
      case VFIO_IOMMU_DISABLE:
        calls.push('disable');
        return 0;
      case VFIO_IOMMU_SPAPR_TCE_CREATE: {
        const c = fromUser(arg, vfio_iommu_spapr_tce_create);
        calls.push(
          `create shift ${c.page_shift} size 0x${c.window_size.toString(16)} levels ${c.levels} argsz ${c.argsz}`,
        );
        toUser(arg, vfio_iommu_spapr_tce_create.encode({ ...c, start_addr: 0x800_0000_0000_0000n }));
        return 0;
      }
      case VFIO_IOMMU_SPAPR_TCE_REMOVE: {
        const r = fromUser(arg, vfio_iommu_spapr_tce_remove);
        calls.push(`remove 0x${r.start_addr.toString(16)}`);
        return 0;
      }
      case VFIO_IOMMU_SPAPR_REGISTER_MEMORY:
      case VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: {
        const r = fromUser(arg, vfio_iommu_spapr_register_memory);
        calls.push(
          `${cmd === VFIO_IOMMU_SPAPR_REGISTER_MEMORY ? 'register' : 'unregister'} 0x${r.vaddr.toString(16)}+0x${r.size.toString(16)}`,
        );
        return 0;
      }
      case VFIO_EEH_PE_OP: {
        const e = fromUser(arg, vfio_eeh_pe_op, 12);
        calls.push(`eeh op ${e.op} argsz ${e.argsz}`);
        return e.op === 4 ? 2 : e.op > 9 ? fail(EINVAL, 'VFIO_EEH_PE_OP: unknown op') : 0;
      }
      default:
        return fail(ENXIO, 'unexpected');
    }
  });
  assert.deepEqual(o.c.spaprInfo(), { flags: 0, dma32WindowStart: 0, dma32WindowSize: 0x4000_0000 });
  ddw = true;
  assert.deepEqual(o.c.spaprInfo(), {
    flags: VFIO_IOMMU_SPAPR_INFO_DDW,
    dma32WindowStart: 0,
    dma32WindowSize: 0x4000_0000,
    ddw: { pgsizes: 0x1011000n, maxDynamicWindowsSupported: 1, levels: 5 },
  });
  o.c.enable();
  throwsVfio(() => o.c.enable(), {
    errno: EBUSY,
    code: 'EBUSY',
    request: 'VFIO_IOMMU_ENABLE',
    message: `VFIO_IOMMU_ENABLE() on fd ${o.c.fd} failed: EBUSY (Device or resource busy): already enabled`,
  });
  o.c.disable();
  assert.equal(o.c.createWindow(16, 1n << 32n, 2), 0x800_0000_0000_0000n);
  o.c.removeWindow(0x800_0000_0000_0000n);
  o.c.registerMemory(0x7f00_0000_0000n, 0x10000n);
  o.c.unregisterMemory(0x7f00_0000_0000n, 0x10000n);
  assert.equal(o.c.eehPeOp(4), 2);
  throwsVfio(() => o.c.eehPeOp(42), {
    errno: EINVAL,
    code: 'EINVAL',
    request: 'VFIO_EEH_PE_OP',
    message: /\(op 42\) on fd \d+ failed: EINVAL \(Invalid argument\): unknown op$/,
  });
  assert.deepEqual(calls, [
    'enable 0',
    'enable 0',
    'disable',
    'create shift 16 size 0x100000000 levels 2 argsz 40',
    'remove 0x800000000000000',
    'register 0x7f0000000000+0x10000',
    'unregister 0x7f0000000000+0x10000',
    'eeh op 4 argsz 12',
    'eeh op 42 argsz 12',
  ]);
  o.close();
});

test('DmaBuffer: memory mapped at an allocated IOVA (never in the MSI window), unmapped and freed on close', () => {
  const maps: bigint[][] = [];
  const unmaps: bigint[][] = [];
  const o = open((cmd, arg) => {
    if (cmd === VFIO_IOMMU_GET_INFO) return type1Info(arg);
    if (cmd === VFIO_IOMMU_MAP_DMA) {
      const m = fromUser(arg, vfio_iommu_type1_dma_map);
      maps.push([m.iova, m.size, BigInt(m.flags)]);
      return m.size > 0x10_0000n ? fail(12, 'VFIO_IOMMU_MAP_DMA: RLIMIT_MEMLOCK exceeded') : 0;
    }
    if (cmd === VFIO_IOMMU_UNMAP_DMA) {
      const u = fromUser(arg, vfio_iommu_type1_dma_unmap);
      unmaps.push([u.iova, u.size]);
      return 0;
    }
    return fail(ENXIO, 'unexpected');
  });
  const before = o.s.host.liveObjects();
  const a = DmaBuffer.allocate(o.c, 100);
  const b = DmaBuffer.allocate(o.c, 0x2000, { write: false });
  const c = DmaBuffer.allocate(o.c, 0x1000, { iova: 0xfef0_0000n });
  assert.deepEqual(
    [a, b, c].map((x) => [x.iova, x.size]),
    [
      [0n, 0x1000n],
      [0x1000n, 0x2000n],
      [0xfef0_0000n, 0x1000n],
    ],
  );
  assert.throws(
    () => DmaBuffer.allocate(o.c, 0x1000, { iova: 0xfee0_0000n }),
    /IOVA 0xfee00000\+0x1000 is not free/,
  );
  a.write32(0x10, 0x1234_5678);
  assert.equal(a.read32(0x10), 0x1234_5678);
  assert.deepEqual(
    [...o.s.p.mem.read(a.vaddr + 0x10n, 4)],
    [0x78, 0x56, 0x34, 0x12],
    'the bytes are the process memory',
  );
  a.fill(0xaa, 0x20, 4);
  assert.deepEqual([...a.read(0x1f, 6)], [0, 0xaa, 0xaa, 0xaa, 0xaa, 0]);
  assert.equal(a.iovaAt(0x20), 0x20n);
  assert.throws(() => a.read(0xfff, 2), /outside the 0x1000-byte DMA buffer/);
  /* a refused map frees its IOVA and memory */
  const avail = o.c.iovas().available;
  throwsVfio(() => DmaBuffer.allocate(o.c, 0x20_0000), {
    errno: 12,
    code: 'ENOMEM',
    request: 'VFIO_IOMMU_MAP_DMA',
    message: /: RLIMIT_MEMLOCK exceeded$/,
  });
  assert.equal(o.c.iovas().available, avail);
  b.close();
  const d = DmaBuffer.allocate(o.c, 0x1000, {
    allocator: new IovaAllocator([{ start: 0x4000_0000n, end: 0x4fff_ffffn }]),
  });
  assert.equal(d.iova, 0x4000_0000n);
  for (const x of [a, c, d]) x.close();
  a.close();
  assert.throws(() => a.read32(0), /was closed/);
  assert.deepEqual(maps, [
    [0n, 0x1000n, 3n],
    [0x1000n, 0x2000n, 1n],
    [0xfef0_0000n, 0x1000n, 3n],
    [0x3000n, 0x20_0000n, 3n],
    [0x4000_0000n, 0x1000n, 3n],
  ]);
  assert.deepEqual(unmaps, [
    [0x1000n, 0x2000n],
    [0n, 0x1000n],
    [0xfef0_0000n, 0x1000n],
    [0x4000_0000n, 0x1000n],
  ]);
  assert.deepEqual(o.s.host.liveObjects(), before);
  o.close();
});

test('DmaBuffer after its container fd is closed: only munmap', () => {
  const unmaps: bigint[] = [];
  const o = open((cmd, arg) => {
    if (cmd === VFIO_IOMMU_GET_INFO) return type1Info(arg);
    if (cmd === VFIO_IOMMU_UNMAP_DMA) unmaps.push(fromUser(arg, vfio_iommu_type1_dma_unmap).iova);
    return 0;
  });
  const a = DmaBuffer.allocate(o.c, 0x1000);
  o.c.close();
  a.close();
  assert.deepEqual(unmaps, []);
  o.close();
});

test('the sPAPR allocator is the 32-bit DMA window, in 4 KiB IOMMU pages', () => {
  const o = open((cmd, arg) => {
    assert.equal(cmd, VFIO_IOMMU_GET_INFO);
    toUser(
      arg,
      vfio_iommu_spapr_tce_info
        .encode({ argsz: 32, dma32_window_start: 0x1000_0000, dma32_window_size: 0x1000_0000 })
        .subarray(0, 16),
    );
    return 0;
  });
  o.c.iommuType = 2; /* as after setIommu(VFIO_SPAPR_TCE_IOMMU) */
  const a = IovaAllocator.forContainer(o.c);
  assert.equal(a.align, 0x1000n);
  assert.deepEqual(a.freeRanges(), [{ start: 0x1000_0000n, end: 0x1fff_ffffn }]);
  o.close();
});
