// sPAPR TCE: mapping and unmapping a whole 1 GiB DMA window in 4 KiB TCEs
// (262144 entries, one VFIO_IOMMU_MAP_DMA and one VFIO_IOMMU_UNMAP_DMA),
// and a device reading 4 KiB at a time through the TCE table.
//
// Each figure is reported with a baseline measured in the same run:
//  - MAP+UNMAP against the floor any implementation pays, get_user_pages
//    and put_page of the same IOMMU pages (MmStruct.pinPage/unpinPage);
//  - 6.12 v2 (preregistered memory: no pinning per TCE) against the same floor;
//  - device DMA through the table against reading the same bytes straight
//    from physical memory.
//
//   node --expose-gc --import tsx bench/spapr.bench.ts

import { pathToFileURL } from 'node:url';
import { Host, type Process } from '../src/index.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '../src/uapi/index.ts';

const WINDOW = 1 << 30;
const ENTRIES = WINDOW / 4096;
const ROUNDS = 5;
const BDF = '0001:00:01.0';

interface Setup {
  readonly host: Host;
  readonly p: Process;
  readonly c: number;
  readonly arg: bigint;
  readonly buf: bigint;
}

function setup(kernel: '4.1' | '6.12', type: number): Setup {
  const host = new Host({ arch: 'ppc64', kernel });
  host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 1 });
  if (host.bind(BDF, 'vfio-pci') !== 0) throw new Error('bind');
  const p = host.spawn({ rlimitMemlock: 1n << 40n });
  const arg = p.mmap(0n, p.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const buf = p.mmap(0n, WINDOW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const c = p.open('/dev/vfio/vfio', O_RDWR);
  const g = p.open('/dev/vfio/1', O_RDWR);
  p.mem.write(arg, new Uint8Array(new Int32Array([c]).buffer));
  if (p.ioctl(g, VFIO_GROUP_SET_CONTAINER, arg) !== 0) throw new Error('SET_CONTAINER');
  if (p.ioctl(c, VFIO_SET_IOMMU, type) !== 0) throw new Error('SET_IOMMU');
  if (type === VFIO_SPAPR_TCE_IOMMU) {
    if (p.ioctl(c, VFIO_IOMMU_ENABLE) !== 0) throw new Error('ENABLE');
  } else {
    p.mem.write(
      arg,
      vfio_iommu_spapr_register_memory.encode({ argsz: 24, vaddr: buf, size: BigInt(WINDOW) }),
    );
    if (p.ioctl(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, arg) !== 0) throw new Error('REGISTER_MEMORY');
  }
  return { host, p, c, arg, buf };
}

function mapUnmap(s: Setup): void {
  s.p.mem.write(
    s.arg,
    vfio_iommu_type1_dma_map.encode({ argsz: 32, flags: 3, vaddr: s.buf, iova: 0n, size: BigInt(WINDOW) }),
  );
  if (s.p.ioctl(s.c, VFIO_IOMMU_MAP_DMA, s.arg) !== 0) throw new Error('MAP');
  s.p.mem.write(s.arg, vfio_iommu_type1_dma_unmap.encode({ argsz: 24, iova: 0n, size: BigInt(WINDOW) }));
  if (s.p.ioctl(s.c, VFIO_IOMMU_UNMAP_DMA, s.arg) !== 0) throw new Error('UNMAP');
}

/* the floor: pin and release every 4 KiB IOMMU page of the window, nothing else */
function pinFloor(s: Setup): void {
  const mm = s.p.task.mm;
  if (mm === null) throw new Error('no mm');
  const base = Number(s.buf);
  const ps = s.p.pageSize;
  const pinned: number[] = new Array(ENTRIES);
  for (let i = 0; i < ENTRIES; i++) {
    const a = base + i * 4096;
    pinned[i] = mm.pinPage(a - (a % ps), true);
  }
  for (let i = 0; i < ENTRIES; i++) mm.unpinPage(pinned[i] ?? 0, true);
}

function best(fn: () => void): number {
  fn(); /* warm up */
  let min = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t0));
  }
  return min;
}

function rate(ns: number, n: number): string {
  return `${(((n / ns) * 1e9) / 1e6).toFixed(2)} M entries/s`;
}

export async function benchSpapr(report: (line: string) => void): Promise<void> {
  const v1 = setup('4.1', VFIO_SPAPR_TCE_IOMMU);
  const floor = best(() => pinFloor(v1));
  const map41 = best(() => mapUnmap(v1));
  report(
    `get_user_pages + put_page of ${ENTRIES} pages (baseline): ${(floor / 1e6).toFixed(1)} ms, ${rate(floor, ENTRIES)}`,
  );
  report(
    `4.1 MAP+UNMAP of a 1 GiB window in 4 KiB TCEs: ${(map41 / 1e6).toFixed(1)} ms, ${rate(map41, ENTRIES)} (${(map41 / floor).toFixed(2)}x baseline)`,
  );
  const v2 = setup('6.12', VFIO_SPAPR_TCE_v2_IOMMU);
  mapUnmap(v2); /* the default window is created on first use */
  const map612 = best(() => mapUnmap(v2));
  report(
    `6.12 v2 MAP+UNMAP (preregistered, no pinning): ${(map612 / 1e6).toFixed(1)} ms, ${rate(map612, ENTRIES)} (${(map612 / floor).toFixed(2)}x baseline)`,
  );

  /* device DMA: 4 KiB reads across a mapped 64 MiB region */
  const REGION = 64 << 20;
  v1.p.mem.write(
    v1.arg,
    vfio_iommu_type1_dma_map.encode({ argsz: 32, flags: 3, vaddr: v1.buf, iova: 0n, size: BigInt(REGION) }),
  );
  if (v1.p.ioctl(v1.c, VFIO_IOMMU_MAP_DMA, v1.arg) !== 0) throw new Error('MAP');
  const dev = v1.host.device(BDF);
  if (dev === undefined) throw new Error('no device');
  const mm = v1.p.task.mm;
  const vma = mm?.findVma(Number(v1.buf));
  if (vma?.obj === undefined) throw new Error('no backing');
  const physBase = vma.obj.phys + vma.objOffset;
  const b = new Uint8Array(4096);
  const N = REGION / 4096;
  const direct = best(() => {
    for (let i = 0; i < N; i++) v1.host.kernel.phys.read(physBase + i * 4096, b);
  });
  const viaTce = best(() => {
    for (let i = 0; i < N; i++)
      if (!v1.host.iommu.dmaAccess(dev, BigInt(i * 4096), b, false)) throw new Error('fault');
  });
  report(
    `4 KiB reads straight from physical memory (baseline): ${rate(direct, N).replace('entries', 'reads')}`,
  );
  report(
    `4 KiB device reads through the TCE table: ${rate(viaTce, N).replace('entries', 'reads')} (${(viaTce / direct).toFixed(2)}x baseline)`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchSpapr((l) => console.log(l));
