/*
 * A userspace driver for QEMU's edu device through VFIO and the library:
 * BAR0 mmapped, liveness and factorial registers, MSI on an eventfd, DMA
 * from a buffer to the device and back, and a DMA to an IOVA that was
 * never mapped, which the IOMMU refuses (and the host logs). Run it:
 * `npx tsx examples/edu_driver.ts [--arch=ppc64] [--kernel=6.12]`.
 */
import {
  DmaBuffer,
  type Interrupt,
  type MappedRegion,
  setBusMaster,
  VfioContainer,
  type VfioDevice,
  VfioGroup,
} from '../src/lib/index.ts';
import { type Syscalls, VFIO_SPAPR_TCE_IOMMU, VFIO_TYPE1_IOMMU } from '../src/uapi/index.ts';
import { cliHostOptions, EXAMPLE_MEMLOCK, exampleHost, iommuOf, isMain } from './setup.ts';

/* BAR0 registers (QEMU docs/specs/edu.rst) */
const EDU_ID = 0x00;
const EDU_LIVENESS = 0x04;
const EDU_FACTORIAL = 0x08;
const EDU_STATUS = 0x20;
const EDU_IRQ_STATUS = 0x24;
const EDU_IRQ_ACK = 0x64;
const EDU_DMA_SRC = 0x80;
const EDU_DMA_DST = 0x88;
const EDU_DMA_CNT = 0x90;
const EDU_DMA_CMD = 0x98;
const STATUS_IRQFACT = 0x80;
const IRQ_FACT = 0x1;
const IRQ_DMA = 0x100;
const DMA_RUN = 0x1;
const DMA_TO_RAM = 0x2;
const DMA_IRQ = 0x4;
/** the device's buffer, in the DMA address fields */
const EDU_BUFFER = 0x40000n;
const EDU_BUFFER_SIZE = 4096;
/** the device masks DMA addresses to 28 bits: IOVAs must lie below */
const EDU_DMA_LIMIT = 1n << 28n;
/** long enough for any edu operation on the virtual clock (DMA takes 100 ms) */
const WAIT_MS = 1000;

export interface EduDriverOptions {
  readonly group: number;
  readonly device: string;
  readonly iommu: 'type1' | 'spapr';
  readonly factorialOf?: number;
  readonly log?: (line: string) => void;
}

export interface EduDriverResult {
  readonly id: number;
  /** what the liveness register returned for 0x12345678 */
  readonly liveness: number;
  readonly factorial: number;
  /** the device's buffer came back into memory byte for byte */
  readonly roundTrip: boolean;
  /** MSI interrupts received (factorial + 2 DMAs + the refused DMA) */
  readonly interrupts: number;
  /** the IOVA of the refused DMA */
  readonly unmappedIova: bigint;
  /** no mapped byte changed during the refused DMA */
  readonly untouched: boolean;
}

class Edu {
  constructor(
    private readonly regs: MappedRegion,
    private readonly msi: Interrupt,
  ) {}

  /** wait for the MSI, then acknowledge what raised it; returns the interrupt status */
  waitIrq(expect: number): number {
    if (!this.msi.wait(WAIT_MS))
      throw new Error(`edu: no interrupt within ${WAIT_MS} ms (want 0x${expect.toString(16)})`);
    this.msi.count();
    const st = this.regs.read32(EDU_IRQ_STATUS);
    this.regs.write32(EDU_IRQ_ACK, st);
    if ((st & expect) === 0)
      throw new Error(`edu: interrupt status 0x${st.toString(16)}, want 0x${expect.toString(16)}`);
    return st;
  }

  factorial(n: number): number {
    this.regs.write32(EDU_STATUS, STATUS_IRQFACT);
    this.regs.write32(EDU_FACTORIAL, n);
    this.waitIrq(IRQ_FACT);
    return this.regs.read32(EDU_FACTORIAL);
  }

  dma(src: bigint, dst: bigint, count: number, toRam: boolean): void {
    this.regs.write64(EDU_DMA_SRC, src);
    this.regs.write64(EDU_DMA_DST, dst);
    this.regs.write64(EDU_DMA_CNT, BigInt(count));
    this.regs.write64(EDU_DMA_CMD, BigInt(DMA_RUN | DMA_IRQ | (toRam ? DMA_TO_RAM : 0)));
    this.waitIrq(IRQ_DMA);
  }
}

