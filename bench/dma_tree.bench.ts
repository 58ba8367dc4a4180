// MAP+UNMAP cost and memory of the type1 DMA mapping tree at 1k, 100k and 1M
// live mappings, for the B+tree and the sorted-array baseline.
//
// A pair is what the backend does for VFIO_IOMMU_MAP_DMA followed by
// VFIO_IOMMU_UNMAP_DMA of a fresh 4 KiB page: findOverlap, insert, remove.
// Candidate iovas (random 4 KiB pages of a 48-bit space) are generated before
// timing, so the bigint creation of the ioctl decoding is not counted but
// every conversion inside the tree is.
//
// Memory is (heapUsed + external) growth across filling the tree, divided by
// its count, with forced GCs on both sides when run with --expose-gc;
// external is where the typed-array arenas live.
//
// Time is reported twice, as the median over rounds of wall-clock time and
// of process CPU time: on a shared machine the wall clock also counts the
// time other processes held the CPU, which CPU time leaves out.
//
//   node --expose-gc --import tsx bench/dma_tree.bench.ts

import { pathToFileURL } from 'node:url';
import type { DmaTree } from '../src/vfio/iommu_type1/dma_tree.ts';
import { createDmaTree, createNaiveDmaTree, dmaTreeStats } from '../src/vfio/iommu_type1/dma_tree.ts';

const PAGE = 4096n;
const SIZES = [1_000, 100_000, 1_000_000];
// The sorted array shifts n/2 pointers per insert and remove, so filling it
// to 1M would take minutes; past this it is not measured.
const NAIVE_MAX = 100_000;
const CANDIDATES = 1 << 16;
const ROUNDS = 7;
const ROUND_NS = 150e6;

// Deterministic so runs are comparable.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

// A random 4 KiB-aligned iova below 2^48.
function randomIova(next: () => number): bigint {
  const page = (next() & 0xf) * 0x1_0000_0000 + next();
  return BigInt(page) * PAGE;
}

