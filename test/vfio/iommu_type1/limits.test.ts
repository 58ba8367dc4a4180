import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CAP_IPC_LOCK, ENOSPC, O_WRONLY } from '../../../src/index.ts';
import type { Process } from '../../../src/kernel/index.ts';
import { anon, debug, getInfo, mapDma, PAGE, setup, unmapDma } from './helpers.ts';

/*
 * dma_entry_limit (6.12): 65535 mappings per container, the 65536th is
 * -ENOSPC, DMA_AVAIL counts down to 0 and back up; 4.1 has no limit.
 */
const LIMIT = 65535;

function dmaAvailCap(s: ReturnType<typeof setup>): number {
  const { buf } = getInfo(s, 256);
  return new DataView(buf.buffer).getUint32(56 + 8, true);
}

function writeParam(p: Process, name: string, text: string): number {
  const fd = p.open(`/sys/module/vfio_iommu_type1/parameters/${name}`, O_WRONLY);
  if (fd < 0) return fd;
  const buf = anon(p, PAGE);
  p.mem.write(buf, new TextEncoder().encode(text));
  const r = p.write(fd, buf, text.length);
  p.close(fd);
  return r;
}

describe('dma_entry_limit', () => {
  it('6.12: the 65536th mapping is -ENOSPC, exactly at the limit', () => {
    const s = setup({ kernel: '6.12', spawn: { capabilities: [CAP_IPC_LOCK] } });
    const page = anon(s.p, PAGE);
    assert.equal(dmaAvailCap(s), LIMIT);
    for (let i = 0; i < LIMIT; i++) {
      const r = mapDma(s, { vaddr: page, iova: BigInt(i) * PAGE, size: PAGE });
      if (r !== 0) assert.fail(`mapping ${i}: ${r}`);
    }
    assert.equal(dmaAvailCap(s), 0);
    assert.equal(mapDma(s, { vaddr: page, iova: BigInt(LIMIT) * PAGE, size: PAGE }), -ENOSPC);
    assert.equal(debug(s).mappings.length, LIMIT);
    assert.equal(s.p.lockedVm, LIMIT);
    /* one back, one more */
    assert.deepEqual(unmapDma(s, 0n, PAGE), { ret: 0, size: PAGE });
    assert.equal(dmaAvailCap(s), 1);
    assert.equal(mapDma(s, { vaddr: page, iova: BigInt(LIMIT) * PAGE, size: PAGE }), 0);
    assert.equal(dmaAvailCap(s), 0);
    /* ENOSPC comes after the overlap check */
    assert.equal(mapDma(s, { vaddr: page, iova: PAGE, size: PAGE }), -17 /* EEXIST */);
  });

  it('6.12: the module parameter applies to containers set up after it changes', () => {
    const s = setup({ kernel: '6.12' });
    assert.equal(writeParam(s.p, 'dma_entry_limit', '2\n'), 2);
    assert.equal(s.p.readText('/sys/module/vfio_iommu_type1/parameters/dma_entry_limit'), '2\n');
    const page = anon(s.p, PAGE);
    /* the container opened before still has 65535 */
    assert.equal(dmaAvailCap(s), LIMIT);
    const t = setup({ kernel: '6.12', before: (h) => assert.ok(h) });
    assert.equal(dmaAvailCap(t), LIMIT, 'another host is not affected');
    for (let i = 0n; i < 3n; i++) assert.equal(mapDma(s, { vaddr: page, iova: i * PAGE, size: PAGE }), 0);
    assert.equal(writeParam(s.p, 'dma_entry_limit', 'lots'), -22);
  });

  it('6.12: a container opened after the change gets the new limit', () => {
    let sp: Process | undefined;
    const s = setup({
      kernel: '6.12',
      before: (h) => {
        sp = h.spawn();
        assert.equal(writeParam(sp, 'dma_entry_limit', '2'), 1);
      },
    });
    assert.ok(sp);
    const page = anon(s.p, PAGE);
    assert.equal(dmaAvailCap(s), 2);
    assert.equal(mapDma(s, { vaddr: page, iova: 0n, size: PAGE }), 0);
    assert.equal(mapDma(s, { vaddr: page, iova: PAGE, size: PAGE }), 0);
    assert.equal(mapDma(s, { vaddr: page, iova: 2n * PAGE, size: PAGE }), -ENOSPC);
  });

  it('4.1: no limit', () => {
    const s = setup({ kernel: '4.1', spawn: { capabilities: [CAP_IPC_LOCK] } });
    const page = anon(s.p, PAGE);
    for (let i = 0; i <= LIMIT; i++) {
      const r = mapDma(s, { vaddr: page, iova: BigInt(i) * PAGE, size: PAGE });
      if (r !== 0) assert.fail(`mapping ${i}: ${r}`);
    }
    assert.equal(debug(s).mappings.length, LIMIT + 1);
  });
});
