/*
 * The kernel documentation's canonical VFIO sequence again, through the
 * library: the same steps as canonical.raw.ts, each one call, each failure
 * a VfioError that names the call and the kernel's reason. Run it:
 * `npx tsx examples/canonical.lib.ts [--arch=ppc64] [--kernel=6.12]`.
 */
import {
  type DeviceInfo,
  DmaBuffer,
  type IrqInfo,
  type RegionInfo,
  VfioContainer,
  VfioError,
  VfioGroup,
} from '../src/lib/index.ts';
import {
  EINVAL,
  type Syscalls,
  VFIO_API_VERSION,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1_IOMMU,
} from '../src/uapi/index.ts';
import type { CanonicalOptions } from './canonical.raw.ts';
import { cliHostOptions, EXAMPLE_MEMLOCK, exampleHost, iommuOf, isMain } from './setup.ts';

export interface CanonicalLibResult {
  readonly apiVersion: number;
  readonly viable: boolean;
  readonly iommu: { readonly pgsizes?: bigint; readonly window?: readonly [number, number] };
  readonly dma: { readonly iova: bigint; readonly size: bigint };
  readonly deviceInfo: DeviceInfo;
  /** regions by index; the ones the kernel refuses (EINVAL: VGA on a non-VGA device) are left out */
  readonly regions: readonly RegionInfo[];
  /** IRQ indexes; the ones the kernel refuses (EINVAL: ERR on a conventional PCI device) are left out */
  readonly irqs: readonly IrqInfo[];
  readonly eventfdIndex: number | undefined;
  readonly reset: boolean;
}

export function main(sys: Syscalls, opts: CanonicalOptions): CanonicalLibResult {
  const log = opts.log ?? (() => {});
  const type = opts.iommu === 'type1' ? VFIO_TYPE1_IOMMU : VFIO_SPAPR_TCE_IOMMU;

  using container = VfioContainer.open(sys);
  const apiVersion = container.apiVersion();
  if (apiVersion !== VFIO_API_VERSION) throw new Error(`unknown API version ${apiVersion}`);
  if (container.checkExtension(type) === 0)
    throw new Error(`the IOMMU driver of type ${type} is not supported`);

  using group = VfioGroup.open(sys, opts.group);
  const { viable } = group.status();
  if (!viable) throw new Error('group is not viable (ie, not all devices bound for vfio)');
  group.setContainer(container);
  container.setIommu(type);

  let iommu: CanonicalLibResult['iommu'];
  if (opts.iommu === 'type1') {
    const info = container.iommuInfo();
    iommu = { pgsizes: info.iovaPgsizes };
    log(
      `type1: page sizes 0x${info.iovaPgsizes.toString(16)}, IOVA ranges ${JSON.stringify(info.iovaRanges?.length ?? 'not reported')}`,
    );
  } else {
    const info = container.spaprInfo();
    iommu = { window: [info.dma32WindowStart, info.dma32WindowSize] };
    container.enable();
    log(`sPAPR: DMA window 0x${info.dma32WindowStart.toString(16)}+0x${info.dma32WindowSize.toString(16)}`);
  }

  /* 1 MiB of memory mapped for DMA, at the lowest IOVA the container allows */
  using dma = DmaBuffer.allocate(container, 1n << 20n);
  log(`DMA buffer: vaddr 0x${dma.vaddr.toString(16)} at IOVA 0x${dma.iova.toString(16)}`);

  using device = group.device(opts.device);
  const deviceInfo = device.info();
  const regions: RegionInfo[] = [];
  for (let i = 0; i < deviceInfo.numRegions; i++) {
    try {
      regions.push(device.regionInfo(i));
    } catch (e) {
      if (!(e instanceof VfioError && e.errno === EINVAL)) throw e;
      log(`region ${i}: ${e.message}`);
    }
  }
  const irqs: IrqInfo[] = [];
  for (let i = 0; i < deviceInfo.numIrqs; i++) {
    try {
      irqs.push(device.irqInfo(i));
    } catch (e) {
      /* vfio-pci refuses the ERR index of a conventional (non-PCIe) device */
      if (!(e instanceof VfioError && e.errno === EINVAL)) throw e;
      log(`IRQ index ${i}: ${e.message}`);
    }
  }

  const first = irqs.find((i) => i.count > 0 && i.eventfd);
  if (first !== undefined) {
    device.enableInterrupts(first.index, 1);
    device.disableInterrupts(first.index);
  }
  if (deviceInfo.reset) device.reset();
  if (opts.iommu === 'spapr') {
    dma.close();
    container.disable();
  }
  return {
    apiVersion,
    viable,
    iommu,
    dma: { iova: dma.iova, size: dma.size },
    deviceInfo,
    regions,
    irqs,
    eventfdIndex: first?.index,
    reset: deviceInfo.reset,
  };
  /* `using`: device, DMA buffer, group and container close here, in that order */
}

/** The program: a host with edu in group 26, one process, the sequence, what is left after exit. */
export function cli(argv: readonly string[], print: (line: string) => void = console.log): void {
  const opts = cliHostOptions(argv);
  const host = exampleHost(opts, [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 26 }]);
  const p = host.spawn({ rlimitMemlock: EXAMPLE_MEMLOCK });
  const r = main(p, {
    group: 26,
    device: '0000:00:03.0',
    iommu: iommuOf(opts),
    log: (l) => print(`  ${l}`),
  });
  print(
    `  device: ${r.deviceInfo.numRegions} regions, ${r.deviceInfo.numIrqs} IRQ indexes, reset ${r.reset}`,
  );
  p.exit();
  print(`live kernel objects after exit: ${JSON.stringify(host.liveObjects())}`);
}

if (isMain(import.meta)) cli(process.argv.slice(2));
