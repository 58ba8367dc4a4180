import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EACCES,
  EBUSY,
  EFAULT,
  EINVAL,
  EPERM,
  O_RDWR,
  O_WRONLY,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../../../src/index.ts';
import { x86IommuOf } from '../../../src/iommu/index.ts';
import type { Process } from '../../../src/kernel/index.ts';
import type { VfioContainer } from '../../../src/vfio/index.ts';
import { type1Params } from '../../../src/vfio/iommu_type1/index.ts';
import { putS32 } from '../../helpers/user.ts';
import {
  anon,
  bdfOf,
  debug,
  dmesgMark,
  dmesgSince,
  MiB,
  mapDma,
  mappings,
  PAGE,
  PROFILES,
  type Setup,
  setup,
  unmapDma,
} from './helpers.ts';

/*
 * attach_group / detach_group: interrupt isolation, a domain per group or
 * a shared one, replay into a new domain, the IOVA range conflicts of
 * 6.12, and the last group taking every mapping with it.
 */
const PARAM = '/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts';

function writeText(p: Process, path: string, text: string): number {
  const fd = p.open(path, O_WRONLY);
  if (fd < 0) return fd;
  const buf = anon(p, PAGE);
  p.mem.write(buf, new TextEncoder().encode(text));
  const r = p.write(fd, buf, text.length);
  p.close(fd);
  return r;
}

function setContainer(s: Setup, group: number): number {
  const fd = s.p.open(`/dev/vfio/${group}`, O_RDWR);
  assert.ok(fd >= 0);
  s.groups.push(fd);
  return s.p.ioctl(fd, VFIO_GROUP_SET_CONTAINER, putS32(s.p, s.arg, s.container));
}

