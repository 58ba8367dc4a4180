import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EINVAL,
  ENOENT,
  ENOMEM,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_VADDR,
} from '../../../src/index.ts';
import { userAlloc } from '../../helpers/user.ts';
import { anon, bdfOf, debug, mapDma, mappings, PAGE, setup, unmapDma } from './helpers.ts';

/*
 * VFIO_UPDATE_VADDR (6.12): invalidate the vaddr of live mappings (their
 * translations and pins stay) and give them a new one, possibly from a
 * new process (live update), which then carries the locked_vm charge.
 */
const V = VFIO_DMA_UNMAP_FLAG_VADDR;

function invalid(s: ReturnType<typeof setup>): boolean[] {
  return debug(s).mappings.map((m) => m.vaddrInvalid);
}

describe('VFIO_UPDATE_VADDR (6.12)', () => {
  it('UNMAP_DMA VADDR invalidates, keeps the translations, and reports the size', () => {
    const s = setup({ kernel: '6.12' });
    const mem = anon(s.p, 2n * PAGE);
    assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: PAGE }), 0);
    assert.equal(mapDma(s, { vaddr: mem + PAGE, iova: PAGE, size: PAGE }), 0);
    assert.deepEqual(unmapDma(s, 0n, 2n * PAGE, V), { ret: 0, size: 2n * PAGE });
    assert.deepEqual(invalid(s), [true, true]);
    assert.equal(debug(s).vaddrInvalidCount, 2);
    assert.equal(s.p.lockedVm, 2);
    assert.equal(s.host.device(bdfOf(3))?.dmaPort?.dmaWrite(PAGE, new Uint8Array([7])), true);
    assert.equal(s.p.mem.read(mem + PAGE, 1)[0], 7);
  });

  it('a range reaching an already invalid vaddr is -EINVAL and undoes what it marked', () => {
    const s = setup({ kernel: '6.12' });
    const mem = anon(s.p, 2n * PAGE);
    assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: PAGE }), 0);
    assert.equal(mapDma(s, { vaddr: mem + PAGE, iova: PAGE, size: PAGE }), 0);
    assert.equal(unmapDma(s, PAGE, PAGE, V).ret, 0);
    assert.equal(unmapDma(s, 0n, 2n * PAGE, V).ret, -EINVAL);
    assert.deepEqual(invalid(s), [false, true]);
    assert.equal(debug(s).vaddrInvalidCount, 1);
    /* ALL | VADDR: the same */
    assert.equal(unmapDma(s, 0n, 0n, V | VFIO_DMA_UNMAP_FLAG_ALL).ret, -EINVAL);
    assert.deepEqual(invalid(s), [false, true]);
  });

  it('MAP_DMA VADDR: -ENOENT, -EINVAL unless the exact mapping is invalid, then the new vaddr', () => {
    const s = setup({ kernel: '6.12' });
    const mem = anon(s.p, 4n * PAGE);
    assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 2n * PAGE }), 0);
    const upd = (vaddr: bigint, iova: bigint, size: bigint): number =>
      mapDma(s, { vaddr, iova, size, flags: VFIO_DMA_MAP_FLAG_VADDR });
    assert.equal(upd(mem + 2n * PAGE, 4n * PAGE, 2n * PAGE), -ENOENT);
    assert.equal(upd(mem + 2n * PAGE, 0n, 2n * PAGE), -EINVAL, 'vaddr still valid');
    assert.equal(unmapDma(s, 0n, 2n * PAGE, V).ret, 0);
    assert.equal(upd(mem + 2n * PAGE, 0n, PAGE), -EINVAL, 'size differs');
    assert.equal(upd(mem + 2n * PAGE, PAGE, PAGE), -EINVAL, 'iova differs');
    assert.equal(upd(mem + 2n * PAGE, 0n, 2n * PAGE), 0);
    assert.deepEqual(
      debug(s).mappings.map((m) => [m.iova, m.vaddr, m.vaddrInvalid]),
      [[0n, mem + 2n * PAGE, false]],
    );
    assert.equal(debug(s).vaddrInvalidCount, 0);
    assert.equal(s.p.lockedVm, 2);
  });

  it('an invalid mapping can still be unmapped for good', () => {
    const s = setup({ kernel: '6.12' });
    const mem = anon(s.p, PAGE);
    assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: PAGE }), 0);
    assert.equal(unmapDma(s, 0n, PAGE, V).ret, 0);
    assert.deepEqual(unmapDma(s, 0n, PAGE), { ret: 0, size: PAGE });
    assert.deepEqual(mappings(s), []);
    assert.equal(debug(s).vaddrInvalidCount, 0);
    assert.equal(s.p.lockedVm, 0);
  });

  it('a new process taking over moves the locked_vm charge (vfio_change_dma_owner)', () => {
    const s = setup({ kernel: '6.12' });
    const mem = anon(s.p, 4n * PAGE);
    assert.equal(mapDma(s, { vaddr: mem, iova: 0n, size: 4n * PAGE }), 0);
    assert.equal(unmapDma(s, 0n, 4n * PAGE, V).ret, 0);
    const takeOver = (memlock: bigint) => {
      const q = s.host.spawn({ rlimitMemlock: memlock });
      const qs = { ...s, p: q, container: s.p.passFd(s.container, q), arg: userAlloc(q, 4096) };
      const r = mapDma(qs, {
        vaddr: anon(q, 4n * PAGE),
        iova: 0n,
        size: 4n * PAGE,
        flags: VFIO_DMA_MAP_FLAG_VADDR,
      });
      return { q, qs, r };
    };
    /* over the new owner's limit: nothing changes */
    assert.equal(takeOver(2n * PAGE).r, -ENOMEM);
    assert.equal(s.p.lockedVm, 4);
    assert.deepEqual(invalid(s), [true]);
    const { q, qs, r } = takeOver(8n * PAGE);
    assert.equal(r, 0);
    assert.equal(s.p.lockedVm, 0);
    assert.equal(q.lockedVm, 4);
    assert.equal(debug(qs).mappings[0]?.pid, q.pid);
    /* the first process goes (the group travels too); the mapping lives on, charged to the second */
    s.p.passFd(s.groups[0] ?? -1, q);
    s.p.exit();
    assert.equal(q.lockedVm, 4);
    assert.deepEqual(unmapDma(qs, 0n, 4n * PAGE), { ret: 0, size: 4n * PAGE });
    assert.equal(q.lockedVm, 0);
  });
});