function openDevice(opts: EduDriverOptions, container: VfioContainer, group: VfioGroup): VfioDevice {
  if (!group.status().viable) throw new Error(`group ${opts.group} is not viable`);
  group.setContainer(container);
  if (opts.iommu === 'type1') container.setIommu(VFIO_TYPE1_IOMMU);
  else {
    container.setIommu(VFIO_SPAPR_TCE_IOMMU);
    container.enable();
  }
  return group.device(opts.device);
}

export function main(sys: Syscalls, opts: EduDriverOptions): EduDriverResult {
  const log = opts.log ?? (() => {});
  using container = VfioContainer.open(sys);
  using group = VfioGroup.open(sys, opts.group);
  using device = openDevice(opts, container, group);

  const regs = device.bar(0).mmap();
  const id = regs.read32(EDU_ID);
  regs.write32(EDU_LIVENESS, 0x1234_5678);
  const liveness = regs.read32(EDU_LIVENESS);
  log(`edu: id 0x${id.toString(16)}, liveness(0x12345678) = 0x${liveness.toString(16)}`);

  setBusMaster(device.config);
  const [msi] = device.enableMsi(1);
  if (msi === undefined) throw new Error('no MSI vector');
  const edu = new Edu(regs, msi);
  let interrupts = 0;

  const n = opts.factorialOf ?? 10;
  const factorial = edu.factorial(n);
  interrupts++;
  log(`edu: ${n}! = ${factorial}`);

  /* RAM -> device buffer -> other RAM, through the IOMMU */
  using src = DmaBuffer.allocate(container, EDU_BUFFER_SIZE, { below: EDU_DMA_LIMIT, write: false });
  using dst = DmaBuffer.allocate(container, EDU_BUFFER_SIZE, { below: EDU_DMA_LIMIT });
  const pattern = new Uint8Array(EDU_BUFFER_SIZE).map((_, i) => (i * 7 + 3) & 0xff);
  src.write(0, pattern);
  edu.dma(src.iova, EDU_BUFFER, EDU_BUFFER_SIZE, false);
  edu.dma(EDU_BUFFER, dst.iova, EDU_BUFFER_SIZE, true);
  interrupts += 2;
  const back = dst.read(0, EDU_BUFFER_SIZE);
  const roundTrip = back.every((b, i) => b === pattern[i]);
  log(
    `edu: DMA ${src.iova.toString(16)} -> buffer -> ${dst.iova.toString(16)}: ${roundTrip ? 'identical' : 'DIFFERENT'}`,
  );

  /* an IOVA nobody mapped: the IOMMU refuses the device's write */
  const iovas = container.iovas();
  const unmappedIova = iovas.alloc(BigInt(EDU_BUFFER_SIZE), { below: EDU_DMA_LIMIT });
  const before = [src.read(0, EDU_BUFFER_SIZE), dst.read(0, EDU_BUFFER_SIZE)];
  edu.dma(EDU_BUFFER, unmappedIova, EDU_BUFFER_SIZE, true);
  interrupts++;
  iovas.free(unmappedIova);
  const after = [src.read(0, EDU_BUFFER_SIZE), dst.read(0, EDU_BUFFER_SIZE)];
  const untouched = before.every((b, k) => b.every((x, i) => x === after[k]?.[i]));
  log(
    `edu: DMA to unmapped IOVA 0x${unmappedIova.toString(16)} done; mapped memory ${untouched ? 'untouched' : 'CHANGED'}`,
  );

  device.disableInterrupts(1);
  setBusMaster(device.config, false);
  if (opts.iommu === 'spapr') {
    src.close();
    dst.close();
    container.disable();
  }
  return { id, liveness, factorial, roundTrip, interrupts, unmappedIova, untouched };
}

/** The program: a host with edu in group 3, the driver, then the host's log. */
export function cli(argv: readonly string[], print: (line: string) => void = console.log): void {
  const opts = cliHostOptions(argv);
  const host = exampleHost(opts, [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 }]);
  const p = host.spawn({ rlimitMemlock: EXAMPLE_MEMLOCK });
  main(p, {
    group: 3,
    device: '0000:00:03.0',
    iommu: iommuOf(opts),
    log: (l) => print(`  ${l}`),
  });
  p.exit();
  print('dmesg:');
  for (const l of host.dmesg({ reasons: false })) print(`  ${l}`);
  print(`live kernel objects after exit: ${JSON.stringify(host.liveObjects())}`);
}

if (isMain(import.meta)) cli(process.argv.slice(2));
