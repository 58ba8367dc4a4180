import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CE_COMP_SUCCESS,
  CE_CTRL_RESET,
  CE_DESC_COMPLETION,
  CE_DESC_INTERRUPT,
  CE_ERR_BAD_LENGTH,
  CE_ERR_BAD_OPCODE,
  CE_ERR_BAD_RING,
  CE_ERR_DESC_READ,
  CE_ERR_DST_WRITE,
  CE_ERR_SRC_READ,
  CE_ID,
  CE_INT_COMPLETION,
  CE_INT_ERROR,
  CE_OP_FILL,
  CE_OP_MEMCPY,
  CE_OP_NOP,
  CE_REG_COMPLETED,
  CE_REG_CTRL,
  CE_REG_ERR_ADDR,
  CE_REG_ERR_DESC,
  CE_REG_ERROR,
  CE_REG_HEAD,
  CE_REG_ID,
  CE_REG_INT_STATUS,
  CE_REG_RING_SIZE,
  CE_REG_STATUS,
  CE_STATUS_HALTED,
  type CopyEngineModel,
} from '../../src/devices/index.ts';
import {
  POLLIN,
  VFIO_DEVICE_RESET,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
} from '../../src/uapi/index.ts';
import { userAlloc } from '../helpers/user.ts';
import { type Bench, bench, efdCount, rd, setIrqs, triggerEventfds } from '../vfio/pci/helpers.ts';
import { type CeDriver, ceInit, completion, completionIova, reg32, setReg32, submit } from './ce_driver.ts';

/*
 * The copy engine as the kernel's VFIO selftests drive IOAT/DSA: a ring
 * of descriptors in DMA memory, copies from IOVA to IOVA through the
 * IOMMU, completion records, MSI-X (or INTx), and an error halt with the
 * faulting address when the IOMMU refuses an access.
 */
const SRC = 0x1000_0000n;
const DST = 0x2000_0000n;

function setup(kernel: '4.1' | '6.12', intCtrl = 0): { b: Bench; d: CeDriver } {
  const b = bench({ kernel, model: 'copy-engine' });
  const d = ceInit(b, (va, iova, len) => b.iommu.domain?.map(b.p, va, iova, len), { intCtrl });
  return { b, d };
}

function buffers(b: Bench, len: number, mapDst = true): { src: bigint; dst: bigint } {
  const src = userAlloc(b.p, len);
  const dst = userAlloc(b.p, len);
  b.iommu.domain?.map(b.p, src, SRC, len, { write: false });
  if (mapDst) b.iommu.domain?.map(b.p, dst, DST, len);
  return { src, dst };
}

function model(b: Bench): CopyEngineModel {
  return b.host.device(b.bdf)?.model as CopyEngineModel;
}

function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

