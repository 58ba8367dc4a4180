/*
 * The canonical VFIO sequence of the kernel's documentation
 * (Documentation/driver-api/vfio.rst, "VFIO Usage Example"), through the
 * raw system calls only: every argument is bytes laid out as linux/vfio.h
 * says, in this process's memory. Run it: `npx tsx examples/canonical.raw.ts
 * [--arch=ppc64] [--kernel=6.12]`.
 */
import {
  errnoName,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type Syscalls,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1_IOMMU,
  vfio_device_info,
  vfio_group_status,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
} from '../src/uapi/index.ts';
import { cliHostOptions, EXAMPLE_MEMLOCK, exampleHost, iommuOf, isMain } from './setup.ts';

export interface CanonicalOptions {
  /** the IOMMU group number (the doc's 26) */
  readonly group: number;
  /** the device's name in the group (the doc's "0000:06:0d.0") */
  readonly device: string;
  /** type1 (x86) or the sPAPR TCE IOMMU (POWER) */
  readonly iommu: 'type1' | 'spapr';
  readonly log?: (line: string) => void;
}

export interface CanonicalResult {
  readonly apiVersion: number;
  readonly groupFlags: number;
  /** type1: iova_pgsizes; sPAPR: the DMA window */
  readonly iommuInfo: {
    readonly flags: number;
    readonly pgsizes?: bigint;
    readonly window?: readonly [number, number];
  };
  readonly dma: { readonly iova: bigint; readonly size: bigint; readonly unmapped: bigint };
  readonly deviceInfo: { readonly flags: number; readonly numRegions: number; readonly numIrqs: number };
  /** GET_REGION_INFO per index: the info, or the errno the kernel refused it with */
  readonly regions: readonly (
    | { index: number; flags: number; size: bigint; offset: bigint }
    | { index: number; errno: string }
  )[];
  /** GET_IRQ_INFO per index: the info, or the errno the kernel refused it with */
  readonly irqs: readonly (
    | { index: number; flags: number; count: number }
    | { index: number; errno: string }
  )[];
  /** the IRQ index given an eventfd, if any */
  readonly eventfdIndex: number | undefined;
  /** VFIO_DEVICE_RESET's result (undefined when the device cannot reset) */
  readonly reset: number | undefined;
}

const DMA_SIZE = 1n << 20n;