// ArrayBuffer backing stores are released after the GC that finds them dead,
// so let a previous tree's arenas actually go before reading the counters.
async function settle(): Promise<void> {
  const g = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    g?.();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function memNow(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

function fill(t: DmaTree, n: number, next: () => number): void {
  let handle = 0;
  while (t.count < n) {
    const iova = randomIova(next);
    if (t.findOverlap(iova, PAGE) !== undefined) continue;
    t.insert({
      iova,
      size: PAGE,
      vaddr: iova + 0x7f00_0000_0000n,
      prot: 3,
      handle: handle++,
      vaddrInvalid: false,
    });
  }
}

// Runs `pairs` MAP+UNMAP pairs; returns how many found an overlap instead.
function pairs(t: DmaTree, iovas: bigint[], vaddrs: bigint[], count: number, from: number): number {
  let hits = 0;
  const mask = iovas.length - 1;
  for (let i = from; i < from + count; i++) {
    const iova = iovas[i & mask]!;
    if (t.findOverlap(iova, PAGE) !== undefined) {
      hits++;
      continue;
    }
    t.insert({ iova, size: PAGE, vaddr: vaddrs[i & mask]!, prot: 3, handle: i, vaddrInvalid: false });
    t.remove(iova);
  }
  return hits;
}

interface Result {
  wallNs: number;
  cpuNs: number;
  minNs: number;
  bytesPerMapping: number;
  hits: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

async function measure(make: () => DmaTree, n: number, seed: number): Promise<{ r: Result; t: DmaTree }> {
  const next = rng(seed);
  const iovas: bigint[] = [];
  const vaddrs: bigint[] = [];
  for (let i = 0; i < CANDIDATES; i++) {
    const iova = randomIova(next);
    iovas.push(iova);
    vaddrs.push(iova + 0x7f00_0000_0000n);
  }
  await settle();
  const before = memNow();
  const t = make();
  fill(t, n, next);
  await settle();
  const bytesPerMapping = (memNow() - before) / n;

  // Size a round so it lasts ~ROUND_NS, after a warm-up that lets the JIT settle.
  let batch = 1000;
  let done = 0;
  for (;;) {
    const t0 = process.hrtime.bigint();
    pairs(t, iovas, vaddrs, batch, done);
    done += batch;
    const dt = Number(process.hrtime.bigint() - t0);
    if (dt > ROUND_NS / 4) {
      batch = Math.max(1000, Math.round((batch * ROUND_NS) / dt));
      break;
    }
    batch *= 2;
  }
  const wall: number[] = [];
  const cpu: number[] = [];
  let hits = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    hits += pairs(t, iovas, vaddrs, batch, done);
    wall.push(Number(process.hrtime.bigint() - t0) / batch);
    const c = process.cpuUsage(c0);
    cpu.push(((c.user + c.system) * 1000) / batch);
    done += batch;
  }
  if (t.count !== n) throw new Error(`bench: tree drifted to ${t.count} entries`);
  const r = { wallNs: median(wall), cpuNs: median(cpu), minNs: Math.min(...wall), bytesPerMapping, hits };
  return { r, t };
}

function fmt(n: number): string {
  return n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n);
}

export async function benchDmaTree(report: (line: string) => void): Promise<void> {
  if (!(globalThis as { gc?: unknown }).gc) {
    report('dma_tree: no global.gc (run node with --expose-gc); memory figures include garbage');
  }
  const impls: [string, () => DmaTree, number][] = [
    ['btree', createDmaTree, Number.POSITIVE_INFINITY],
    ['naive', createNaiveDmaTree, NAIVE_MAX],
  ];
  const byImpl = new Map<string, Map<number, Result>>();
  for (const [name, make, max] of impls) {
    const results = new Map<number, Result>();
    byImpl.set(name, results);
    for (const n of SIZES) {
      if (n > max) {
        report(
          `dma_tree ${name.padEnd(5)} ${fmt(n).padStart(5)} live: skipped (O(n) insert; capped at ${fmt(max)})`,
        );
        continue;
      }
      const { r, t } = await measure(make, n, 0x5eed + n);
      results.set(n, r);
      const st = dmaTreeStats(t);
      const shape = st
        ? `  height ${st.height}, ${st.leaves} leaves, arena ${(st.arenaBytes / n).toFixed(1)} B/mapping`
        : '';
      report(
        `dma_tree ${name.padEnd(5)} ${fmt(n).padStart(5)} live: ` +
          `${r.wallNs.toFixed(0).padStart(6)} ns/pair wall (min ${r.minNs.toFixed(0)}), ` +
          `${r.cpuNs.toFixed(0).padStart(6)} ns/pair cpu, ` +
          `${r.bytesPerMapping.toFixed(1)} bytes/mapping${n < 100_000 ? ' (noise: fixed costs, GC timing)' : ''}${shape}` +
          (r.hits ? `, ${r.hits} candidates overlapped` : ''),
      );
    }
    const small = results.get(SIZES[0]!);
    const big = results.get(SIZES[SIZES.length - 1]!);
    if (small && big) {
      report(
        `dma_tree ${name.padEnd(5)} ratio ${fmt(SIZES[SIZES.length - 1]!)}/${fmt(SIZES[0]!)}: ` +
          `${(big.wallNs / small.wallNs).toFixed(2)}x wall, ${(big.cpuNs / small.cpuNs).toFixed(2)}x cpu`,
      );
    }
  }
  for (const n of SIZES) {
    const b = byImpl.get('btree')?.get(n);
    const v = byImpl.get('naive')?.get(n);
    if (b && v) {
      report(
        `dma_tree naive/btree at ${fmt(n)} live: ${(v.cpuNs / b.cpuNs).toFixed(1)}x the cpu time per pair`,
      );
    }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchDmaTree((line) => console.log(line));
}
