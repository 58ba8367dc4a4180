/*
 * A userspace driver for the copy engine (src/devices/copy_engine.ts has
 * its register map): 64 MiB moved from one DMA buffer to another by a
 * ring of descriptors, completion on MSI-X, then a descriptor aimed at an
 * IOVA nobody mapped, which halts the engine with an error and the
 * faulting address. Run it: `npx tsx examples/copy_engine_driver.ts
 * [--arch=ppc64] [--kernel=6.12] [--mib=N]`.
 */
import {
  DmaBuffer,
  type Interrupt,
  type ScalarAccess,
  setBusMaster,
  VfioContainer,
  type VfioDevice,
  VfioGroup,
} from '../src/lib/index.ts';
import {
  type Syscalls,
  VFIO_EEH_PE_UNFREEZE_DMA,
  VFIO_EEH_PE_UNFREEZE_IO,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1_IOMMU,
} from '../src/uapi/index.ts';
import { cliHostOptions, EXAMPLE_MEMLOCK, exampleHost, iommuOf, isMain } from './setup.ts';

/* registers (BAR0) */
const CE_ID = 0x000;
const CE_CTRL = 0x008;
const CE_STATUS = 0x00c;
const CE_ERROR = 0x010;
const CE_ERR_DESC = 0x014;
const CE_ERR_ADDR = 0x018;
const CE_INT_CTRL = 0x020;
const CE_INT_STATUS = 0x024;
const CE_RING_BASE = 0x040;
const CE_RING_SIZE = 0x048;
const CE_HEAD = 0x04c;
const CE_TAIL = 0x050;
const CE_COMPLETED = 0x054;
const CTRL_ENABLE = 0x1;
const CTRL_RESET = 0x2;
const STATUS_HALTED = 0x4;
const INT_COMPLETION = 0x1;
const INT_ERROR = 0x2;
/* descriptors */
const OP_MEMCPY = 1;
const DESC_INTERRUPT = 0x1;
const DESC_COMPLETION = 0x2;
const DESC_SIZE = 64;
const COMPLETION_SIZE = 32;
/** the MSI-X table starts here in BAR0: map only the register page below it */
const MSIX_TABLE = 0x2000;
const RING_ENTRIES = 64;
const MSIX_COMPLETION = 0;
const MSIX_ERROR = 1;
const WAIT_MS = 10_000;

export interface CopyEngineOptions {
  readonly group: number;
  readonly device: string;
  readonly iommu: 'type1' | 'spapr';
  /** bytes to move (default 64 MiB) */
  readonly bytes?: number;
  /** split into descriptors of this many bytes (default 4 MiB) */
  readonly chunk?: number;
  readonly log?: (line: string) => void;
}

export interface CopyEngineResult {
  readonly id: number;
  readonly bytes: number;
  readonly descriptors: number;
  /** the engine's COMPLETED counter after the copy */
  readonly completed: number;
  /** the last descriptor's completion record: status (1 = success) and tag */
  readonly completion: { readonly status: number; readonly bytes: number; readonly tag: bigint };
  /** the destination equals the source */
  readonly identical: boolean;
  /** registers were accessed through an mmap of BAR0 (else pread/pwrite) */
  readonly mmapped: boolean;
  /** the refused descriptor: the engine's error code, ring index, faulting IOVA, completion status */
  readonly fault: {
    readonly error: number;
    readonly index: number;
    readonly addr: bigint;
    readonly status: number;
    readonly iova: bigint;
  };
}

/** The register page: mmapped when the BAR allows it below the MSI-X table, else through pread/pwrite. */
function registers(device: VfioDevice, pageSize: number): { regs: ScalarAccess; mmapped: boolean } {
  const bar0 = device.bar(0);
  const areas = bar0.info.sparseMmap ?? [{ offset: 0n, size: bar0.size }];
  const first = areas.find((a) => a.offset === 0n);
  if (!bar0.info.mmappable || first === undefined || pageSize > MSIX_TABLE || first.size < BigInt(pageSize))
    return { regs: bar0, mmapped: false };
  return { regs: bar0.mmap({ size: BigInt(pageSize) }), mmapped: true };
}

