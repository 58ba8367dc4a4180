import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cli, main } from '../../examples/edu_driver.ts';
import { assertTidy, CONFIGS, exampleMachine } from './run.ts';

/* how each host's IOMMU logs the refused write (intel-iommu / pnv-iommu as the kernel prints them) */
const FAULT = {
  'x86_64/4.1': 'dmar: DMAR:[DMA Write] Request device [00:03.0] fault addr 2000 ',
  'x86_64/6.12':
    'DMAR: [DMA Write NO_PASID] Request device [00:03.0] fault addr 0x2000 [fault reason 0x05] PTE Write access is not set',
  'ppc64/4.1': 'pnv-iommu: PHB#0-PE#0 0000:00:03.0: DMA write fault at 0x20000: TCE #20 is not valid',
  'ppc64/6.12': 'pnv-iommu: PHB#0-PE#0 0000:00:03.0: DMA write fault at 0x20000: TCE #20 is not valid',
} as const;

for (const cfg of CONFIGS) {
  const name = `${cfg.arch}/${cfg.kernel}` as keyof typeof FAULT;
  test(`edu driver on ${name}: registers, factorial on MSI, DMA both ways, a refused DMA logged`, () => {
    const r = exampleMachine(cfg, 'edu', '0000:00:03.0', 3);
    const edu = r.host.device('0000:00:03.0');
    assert.ok(edu !== undefined);
    const out = main(r.p, {
      group: 3,
      device: '0000:00:03.0',
      iommu: cfg.arch === 'ppc64' ? 'spapr' : 'type1',
      factorialOf: 12,
    });
    /* buffers are page-sized: 4 KiB on x86_64, 64 KiB on ppc64, one after the other from IOVA 0 */
    const page = cfg.arch === 'ppc64' ? 0x10000n : 0x1000n;
    assert.deepEqual(out, {
      id: 0x010000ed,
      liveness: 0xedcb_a987,
      factorial: 479001600,
      roundTrip: true,
      interrupts: 4,
      unmappedIova: 2n * page,
      untouched: true,
    });
    const dmesg = r.host.dmesg({ reasons: false });
    assert.ok(dmesg.includes(FAULT[name]), `dmesg has the fault line:\n${dmesg.join('\n')}`);
    assert.equal(
      dmesg.filter((l) => /fault addr|DMA write fault/.test(l)).length,
      1,
      'exactly one refused DMA',
    );
    assertTidy(r);
  });
}

test('the edu driver program prints the fault from dmesg', () => {
  const out: string[] = [];
  cli([], (l) => out.push(l));
  assert.ok(out.includes('  edu: 10! = 3628800'));
  assert.ok(out.includes('  edu: DMA to unmapped IOVA 0x2000 done; mapped memory untouched'));
  assert.ok(out.includes('  dmar: DMAR:[DMA Write] Request device [00:03.0] fault addr 2000 '));
});
