import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cli, main } from '../../examples/copy_engine_driver.ts';
import { assertTidy, CONFIGS, exampleMachine } from './run.ts';

const MiB = 1 << 20;

for (const cfg of CONFIGS) {
  const name = `${cfg.arch}/${cfg.kernel}`;
  /* 64 MiB on one host per arch, 16 MiB on the others: the same paths, less time */
  const bytes = name === 'x86_64/4.1' || name === 'ppc64/6.12' ? 64 * MiB : 16 * MiB;
  test(`copy engine driver on ${name}: ${bytes / MiB} MiB through the IOMMU, then a halt on an unmapped IOVA`, () => {
    const r = exampleMachine(cfg, 'copy-engine', '0000:00:04.0', 4);
    const out = main(r.p, {
      group: 4,
      device: '0000:00:04.0',
      iommu: cfg.arch === 'ppc64' ? 'spapr' : 'type1',
      bytes,
    });
    const descriptors = bytes / (4 * MiB);
    assert.equal(out.id, 0x4345_0100);
    assert.equal(out.bytes, bytes);
    assert.equal(out.descriptors, descriptors);
    assert.equal(out.completed, descriptors);
    assert.deepEqual(out.completion, { status: 1, bytes: 4 * MiB, tag: BigInt(descriptors) });
    assert.equal(out.identical, true);
    /* a 16 KiB BAR is smaller than ppc64's 64 KiB page: no mmap, pread/pwrite instead */
    assert.equal(out.mmapped, cfg.arch === 'x86_64');
    if (cfg.arch === 'x86_64')
      /* the destination write is refused: CE_ERR_DST_WRITE at the unmapped IOVA */
      assert.deepEqual(out.fault, {
        error: 3,
        index: descriptors,
        addr: out.fault.iova,
        status: 0x83,
        iova: out.fault.iova,
      });
    else {
      /*
       * On POWER the refused write also freezes the PE (EEH): the engine
       * halts with CE_ERR_DST_WRITE at the unmapped IOVA as on x86, but its
       * completion record cannot be written, and the driver reads the
       * registers only after thawing the PE.
       */
      assert.deepEqual(out.fault, {
        error: 3,
        index: descriptors,
        addr: out.fault.iova,
        status: 0,
        iova: out.fault.iova,
      });
      assert.ok(r.host.dmesg().some((l) => l.includes('DMA write fault')));
      /* vfio-pci's open passed the PE to the user (eeh_dev_open): the host does not report the freeze */
      assert.ok(!r.host.dmesg().some((l) => l.startsWith('EEH: Frozen PE#0')));
    }
    assertTidy(r);
  });
}

test('the copy engine driver program', () => {
  const out: string[] = [];
  cli(['--mib=8'], (l) => out.push(l));
  assert.ok(out.includes('  copy engine: 2 descriptors, 8388608 bytes, completed 2, identical'));
  assert.ok(out.includes('  copy engine: descriptor 2 halted with error 3 at IOVA 0x1002000'));
});
