import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main as lib, cli as libCli } from '../../examples/canonical.lib.ts';
import { main as raw, cli as rawCli } from '../../examples/canonical.raw.ts';
import { assertTidy, CONFIGS, exampleMachine, runCli } from './run.ts';

/* edu's regions and IRQ indexes as vfio-pci reports them (a conventional PCI function) */
const REGIONS = [
  { index: 0, flags: 7, size: 0x10_0000n, offset: 0n },
  ...[1, 2, 3, 4, 5, 6].map((index) => ({ index, flags: 0, size: 0n, offset: BigInt(index) << 40n })),
  { index: 7, flags: 3, size: 256n, offset: 7n << 40n },
];
const IRQS = [
  { index: 0, flags: 7, count: 1 },
  { index: 1, flags: 9, count: 1 },
  { index: 2, flags: 9, count: 0 },
  { index: 4, flags: 9, count: 1 },
];

const IOMMU_INFO = {
  'x86_64/4.1': { flags: 0, pgsizes: 0xffff_ffff_ffff_f000n },
  'x86_64/6.12': { flags: 3, pgsizes: 0x4020_1000n },
  'ppc64/4.1': { flags: 0, window: [0, 0x4000_0000] },
  'ppc64/6.12': { flags: 0, window: [0, 0x4000_0000] },
} as const;

for (const cfg of CONFIGS) {
  const name = `${cfg.arch}/${cfg.kernel}`;
  const opts = {
    group: 26,
    device: '0000:00:03.0',
    iommu: cfg.arch === 'ppc64' ? ('spapr' as const) : ('type1' as const),
  };

  test(`canonical sequence through the raw calls on ${name}`, () => {
    const r = exampleMachine(cfg, 'edu', '0000:00:03.0', 26);
    const lines: string[] = [];
    const out = raw(r.p, { ...opts, log: (l) => lines.push(l) });
    assert.deepEqual(out, {
      apiVersion: 0,
      groupFlags: 1,
      iommuInfo: IOMMU_INFO[name as keyof typeof IOMMU_INFO],
      dma: { iova: 0n, size: 0x10_0000n, unmapped: 0x10_0000n },
      deviceInfo: { flags: 2, numRegions: 9, numIrqs: 5 },
      regions: [...REGIONS, { index: 8, errno: 'EINVAL' }],
      irqs: [...IRQS.slice(0, 3), { index: 3, errno: 'EINVAL' }, IRQS[3]],
      eventfdIndex: 0,
      reset: undefined,
    });
    assert.equal(lines[0], 'mmap(arguments) = 0');
    assert.ok(lines.includes('VFIO_GROUP_GET_DEVICE_FD("0000:00:03.0") = 2'));
    assert.equal(lines.includes('VFIO_IOMMU_ENABLE = 0'), cfg.arch === 'ppc64');
    assertTidy(r);
  });

  test(`canonical sequence through the library on ${name}: the same answers`, () => {
    const r = exampleMachine(cfg, 'edu', '0000:00:03.0', 26);
    const out = lib(r.p, opts);
    assert.equal(out.apiVersion, 0);
    assert.equal(out.viable, true);
    const want = IOMMU_INFO[name as keyof typeof IOMMU_INFO];
    assert.deepEqual(out.iommu, 'pgsizes' in want ? { pgsizes: want.pgsizes } : { window: want.window });
    assert.deepEqual(out.dma, { iova: 0n, size: 0x10_0000n });
    assert.deepEqual([out.deviceInfo.flags, out.deviceInfo.numRegions, out.deviceInfo.numIrqs], [2, 9, 5]);
    assert.deepEqual(
      out.regions.map((x) => ({ index: x.index, flags: x.flags, size: x.size, offset: x.offset })),
      REGIONS,
    );
    assert.deepEqual(
      out.irqs.map((i) => ({ index: i.index, flags: i.flags, count: i.count })),
      IRQS,
    );
    assert.equal(out.eventfdIndex, 0);
    assert.equal(out.reset, false);
    assertTidy(r);
  });
}

test('both canonical programs (their CLI entries) print the sequence and a clean host', () => {
  const rawOut: string[] = [];
  rawCli([], (l) => rawOut.push(l));
  assert.ok(rawOut.includes('  VFIO_GROUP_GET_DEVICE_FD("0000:00:03.0") = 2'));
  assert.equal(
    rawOut.at(-1),
    'live kernel objects after exit: {"vfio_device":1,"vfio_group":1,"vfio_iommu_driver":1,"vfio_pci_device":1}',
  );
  const libOut: string[] = [];
  libCli(['--arch=ppc64', '--kernel=6.12'], (l) => libOut.push(l));
  assert.ok(libOut.includes('  sPAPR: DMA window 0x0+0x40000000'));
  assert.ok(libOut.includes('  device: 9 regions, 5 IRQ indexes, reset false'));
});

test('an example started by node runs its CLI entry', () => {
  const out = runCli('canonical.raw.ts', ['--kernel=6.12']);
  assert.match(out, /VFIO_IOMMU_MAP_DMA = 0/);
  assert.match(
    out,
    /live kernel objects after exit: \{"vfio_device":1,"vfio_group":1,"vfio_iommu_driver":1,"vfio_pci_device":1\}/,
  );
});
