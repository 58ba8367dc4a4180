/*
 * npm run bench: every benchmark of the project, each printing its own
 * figures as ratios against a baseline measured in the same run (never
 * absolute targets in tests). Add a benchmark by adding it to BENCHES.
 */
type Bench = {
  readonly name: string;
  readonly load: () => Promise<(report: (line: string) => void) => Promise<void>>;
};

const BENCHES: Bench[] = [
  { name: 'type1 dma tree', load: async () => (await import('./dma_tree.bench.ts')).benchDmaTree },
  { name: 'vfio core syscalls', load: async () => (await import('./core.bench.ts')).benchCore },
  { name: 'tracing cost', load: async () => (await import('./trace.bench.ts')).benchTrace },
  { name: 'sPAPR TCE map/unmap and DMA', load: async () => (await import('./spapr.bench.ts')).benchSpapr },
  { name: 'type1 MAP+UNMAP', load: async () => (await import('./type1.bench.ts')).benchType1 },
  { name: 'vfio-pci DMA and MMIO', load: async () => (await import('./vfio_pci.bench.ts')).benchVfioPci },
];

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  for (const b of BENCHES) {
    if (only.length > 0 && !only.some((o) => b.name.includes(o))) continue;
    console.log(`\n== ${b.name} ==`);
    const run = await b.load();
    await run((line) => console.log(line));
  }
}

await main();