function descriptor(
  src: bigint,
  dst: bigint,
  len: number,
  flags: number,
  completion: bigint,
  tag: bigint,
): Uint8Array {
  const d = new Uint8Array(DESC_SIZE);
  const dv = new DataView(d.buffer);
  dv.setUint32(0, OP_MEMCPY, true);
  dv.setUint32(4, flags, true);
  dv.setBigUint64(8, src, true);
  dv.setBigUint64(16, dst, true);
  dv.setBigUint64(24, BigInt(len), true);
  dv.setBigUint64(32, completion, true);
  dv.setBigUint64(48, tag, true);
  return d;
}

function waitFor(irq: Interrupt, what: string): void {
  if (!irq.wait(WAIT_MS)) throw new Error(`copy engine: no ${what} interrupt within ${WAIT_MS} ms`);
  irq.count();
}

export function main(sys: Syscalls, opts: CopyEngineOptions): CopyEngineResult {
  const log = opts.log ?? (() => {});
  const bytes = opts.bytes ?? 64 << 20;
  const chunk = opts.chunk ?? 4 << 20;
  const n = Math.ceil(bytes / chunk);
  if (n + 1 >= RING_ENTRIES) throw new Error(`${n} descriptors do not fit a ${RING_ENTRIES}-entry ring`);

  using container = VfioContainer.open(sys);
  using group = VfioGroup.open(sys, opts.group);
  if (!group.status().viable) throw new Error(`group ${opts.group} is not viable`);
  group.setContainer(container);
  container.setIommu(opts.iommu === 'type1' ? VFIO_TYPE1_IOMMU : VFIO_SPAPR_TCE_IOMMU);
  if (opts.iommu === 'spapr') container.enable();
  using device = group.device(opts.device);

  const { regs, mmapped } = registers(device, sys.pageSize);
  const id = regs.read32(CE_ID);
  log(`copy engine: id 0x${id.toString(16)}, registers ${mmapped ? 'mmapped' : 'through pread/pwrite'}`);
  setBusMaster(device.config);
  const vectors = device.enableMsix(2);
  const done = vectors[MSIX_COMPLETION]!;
  const failed = vectors[MSIX_ERROR]!;

  using ring = DmaBuffer.allocate(container, RING_ENTRIES * DESC_SIZE, { write: false });
  using records = DmaBuffer.allocate(container, 2 * COMPLETION_SIZE);
  using src = DmaBuffer.allocate(container, bytes, { write: false });
  using dst = DmaBuffer.allocate(container, bytes);
  /* a pattern no two 4-byte words of which repeat nearby (host byte order: little-endian) */
  const pattern = new Uint8Array(bytes);
  const words = new Uint32Array(pattern.buffer, 0, bytes >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 0x9e3779b1);
  src.write(0, pattern);

  regs.write32(CE_CTRL, CTRL_RESET);
  regs.write64(CE_RING_BASE, ring.iova);
  regs.write32(CE_RING_SIZE, RING_ENTRIES);
  regs.write32(CE_INT_CTRL, INT_COMPLETION | INT_ERROR | (MSIX_COMPLETION << 8) | (MSIX_ERROR << 16));
  for (let i = 0; i < n; i++) {
    const off = i * chunk;
    const len = Math.min(chunk, bytes - off);
    const last = i === n - 1;
    const flags = last ? DESC_INTERRUPT | DESC_COMPLETION : 0;
    ring.write(
      i * DESC_SIZE,
      descriptor(src.iovaAt(off), dst.iovaAt(off), len, flags, records.iova, BigInt(i + 1)),
    );
  }
  regs.write32(CE_CTRL, CTRL_ENABLE);
  regs.write32(CE_TAIL, n);
  waitFor(done, 'completion');
  regs.write32(CE_INT_STATUS, INT_COMPLETION);
  const completed = regs.read32(CE_COMPLETED);
  const rec = records.read(0, COMPLETION_SIZE);
  const rv = new DataView(rec.buffer, rec.byteOffset);
  const completion = { status: rec[0] ?? 0, bytes: rv.getUint32(4, true), tag: rv.getBigUint64(16, true) };
  const out = dst.read(0, bytes);
  const identical = Buffer.from(out.buffer, out.byteOffset, out.length).equals(Buffer.from(pattern.buffer));
  log(
    `copy engine: ${n} descriptors, ${bytes} bytes, completed ${completed}, ${identical ? 'identical' : 'DIFFERENT'}`,
  );

  /* a descriptor whose destination nobody mapped: the IOMMU refuses, the engine halts */
  const iova = container.iovas().alloc(0x1000n);
  ring.write(
    n * DESC_SIZE,
    descriptor(
      src.iova,
      iova,
      0x1000,
      DESC_INTERRUPT | DESC_COMPLETION,
      records.iovaAt(COMPLETION_SIZE),
      0xbadn,
    ),
  );
  regs.write32(CE_TAIL, n + 1);
  waitFor(failed, 'error');
  container.iovas().free(iova);
  /* POWER froze the PE on the refused write (EEH): MMIO reads all ones until the user thaws it */
  if (opts.iommu === 'spapr')
    for (const op of [VFIO_EEH_PE_UNFREEZE_IO, VFIO_EEH_PE_UNFREEZE_DMA]) container.eehPeOp(op);
  const status = regs.read32(CE_STATUS);
  if (!(status & STATUS_HALTED)) throw new Error(`copy engine: status 0x${status.toString(16)}, not halted`);
  const fault = {
    error: regs.read32(CE_ERROR),
    index: regs.read32(CE_ERR_DESC),
    addr: regs.read64(CE_ERR_ADDR),
    status: records.read8(COMPLETION_SIZE),
    iova,
  };
  log(
    `copy engine: descriptor ${fault.index} halted with error ${fault.error} at IOVA 0x${fault.addr.toString(16)}`,
  );
  regs.write32(CE_INT_STATUS, INT_ERROR);
  regs.write32(CE_CTRL, CTRL_RESET);
  if (regs.read32(CE_HEAD) !== 0) throw new Error('copy engine: the reset left the ring running');

  device.disableInterrupts(2);
  setBusMaster(device.config, false);
  if (opts.iommu === 'spapr') {
    for (const b of [dst, src, records, ring]) b.close();
    container.disable();
  }
  return { id, bytes, descriptors: n, completed, completion, identical, mmapped, fault };
}

/** The program: a host with the copy engine in group 4, the driver moving --mib=N MiB (64). */
export function cli(argv: readonly string[], print: (line: string) => void = console.log): void {
  const opts = cliHostOptions(argv);
  const mib = Number(argv.find((a) => a.startsWith('--mib='))?.slice(6) ?? 64);
  const host = exampleHost(opts, [{ bdf: '0000:00:04.0', model: 'copy-engine', iommuGroup: 4 }]);
  const p = host.spawn({ rlimitMemlock: EXAMPLE_MEMLOCK });
  const t0 = performance.now();
  const r = main(p, {
    group: 4,
    device: '0000:00:04.0',
    iommu: iommuOf(opts),
    bytes: mib << 20,
    log: (l) => print(`  ${l}`),
  });
  print(`  ${r.bytes >> 20} MiB in ${(performance.now() - t0).toFixed(0)} ms of wall time`);
  p.exit();
  print(`live kernel objects after exit: ${JSON.stringify(host.liveObjects())}`);
}

if (isMain(import.meta)) cli(process.argv.slice(2));