for (const kernel of ['4.1', '6.12'] as const) {
  describe(`copy engine (${kernel})`, () => {
    test('identification through pread, registers through the mmapped BAR', () => {
      const { b, d } = setup(kernel);
      assert.equal(rd(b, 0, CE_REG_ID, 4), CE_ID);
      assert.equal(reg32(d, CE_REG_RING_SIZE), 16);
      assert.equal(reg32(d, CE_REG_STATUS), 1);
    });

    test('MEMCPY moves the bytes, writes the completion record, counts', () => {
      const { b, d } = setup(kernel);
      const len = 64 * 1024 + 100;
      const { src, dst } = buffers(b, 69 * 1024);
      const data = pattern(len, 7);
      b.p.mem.write(src, data);
      submit(d, {
        opcode: CE_OP_MEMCPY,
        flags: CE_DESC_COMPLETION,
        src: SRC,
        dst: DST + 3n,
        len: BigInt(len),
        completion: completionIova(0),
        tag: 0xfeedn,
      });
      assert.equal(reg32(d, CE_REG_STATUS) & 2, 2);
      b.host.kernel.clock.advance(1_000_000);
      assert.deepEqual(b.p.mem.read(dst + 3n, len), data);
      assert.deepEqual(completion(d, 0), { status: CE_COMP_SUCCESS, bytes: len, fault: 0n, tag: 0xfeedn });
      assert.deepEqual(
        [reg32(d, CE_REG_HEAD), reg32(d, CE_REG_COMPLETED), reg32(d, CE_REG_STATUS)],
        [1, 1, 1],
      );
      assert.equal(b.host.iommu.faults.length, 0);
    });

    test('FILL and NOP; descriptors complete in ring order', () => {
      const { b, d } = setup(kernel);
      const { dst } = buffers(b, 4096);
      submit(d, { opcode: CE_OP_NOP, flags: CE_DESC_COMPLETION, completion: completionIova(0), tag: 1n });
      submit(d, {
        opcode: CE_OP_FILL,
        flags: CE_DESC_COMPLETION,
        dst: DST,
        len: 24n,
        pattern: 0x0102030405060708n,
        completion: completionIova(1),
        tag: 2n,
      });
      b.host.kernel.clock.advance(100_000);
      assert.deepEqual(
        [...b.p.mem.read(dst, 10)],
        [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x08, 0x07],
      );
      assert.deepEqual([completion(d, 0).tag, completion(d, 1).tag, completion(d, 1).bytes], [1n, 2n, 24]);
      assert.equal(reg32(d, CE_REG_COMPLETED), 2);
    });

    test('an unmapped destination halts the engine: error, address, nothing written', () => {
      const { b, d } = setup(kernel, CE_INT_ERROR);
      const { src } = buffers(b, 16384, false);
      const dst = userAlloc(b.p, 16384);
      /* only the first 8 KiB of the destination are mapped */
      b.iommu.domain?.map(b.p, dst, DST, 8192);
      b.p.mem.write(src, pattern(16384, 3));
      const { fds } = triggerEventfds(b, VFIO_PCI_INTX_IRQ_INDEX, 1);
      submit(d, {
        opcode: CE_OP_MEMCPY,
        flags: CE_DESC_COMPLETION,
        src: SRC,
        dst: DST,
        len: 16384n,
        completion: completionIova(0),
      });
      assert.equal(b.p.poll([{ fd: fds[0] as number, events: POLLIN }], -1), 1);
      assert.equal(reg32(d, CE_REG_STATUS) & CE_STATUS_HALTED, CE_STATUS_HALTED);
      assert.equal(reg32(d, CE_REG_ERROR), CE_ERR_DST_WRITE);
      assert.equal(reg32(d, CE_REG_ERR_DESC), 0);
      assert.equal(reg32(d, CE_REG_ERR_ADDR), Number(DST) + 8192);
      assert.equal(reg32(d, CE_REG_INT_STATUS), CE_INT_ERROR);
      assert.deepEqual(completion(d, 0), {
        status: 0x80 | CE_ERR_DST_WRITE,
        bytes: 0,
        fault: DST + 8192n,
        tag: 0n,
      });
      /* the transfer was refused before any byte moved: memory untouched */
      assert.deepEqual(b.p.mem.read(dst, 16384), new Uint8Array(16384));
      assert.equal(b.host.iommu.faults.length, 1);
      const f = b.host.iommu.faults[0];
      assert.deepEqual([f?.iova, f?.write], [DST + 8192n, true]);
      /* the engine stays halted until reset */
      assert.equal(reg32(d, CE_REG_HEAD), 0);
      setReg32(d, CE_REG_CTRL, CE_CTRL_RESET);
      assert.deepEqual([reg32(d, CE_REG_STATUS), reg32(d, CE_REG_ERROR), reg32(d, CE_REG_HEAD)], [0, 0, 0]);
    });

    test('FILL stops at the first refused page, the pages before it written', () => {
      const { b, d } = setup(kernel);
      const dst = userAlloc(b.p, 16384);
      b.iommu.domain?.map(b.p, dst, DST, 8192);
      submit(d, {
        opcode: CE_OP_FILL,
        flags: CE_DESC_COMPLETION,
        dst: DST + 4n,
        len: 12000n,
        pattern: 0x1111111111111111n,
        completion: completionIova(0),
      });
      b.host.kernel.clock.advance(100_000);
      assert.deepEqual(completion(d, 0), {
        status: 0x80 | CE_ERR_DST_WRITE,
        bytes: 8188,
        fault: DST + 8192n,
        tag: 0n,
      });
      assert.deepEqual(b.p.mem.read(dst + 4n, 8188), new Uint8Array(8188).fill(0x11));
      assert.equal(b.host.iommu.faults.length, 1);
    });

    test('an unmapped source, an unmapped ring, a bad opcode, a bad length, a bad ring', () => {
      for (const [what, code, addr] of [
        ['src', CE_ERR_SRC_READ, 0x5000_0000n],
        ['ring', CE_ERR_DESC_READ, 0n],
        ['opcode', CE_ERR_BAD_OPCODE, 0n],
        ['length', CE_ERR_BAD_LENGTH, 0n],
        ['ringsize', CE_ERR_BAD_RING, 0n],
      ] as const) {
        const { b, d } = setup(kernel);
        const { dst } = buffers(b, 4096);
        if (what === 'ring') b.iommu.domain?.unmapAll();
        if (what === 'ringsize') setReg32(d, CE_REG_RING_SIZE, 3);
        submit(d, {
          opcode: what === 'opcode' ? 9 : CE_OP_MEMCPY,
          src: what === 'src' ? addr : SRC,
          dst: DST,
          len: what === 'length' ? 0n : 64n,
        });
        b.host.kernel.clock.advance(100_000);
        assert.equal(reg32(d, CE_REG_ERROR), code, what);
        if (what === 'src') assert.equal(reg32(d, CE_REG_ERR_ADDR), Number(addr));
        if (what === 'ring') assert.equal(reg32(d, CE_REG_ERR_ADDR), 0x100000);
        assert.deepEqual(b.p.mem.read(dst, 64), new Uint8Array(64), what);
      }
    });

    test('completion interrupts on MSI-X vectors chosen in INT_CTRL', () => {
      const { b, d } = setup(kernel, CE_INT_COMPLETION | (2 << 8));
      const { ret, fds } = triggerEventfds(b, VFIO_PCI_MSIX_IRQ_INDEX, 3);
      assert.equal(ret, 0);
      submit(d, { opcode: CE_OP_NOP, flags: CE_DESC_INTERRUPT });
      submit(d, { opcode: CE_OP_NOP, flags: CE_DESC_INTERRUPT });
      assert.equal(b.p.poll([{ fd: fds[2] as number, events: POLLIN }], -1), 1);
      b.host.kernel.clock.advance(100_000);
      assert.deepEqual(
        fds.map((fd) => efdCount(b, fd)),
        [0n, 0n, 2n],
      );
      /* MSI-X is edge: no masking, no INTx */
      assert.equal(b.host.device(b.bdf)?.intxLevel, false);
    });

    test('INTx when MSI-X is off: level-triggered, automasked, acknowledged through INT_STATUS', () => {
      const { b, d } = setup(kernel, CE_INT_COMPLETION);
      const { fds } = triggerEventfds(b, VFIO_PCI_INTX_IRQ_INDEX, 1);
      const efd = fds[0] as number;
      submit(d, { opcode: CE_OP_NOP, flags: CE_DESC_INTERRUPT });
      submit(d, { opcode: CE_OP_NOP, flags: CE_DESC_INTERRUPT });
      b.host.kernel.clock.advance(100_000);
      assert.equal(efdCount(b, efd), 1n);
      setReg32(d, CE_REG_INT_STATUS, CE_INT_COMPLETION);
      assert.equal(
        setIrqs(b, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }),
        0,
      );
      assert.equal(efdCount(b, efd), 0n);
      submit(d, { opcode: CE_OP_NOP, flags: CE_DESC_INTERRUPT });
      b.host.kernel.clock.advance(100_000);
      assert.equal(efdCount(b, efd), 1n);
    });

    test('VFIO_DEVICE_RESET is a function-level reset: registers back to power-on', () => {
      const { b, d } = setup(kernel);
      assert.equal(model(b).ringSize, 16);
      assert.equal(b.p.ioctl(b.device, VFIO_DEVICE_RESET), 0);
      assert.deepEqual([model(b).ringSize, model(b).ctrl], [0, 0]);
      /* config space came back: the BAR still decodes */
      assert.equal(reg32(d, CE_REG_ID), CE_ID);
    });

    test('64 MiB in one descriptor, one large mapping', () => {
      const { b, d } = setup(kernel);
      const len = 64 << 20;
      const { src, dst } = buffers(b, len);
      const head = pattern(4096, 11);
      b.p.mem.write(src, head);
      b.p.mem.write(src + BigInt(len - 4096), head);
      submit(d, {
        opcode: CE_OP_MEMCPY,
        flags: CE_DESC_COMPLETION,
        src: SRC,
        dst: DST,
        len: BigInt(len),
        completion: completionIova(0),
      });
      b.host.kernel.clock.advance(10_000_000);
      assert.equal(completion(d, 0).bytes, len);
      assert.deepEqual(b.p.mem.read(dst + BigInt(len - 4096), 4096), head);
    });
  });
}