/** The documentation's sequence; throws an Error naming the step that failed. */
export function main(sys: Syscalls, opts: CanonicalOptions): CanonicalResult {
  const log = opts.log ?? (() => {});
  const ok = (what: string, ret: number | bigint): number => {
    const n = Number(ret);
    log(`${what} = ${n < 0 ? `-${errnoName(-n)}` : n}`);
    if (n < 0)
      throw new Error(`${what} failed: ${errnoName(-n)}${sys.lastError?.() ? `: ${sys.lastError()}` : ''}`);
    return n;
  };
  /* one page of memory for the ioctl arguments */
  const arg = sys.mmap(0n, sys.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  ok('mmap(arguments)', arg < 0n ? arg : 0);
  const type = opts.iommu === 'type1' ? VFIO_TYPE1_IOMMU : VFIO_SPAPR_TCE_IOMMU;

  /* Create a new container */
  const container = ok('open("/dev/vfio/vfio")', sys.open('/dev/vfio/vfio', O_RDWR));
  const apiVersion = ok('VFIO_GET_API_VERSION', sys.ioctl(container, VFIO_GET_API_VERSION));
  if (apiVersion !== VFIO_API_VERSION) throw new Error(`unknown API version ${apiVersion}`);
  if (ok('VFIO_CHECK_EXTENSION', sys.ioctl(container, VFIO_CHECK_EXTENSION, type)) === 0)
    throw new Error(`the IOMMU driver of type ${type} is not supported`);

  /* Open the group */
  const group = ok(`open("/dev/vfio/${opts.group}")`, sys.open(`/dev/vfio/${opts.group}`, O_RDWR));

  /* Test the group is viable and available */
  sys.mem.write(arg, vfio_group_status.encode({ argsz: vfio_group_status.size }));
  ok('VFIO_GROUP_GET_STATUS', sys.ioctl(group, VFIO_GROUP_GET_STATUS, arg));
  const groupFlags = vfio_group_status.decode(sys.mem.read(arg, vfio_group_status.size)).flags;
  if (!(groupFlags & VFIO_GROUP_FLAGS_VIABLE))
    throw new Error('group is not viable (ie, not all devices bound for vfio)');

  /* Add the group to the container */
  sys.mem.write(arg, new Uint8Array(new Int32Array([container]).buffer));
  ok('VFIO_GROUP_SET_CONTAINER', sys.ioctl(group, VFIO_GROUP_SET_CONTAINER, arg));

  /* Enable the IOMMU model we want */
  ok('VFIO_SET_IOMMU', sys.ioctl(container, VFIO_SET_IOMMU, type));

  /* Get addition IOMMU info */
  let iommuInfo: CanonicalResult['iommuInfo'];
  let iova = 0n;
  if (opts.iommu === 'type1') {
    sys.mem.write(arg, vfio_iommu_type1_info.encode({ argsz: vfio_iommu_type1_info.size }));
    ok('VFIO_IOMMU_GET_INFO', sys.ioctl(container, VFIO_IOMMU_GET_INFO, arg));
    const i = vfio_iommu_type1_info.decode(sys.mem.read(arg, vfio_iommu_type1_info.size));
    iommuInfo = { flags: i.flags, pgsizes: i.iova_pgsizes };
  } else {
    sys.mem.write(arg, vfio_iommu_spapr_tce_info.encode({ argsz: vfio_iommu_spapr_tce_info.size }));
    ok('VFIO_IOMMU_SPAPR_TCE_GET_INFO', sys.ioctl(container, VFIO_IOMMU_SPAPR_TCE_GET_INFO, arg));
    const i = vfio_iommu_spapr_tce_info.decode(sys.mem.read(arg, vfio_iommu_spapr_tce_info.size));
    iommuInfo = { flags: i.flags, window: [i.dma32_window_start, i.dma32_window_size] };
    iova = BigInt(i.dma32_window_start);
    /* sPAPR: the window is charged to locked memory before any mapping */
    ok('VFIO_IOMMU_ENABLE', sys.ioctl(container, VFIO_IOMMU_ENABLE));
  }

  /* Allocate some space and setup a DMA mapping */
  const vaddr = sys.mmap(0n, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  ok('mmap(1 MiB)', vaddr < 0n ? vaddr : 0);
  sys.mem.write(
    arg,
    vfio_iommu_type1_dma_map.encode({
      argsz: vfio_iommu_type1_dma_map.size,
      flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
      vaddr,
      iova,
      size: DMA_SIZE,
    }),
  );
  ok('VFIO_IOMMU_MAP_DMA', sys.ioctl(container, VFIO_IOMMU_MAP_DMA, arg));

  /* Get a file descriptor for the device */
  sys.mem.write(arg, new TextEncoder().encode(`${opts.device}\0`));
  const device = ok(
    `VFIO_GROUP_GET_DEVICE_FD("${opts.device}")`,
    sys.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, arg),
  );

  /* Test and setup the device */
  sys.mem.write(arg, vfio_device_info.encode({ argsz: vfio_device_info.size }));
  ok('VFIO_DEVICE_GET_INFO', sys.ioctl(device, VFIO_DEVICE_GET_INFO, arg));
  const di = vfio_device_info.decode(sys.mem.read(arg, vfio_device_info.size));

  const regions: CanonicalResult['regions'][number][] = [];
  for (let index = 0; index < di.num_regions; index++) {
    sys.mem.write(arg, vfio_region_info.encode({ argsz: vfio_region_info.size, index }));
    const r = sys.ioctl(device, VFIO_DEVICE_GET_REGION_INFO, arg);
    log(`VFIO_DEVICE_GET_REGION_INFO(${index}) = ${r < 0 ? `-${errnoName(-r)}` : r}`);
    if (r < 0) {
      regions.push({ index, errno: errnoName(-r) });
      continue;
    }
    const ri = vfio_region_info.decode(sys.mem.read(arg, vfio_region_info.size));
    /* Setup mappings... read/write offsets, mmaps; for PCI devices, config space is a region */
    regions.push({ index, flags: ri.flags, size: ri.size, offset: ri.offset });
  }

  const irqs: CanonicalResult['irqs'][number][] = [];
  for (let index = 0; index < di.num_irqs; index++) {
    sys.mem.write(arg, vfio_irq_info.encode({ argsz: vfio_irq_info.size, index }));
    const r = sys.ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, arg);
    log(`VFIO_DEVICE_GET_IRQ_INFO(${index}) = ${r < 0 ? `-${errnoName(-r)}` : r}`);
    /* vfio-pci refuses the ERR index of a conventional (non-PCIe) device */
    if (r < 0) {
      irqs.push({ index, errno: errnoName(-r) });
      continue;
    }
    const ii = vfio_irq_info.decode(sys.mem.read(arg, vfio_irq_info.size));
    irqs.push({ index, flags: ii.flags, count: ii.count });
  }

  /* Setup IRQs... eventfds, VFIO_DEVICE_SET_IRQS: one vector of the first interrupt the device has */
  const first = irqs.find(
    (i): i is { index: number; flags: number; count: number } =>
      'count' in i && i.count > 0 && (i.flags & VFIO_IRQ_INFO_EVENTFD) !== 0,
  );
  if (first !== undefined) {
    const efd = ok('eventfd', sys.eventfd(0, 0));
    const set = new Uint8Array(vfio_irq_set.size + 4);
    vfio_irq_set.encode(
      {
        argsz: set.length,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        index: first.index,
        start: 0,
        count: 1,
      },
      set,
    );
    new DataView(set.buffer).setInt32(vfio_irq_set.size, efd, true);
    sys.mem.write(arg, set);
    ok(
      `VFIO_DEVICE_SET_IRQS(index ${first.index}, eventfd ${efd})`,
      sys.ioctl(device, VFIO_DEVICE_SET_IRQS, arg),
    );
    /* and off again: DATA_NONE | ACTION_TRIGGER with count 0 */
    sys.mem.write(
      arg,
      vfio_irq_set.encode({
        argsz: vfio_irq_set.size,
        flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
        index: first.index,
        start: 0,
        count: 0,
      }),
    );
    ok(`VFIO_DEVICE_SET_IRQS(index ${first.index}, off)`, sys.ioctl(device, VFIO_DEVICE_SET_IRQS, arg));
    ok('close(eventfd)', sys.close(efd));
  }

  /* Gratuitous device reset and go... */
  const reset =
    di.flags & VFIO_DEVICE_FLAGS_RESET
      ? ok('VFIO_DEVICE_RESET', sys.ioctl(device, VFIO_DEVICE_RESET))
      : undefined;

  /* and tidy up, in the reverse order */
  ok('close(device)', sys.close(device));
  sys.mem.write(
    arg,
    vfio_iommu_type1_dma_unmap.encode({ argsz: vfio_iommu_type1_dma_unmap.size, iova, size: DMA_SIZE }),
  );
  ok('VFIO_IOMMU_UNMAP_DMA', sys.ioctl(container, VFIO_IOMMU_UNMAP_DMA, arg));
  const unmapped = vfio_iommu_type1_dma_unmap.decode(sys.mem.read(arg, vfio_iommu_type1_dma_unmap.size)).size;
  if (opts.iommu === 'spapr') ok('VFIO_IOMMU_DISABLE', sys.ioctl(container, VFIO_IOMMU_DISABLE));
  ok('munmap(1 MiB)', sys.munmap(vaddr, DMA_SIZE));
  ok('close(group)', sys.close(group));
  ok('close(container)', sys.close(container));
  ok('munmap(arguments)', sys.munmap(arg, sys.pageSize));

  return {
    apiVersion,
    groupFlags,
    iommuInfo,
    dma: { iova, size: DMA_SIZE, unmapped },
    deviceInfo: { flags: di.flags, numRegions: di.num_regions, numIrqs: di.num_irqs },
    regions,
    irqs,
    eventfdIndex: first?.index,
    reset,
  };
}

/** The program: a host with edu in group 26, one process, the sequence, what is left after exit. */
export function cli(argv: readonly string[], print: (line: string) => void = console.log): void {
  const opts = cliHostOptions(argv);
  const host = exampleHost(opts, [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 26 }]);
  const p = host.spawn({ rlimitMemlock: EXAMPLE_MEMLOCK });
  main(p, {
    group: 26,
    device: '0000:00:03.0',
    iommu: iommuOf(opts),
    log: (l) => print(`  ${l}`),
  });
  p.exit();
  print(`live kernel objects after exit: ${JSON.stringify(host.liveObjects())}`);
}

if (isMain(import.meta)) cli(process.argv.slice(2));
