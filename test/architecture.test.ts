import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

/*
 * The dependency rule of docs/architecture.md, enforced: imports flow one
 * way between subsystems, and a cross-folder import targets the folder's
 * index.ts. This table IS the written rule.
 */
const ALLOWED: Record<string, readonly string[]> = {
  uapi: [],
  kernel: ['uapi'],
  pci: ['kernel', 'uapi'],
  iommu: ['pci', 'kernel', 'uapi'],
  devices: ['iommu', 'pci', 'kernel', 'uapi'],
  vfio: ['iommu', 'kernel', 'uapi'],
  'vfio/iommu_type1': ['vfio', 'iommu', 'kernel', 'uapi'],
  'vfio/iommu_spapr_tce': ['vfio', 'iommu', 'kernel', 'uapi'],
  'vfio/pci': ['vfio', 'pci', 'iommu', 'kernel', 'uapi'],
  debugfs: [
    'vfio',
    'vfio/iommu_type1',
    'vfio/iommu_spapr_tce',
    'vfio/pci',
    'devices',
    'iommu',
    'pci',
    'kernel',
    'uapi',
  ],
  host: [
    'vfio',
    'vfio/iommu_type1',
    'vfio/iommu_spapr_tce',
    'vfio/pci',
    'devices',
    'iommu',
    'pci',
    'kernel',
    'uapi',
    'debugfs',
  ],
  lib: ['uapi'],
  viz: ['debugfs', 'uapi'],
  cli: ['lib', 'host', 'viz', 'debugfs', 'uapi'],
  '.': ['uapi', 'host', 'kernel', 'lib', 'debugfs', 'viz'],
};

const SRC = resolve('src');

function layerOf(file: string): string {
  const rel = relative(SRC, file).split('/');
  if (rel.length === 1) return '.';
  if (rel[0] === 'vfio' && rel.length > 2) return `vfio/${rel[1]}`;
  return rel[0] ?? '.';
}

function sources(): string[] {
  return readdirSync(SRC, { recursive: true })
    .map((f) => join(SRC, String(f)))
    .filter((f) => f.endsWith('.ts'));
}

test('every import respects the layer table and goes through index.ts', () => {
  const violations: string[] = [];
  for (const file of sources()) {
    const from = layerOf(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g)) {
      const spec = m[1] ?? m[2] ?? '';
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const to = layerOf(target);
      if (to === from) continue;
      const allowed = ALLOWED[from] ?? [];
      if (!allowed.includes(to)) violations.push(`${relative(SRC, file)}: ${from} -> ${to} (${spec})`);
      else if (!target.endsWith('/index.ts'))
        violations.push(`${relative(SRC, file)}: imports ${spec}, not ${to}/index.ts`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the layer table knows every folder under src', () => {
  const layers = new Set(sources().map(layerOf));
  for (const l of layers) assert.ok(l in ALLOWED, `folder ${l} is missing from the layer table`);
});
