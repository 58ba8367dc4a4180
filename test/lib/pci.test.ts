import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  findPciCapability,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  pciCapabilities,
  ScalarAccess,
  setBusMaster,
} from '../../src/lib/index.ts';

/* a config space in a byte array, recording writes */
class Cfg extends ScalarAccess {
  readonly b = new Uint8Array(256);
  readonly writes: string[] = [];
  protected readBytes(off: number | bigint, len: number): Uint8Array {
    return this.b.slice(Number(off), Number(off) + len);
  }
  protected writeBytes(off: number | bigint, bytes: Uint8Array): void {
    this.writes.push(`${bytes.length}@0x${off.toString(16)}`);
    this.b.set(bytes, Number(off));
  }
}

test('the capability list: walked from 0x34, stops at 0 and at a loop', () => {
  const c = new Cfg();
  assert.deepEqual(pciCapabilities(c), [], 'no CAP_LIST bit in Status');
  c.b[0x06] = 0x10;
  c.b[0x34] = 0x40;
  c.b.set([PCI_CAP_ID_MSI, 0x50], 0x40);
  c.b.set([PCI_CAP_ID_EXP, 0x70], 0x50);
  c.b.set([PCI_CAP_ID_MSIX, 0x00], 0x70);
  assert.deepEqual(pciCapabilities(c), [
    { id: PCI_CAP_ID_MSI, offset: 0x40 },
    { id: PCI_CAP_ID_EXP, offset: 0x50 },
    { id: PCI_CAP_ID_MSIX, offset: 0x70 },
  ]);
  assert.equal(findPciCapability(c, PCI_CAP_ID_MSIX), 0x70);
  assert.equal(findPciCapability(c, 0x01), undefined);
  c.b[0x71] = 0x40; /* a loop back to the first */
  assert.equal(pciCapabilities(c).length, 3);
});

test('bus mastering on (with memory decode) and off, one write each', () => {
  const c = new Cfg();
  c.b[PCI_COMMAND] = 0x01;
  assert.equal(setBusMaster(c), 0x07);
  assert.equal(setBusMaster(c), 0x07, 'already on: no write');
  assert.equal(setBusMaster(c, false), 0x03);
  assert.deepEqual(c.writes, ['2@0x4', '2@0x4']);
});
