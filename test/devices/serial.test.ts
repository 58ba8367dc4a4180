import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type SerialModel,
  UART_IIR_NO_INT,
  UART_IIR_RDI,
  UART_IIR_RLSI,
  UART_IIR_THRI,
  UART_LSR_DR,
  UART_LSR_OE,
  UART_LSR_TEMT,
  UART_LSR_THRE,
} from '../../src/devices/index.ts';
import { Host } from '../../src/host/index.ts';
import {
  PCI_COMMAND,
  PCI_COMMAND_IO,
  type PciDev,
  pciBarRead,
  pciBarWrite,
  pciWriteConfig,
} from '../../src/pci/index.ts';

/*
 * The 16550 model on its own (the host's view through the I/O BAR):
 * divisor latch, character timing on the virtual clock, interrupt
 * identification priorities, the FIFO and its overrun, reset.
 */
function uart(): {
  h: Host;
  d: PciDev;
  m: SerialModel;
  rd: (o: number) => number;
  wr: (o: number, v: number) => void;
} {
  const h = new Host({ kernel: '6.12' });
  const d = h.addPciDevice({ bdf: '0000:00:05.0', model: 'serial' });
  h.inKernel(() => pciWriteConfig(d, PCI_COMMAND, 2, PCI_COMMAND_IO));
  return {
    h,
    d,
    m: d.model as SerialModel,
    rd: (o) => h.inKernel(() => Number(pciBarRead(d, 0, o, 1))),
    wr: (o, v) => h.inKernel(() => pciBarWrite(d, 0, o, 1, BigInt(v))),
  };
}

describe('serial (16550)', () => {
  test('identity: 4348:3253, class 070002, one 8-byte I/O BAR, INTA', () => {
    const { d } = uart();
    assert.equal(d.cfg.read(0, 4), 0x32534348);
    assert.equal(d.cfg.read(0x08, 4) >>> 8, 0x070002);
    assert.equal(d.resource[0]?.len, 8);
    assert.equal(d.cfg.read(0x3d, 1), 1);
  });

  test('the divisor latch and the time a character takes', () => {
    const { h, m, rd, wr } = uart();
    assert.equal(rd(5), UART_LSR_THRE | UART_LSR_TEMT);
    /* DLAB: divisor 1 (115200 baud): 10 bits take 86.8 us */
    wr(3, 0x83);
    assert.equal(rd(0), 12, 'the default divisor (9600 baud)');
    wr(0, 1);
    wr(1, 0);
    assert.equal(rd(0), 1);
    wr(3, 0x03);
    wr(0, 0x61);
    assert.equal(rd(5) & (UART_LSR_THRE | UART_LSR_TEMT), 0, 'shifting out');
    /* (an I/O read takes 1 us of the 86.8) */
    h.kernel.clock.advance(84_000);
    assert.deepEqual(m.output, []);
    h.kernel.clock.advance(2_000);
    assert.deepEqual(m.output, [0x61]);
    assert.equal(rd(5), UART_LSR_THRE | UART_LSR_TEMT);
    /* the scratch register */
    wr(7, 0xa5);
    assert.equal(rd(7), 0xa5);
  });

  test('interrupt identification: line status before received data before THR empty', () => {
    const { h, d, m, rd, wr } = uart();
    assert.equal(rd(2), UART_IIR_NO_INT);
    /* THRI enabled with the THR empty: reported at once, cleared by reading IIR */
    wr(1, 0x02);
    assert.equal(d.intxLine, true);
    assert.equal(rd(2), UART_IIR_THRI);
    assert.equal(rd(2), UART_IIR_NO_INT);
    assert.equal(d.intxLine, false);
    /* all three sources */
    wr(1, 0x07);
    m.input([1, 2]); /* no FIFO: the second character overruns */
    assert.equal(rd(5) & (UART_LSR_DR | UART_LSR_OE), UART_LSR_DR | UART_LSR_OE);
    assert.equal(rd(2), UART_IIR_RDI, 'reading LSR cleared the overrun');
    m.input([3]);
    assert.equal(rd(2), UART_IIR_RLSI);
    rd(5);
    assert.equal(rd(0), 1);
    assert.equal(rd(5) & UART_LSR_DR, 0);
    assert.equal(rd(2), UART_IIR_NO_INT);
    /* sending a character: THRI when it has gone */
    wr(0, 0x7a);
    h.kernel.clock.advance(2_000_000);
    assert.equal(rd(2), UART_IIR_THRI);
    assert.equal(d.intxLine, false);
  });

  test('FIFO mode: 16 characters deep, IIR shows 0xc0, clear-receiver empties it', () => {
    const { m, rd, wr } = uart();
    wr(2, 0x01);
    m.input(Array.from({ length: 17 }, (_, i) => 0x30 + i));
    assert.equal(rd(2), 0xc0 | UART_IIR_NO_INT);
    assert.equal(rd(5) & UART_LSR_OE, UART_LSR_OE);
    const got: number[] = [];
    while (rd(5) & UART_LSR_DR) got.push(rd(0));
    assert.equal(got.length, 16);
    assert.equal(got[15], 0x3f);
    m.input([1, 2]);
    wr(2, 0x03);
    assert.equal(rd(5) & UART_LSR_DR, 0);
  });

  test('reset: registers back to power-on, a pending character dropped, INTx low', () => {
    const { h, d, m, rd, wr } = uart();
    wr(1, 0x01);
    m.input([0x55]);
    assert.equal(d.intxLine, true);
    wr(0, 0x66);
    h.inKernel(() => d.hardwareReset());
    assert.equal(d.intxLine, false);
    h.kernel.clock.advance(10_000_000);
    assert.deepEqual(m.output, []);
    h.inKernel(() => {
      pciWriteConfig(d, 0x10, 4, d.resource[0]?.start ?? 0);
      pciWriteConfig(d, PCI_COMMAND, 2, PCI_COMMAND_IO);
    });
    assert.equal(rd(1), 0);
    assert.equal(rd(5), UART_LSR_THRE | UART_LSR_TEMT);
  });
});