for (const kernel of PROFILES) {
  describe(`attach_group interrupt isolation (${kernel})`, () => {
    it('-EPERM without interrupt remapping, until allow_unsafe_interrupts is set', () => {
      const s = setup({ kernel, type: undefined, host: { iommu: { intrRemap: false } } });
      assert.equal(s.p.readText(PARAM), 'N\n');
      const mark = dmesgMark(s.host);
      assert.equal(s.p.ioctl(s.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), -EPERM);
      assert.deepEqual(dmesgSince(s.host, mark), [
        'vfio_iommu_type1_attach_group: No interrupt remapping support.  Use the module param "allow_unsafe_interrupts" to enable VFIO IOMMU support on this platform',
      ]);
      assert.equal(s.host.liveObjects().iommu_domain, undefined);
      assert.equal(s.host.liveObjects().vfio_iommu, undefined);
      /* only root may set it */
      const user = s.host.spawn({ uid: 1000 });
      assert.equal(writeText(user, PARAM, '1'), -EACCES);
      assert.equal(writeText(s.p, PARAM, 'maybe'), -EINVAL);
      assert.equal(writeText(s.p, PARAM, 'Y'), 1);
      assert.equal(s.p.readText(PARAM), 'Y\n');
      assert.equal(type1Params(s.host.kernel).allow_unsafe_interrupts, true);
      assert.equal(s.p.ioctl(s.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
    });

    it('dma_entry_limit is a parameter of 6.12 only', () => {
      const s = setup({ kernel });
      const t = s.p.readText('/sys/module/vfio_iommu_type1/parameters/dma_entry_limit');
      assert.equal(t, kernel === '4.1' ? -2 /* ENOENT */ : '65535\n');
    });
  });

  describe(`attach_group domains (${kernel})`, () => {
    it('a second compatible group joins the first domain', () => {
      const s = setup({ kernel, groups: [3, 4] });
      assert.deepEqual(
        debug(s).domains.map((d) => d.groups),
        [[3, 4]],
      );
      assert.equal(s.host.liveObjects().iommu_domain, 1);
    });

    it('a group behind an IOMMU without snoop control: separate domains in 6.12, one in 4.1', () => {
      const s = setup({
        kernel,
        groups: [3, 4],
        before: (h) => x86IommuOf(h.kernel)?.setGroupUnit(4, { cacheCoherent: false }),
      });
      const d = debug(s).domains;
      if (kernel === '6.12') {
        /* SET_IOMMU attaches the newest group first (4), list_add puts the newest domain first */
        assert.deepEqual(
          d.map((x) => [x.groups, x.enforceCacheCoherency]),
          [
            [[3], true],
            [[4], false],
          ],
        );
      } else {
        /* 4.1 asks the bus: one unit without snooping means no IOMMU_CACHE anywhere */
        assert.deepEqual(
          d.map((x) => [x.groups, x.prot]),
          [[[3, 4], 0]],
        );
      }
      assert.equal(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU), 0);
    });

    it('a new domain gets the existing mappings replayed; later mappings go to both', () => {
      const s = setup({
        kernel,
        groups: [3],
        before: (h) => {
          h.addPciDevice({ bdf: bdfOf(4), model: 'generic', iommuGroup: 4 });
          assert.equal(h.bind(bdfOf(4), 'vfio-pci'), 0);
          x86IommuOf(h.kernel)?.setGroupUnit(4, { cacheCoherent: false });
        },
      });
      const mem = anon(s.p, 2n * MiB);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: MiB }), 0);
      assert.equal(setContainer(s, 4), 0);
      assert.equal(mapDma(s, { vaddr: mem + MiB, iova: MiB, size: MiB }), 0);
      assert.equal(s.p.lockedVm, 512);
      const dev3 = s.host.device(bdfOf(3));
      const dev4 = s.host.device(bdfOf(4));
      assert.equal(dev4?.dmaPort?.dmaWrite(0x10n, new Uint8Array([4])), true);
      assert.equal(dev3?.dmaPort?.dmaWrite(MiB + 0x10n, new Uint8Array([3])), true);
      assert.equal(dev4?.dmaPort?.dmaWrite(MiB + 0x11n, new Uint8Array([4])), true);
      assert.deepEqual([...s.p.mem.read(mem + 0x10n, 1), ...s.p.mem.read(mem + MiB + 0x10n, 2)], [4, 3, 4]);
      /* unmapping takes the translation out of both */
      assert.deepEqual(unmapDma(s, 0n, MiB), { ret: 0, size: MiB });
      assert.equal(dev4?.dmaPort?.dmaWrite(0x10n, new Uint8Array([4])), false);
      assert.equal(dev3?.dmaPort?.dmaWrite(0x10n, new Uint8Array([3])), false);
      assert.equal(s.p.lockedVm, 256);
    });

    it('detaching one group keeps the mappings; the last group takes them all', () => {
      const s = setup({ kernel, groups: [3, 4] });
      const mem = anon(s.p, MiB);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: MiB }), 0);
      const [g3, g4] = s.groups as [number, number];
      assert.equal(s.p.ioctl(g4, VFIO_GROUP_UNSET_CONTAINER), 0);
      assert.deepEqual(mappings(s), [[0n, MiB]]);
      assert.equal(s.p.lockedVm, 256);
      /* group 4's device no longer translates through the container */
      const mark = dmesgMark(s.host);
      assert.equal(s.host.device(bdfOf(4))?.dmaPort?.dmaRead(0n, new Uint8Array(4)), false);
      assert.match(dmesgSince(s.host, mark).join('\n'), /Present bit in context entry is clear/);
      const base = s.host.liveObjects().vfio_dma;
      assert.equal(base, 1);
      assert.equal(s.p.ioctl(g3, VFIO_GROUP_UNSET_CONTAINER), 0);
      assert.equal(s.p.lockedVm, 0);
      const live = s.host.liveObjects();
      assert.equal(live.vfio_dma, undefined);
      assert.equal(live.iommu_domain, undefined);
      assert.equal(live.vfio_iommu, undefined);
    });

    it('the driver refuses a group it already has with -EINVAL', () => {
      const s = setup({ kernel });
      const f = s.p.task.files.get(s.container);
      const c = f?.private_data as VfioContainer;
      const group = s.host.iommu.groups.get(3);
      assert.ok(group !== undefined && c.iommu_data !== undefined && c.iommu_driver !== undefined);
      const data = c.iommu_data;
      const ops = c.iommu_driver.ops;
      assert.equal(
        s.host.inKernel(() => ops.attach_group(data, group)),
        -EINVAL,
      );
      assert.equal(debug(s).domains.length, 1);
    });
  });

  describe(`attach_group address conflicts (${kernel})`, () => {
    it('a group whose IOMMU is narrower than an existing mapping', () => {
      const s = setup({
        kernel,
        groups: [3],
        before: (h) => {
          h.addPciDevice({ bdf: bdfOf(4), model: 'generic', iommuGroup: 4 });
          assert.equal(h.bind(bdfOf(4), 'vfio-pci'), 0);
          x86IommuOf(h.kernel)?.setGroupUnit(4, { addressWidth: 32 });
        },
      });
      const mem = anon(s.p, PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 1n << 35n, size: PAGE }), 0);
      /* 6.12: the aperture would exclude the mapping; 4.1: replaying it fails in intel_iommu_map */
      assert.equal(setContainer(s, 4), kernel === '6.12' ? -EINVAL : -EFAULT);
      assert.deepEqual(
        debug(s).domains.map((d) => d.groups),
        [[3]],
      );
      assert.equal(s.host.liveObjects().iommu_domain, 1);
      assert.deepEqual(mappings(s), [[1n << 35n, PAGE]]);
    });

    it('a group that reserves an IOVA range already mapped (6.12 refuses, 4.1 does not look)', () => {
      const s = setup({
        kernel,
        groups: [3],
        before: (h) => {
          h.addPciDevice({ bdf: bdfOf(4), model: 'generic', iommuGroup: 4 });
          assert.equal(h.bind(bdfOf(4), 'vfio-pci'), 0);
          h.iommu.groups.get(4)?.reservedRegions.push({ start: 0x100000n, end: 0x1fffffn, type: 'direct' });
        },
      });
      const mem = anon(s.p, PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0x180000n, size: PAGE }), 0);
      assert.equal(setContainer(s, 4), kernel === '6.12' ? -EINVAL : 0);
      if (kernel === '6.12') {
        /* without the mapping the group comes in and its region leaves the valid ranges */
        assert.deepEqual(unmapDma(s, 0x180000n, PAGE), { ret: 0, size: PAGE });
        assert.equal(
          s.p.ioctl(s.groups[1] ?? -1, VFIO_GROUP_SET_CONTAINER, putS32(s.p, s.arg, s.container)),
          0,
        );
        assert.deepEqual(
          debug(s).iovaRanges.map((r) => [r.start, r.end]),
          [
            [0n, 0xfffffn],
            [0x200000n, 0xfedfffffn],
            [0xfef00000n, (1n << 39n) - 1n],
          ],
        );
        assert.equal(mapDma(s, { vaddr: mem, iova: 0x180000n, size: PAGE }), -EINVAL);
        /* group 4 leaves: its region is valid again */
        assert.equal(s.p.ioctl(s.groups[1] ?? -1, VFIO_GROUP_UNSET_CONTAINER), 0);
        assert.equal(debug(s).iovaRanges.length, 2);
        assert.equal(mapDma(s, { vaddr: mem, iova: 0x180000n, size: PAGE }), 0);
      }
    });

    it('reserved regions covering the whole aperture leave nothing to map (6.12: -EINVAL)', () => {
      const s = setup({
        kernel,
        type: undefined,
        host: { iommu: { reservedRegions: [{ start: 0n, end: (1n << 39n) - 1n, type: 'reserved' }] } },
      });
      assert.equal(
        s.p.ioctl(s.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU),
        kernel === '6.12' ? -EINVAL : 0,
      );
    });

    it('no attach while a vaddr is invalid (6.12: -EBUSY)', () => {
      if (kernel === '4.1') return;
      const s = setup({
        kernel,
        groups: [3],
        before: (h) => {
          h.addPciDevice({ bdf: bdfOf(4), model: 'generic', iommuGroup: 4 });
          assert.equal(h.bind(bdfOf(4), 'vfio-pci'), 0);
        },
      });
      const mem = anon(s.p, PAGE);
      assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: PAGE }), 0);
      assert.equal(unmapDma(s, 0n, PAGE, VFIO_DMA_UNMAP_FLAG_VADDR).ret, 0);
      assert.equal(setContainer(s, 4), -EBUSY);
    });
  });
}
