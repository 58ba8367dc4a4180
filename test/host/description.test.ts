import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PPC64_EDU, X86_EDU } from '../../src/cli/hosts.ts';
import {
  bootHost,
  HostDescriptionError,
  hostSchema,
  parseHostDescription,
  parseSize,
  validateHostDescription,
} from '../../src/host/index.ts';

/* Host description files: the schema, the pointed errors, booting. */

function issues(value: unknown): readonly string[] {
  try {
    validateHostDescription(value);
  } catch (e) {
    assert.ok(e instanceof HostDescriptionError, String(e));
    return e.issues;
  }
  assert.fail('the description was accepted');
}

const dev = (extra: Record<string, unknown>): Record<string, unknown> => ({
  devices: [{ bdf: '0000:00:01.0' }, { bdf: '0000:00:02.0' }, { bdf: '0000:00:03.0', ...extra }],
});

test('a bad PCI address is named by its index and field, with the expected form', () => {
  assert.deepEqual(issues(dev({ bdf: '0000:0g:00.0' })), [
    'devices[2].bdf: "0000:0g:00.0" is not a PCI address (dddd:bb:dd.f)',
  ]);
  assert.deepEqual(issues({ devices: [{ bdf: '0000:00:20.0' }] }), [
    'devices[0].bdf: "0000:00:20.0" is not a PCI address (dddd:bb:dd.f)',
  ]);
  assert.deepEqual(issues({ devices: [{ bdf: 3 }] }), [
    'devices[0].bdf: 3 is not a PCI address (dddd:bb:dd.f)',
  ]);
});

test('unknown fields are refused, with the nearest known name', () => {
  assert.deepEqual(issues({ devices: [{ bdf: '0000:00:01.0', modle: 'edu' }] }), [
    'devices[0].modle: unknown field (did you mean "model"?); known: bdf, model, iommuGroup, driver, parent, vendor, device, class, pcie, dmaMask',
  ]);
  assert.match(issues({ archh: 'x86_64' })[0] ?? '', /^archh: unknown field \(did you mean "arch"\?\)/);
});

test('enums, types, ranges and required fields', () => {
  assert.deepEqual(issues({ arch: 'arm64' }), ['arch: "arm64" is not one of "x86_64", "ppc64"']);
  assert.deepEqual(issues({ kernel: 5.4 }), ['kernel: 5.4 is not one of "4.1", "6.12"']);
  assert.deepEqual(issues({ iommu: { addressWidth: '48' } }), ['iommu.addressWidth: "48" is not an integer']);
  assert.deepEqual(issues({ iommu: { addressWidth: 70 } }), ['iommu.addressWidth: 70 is more than 64']);
  assert.deepEqual(issues({ devices: [{ model: 'edu' }] }), [
    'devices[0]: missing "bdf" (a PCI address (dddd:bb:dd.f))',
  ]);
  assert.deepEqual(issues({ devices: {} }), ['devices: {} is not an array']);
  assert.deepEqual(issues({ devices: [{ bdf: '0000:00:01.0', vendor: '0x12345' }] }), [
    'devices[0].vendor: "0x12345" is not a 16-bit id (an integer or a hex string such as "0x1234")',
  ]);
  assert.deepEqual(issues({ process: { rlimitMemlock: '64MB' } }), [
    'process.rlimitMemlock: "64MB" is not a size in bytes (an integer, "64K", "64M", "1G" or "unlimited")',
  ]);
  assert.deepEqual(issues([]), ['(top level): [] is not an object']);
});

test('every issue of a description is reported at once', () => {
  assert.deepEqual(
    issues({ arch: 'sparc', devices: [{ bdf: 'x' }, { bdf: '0000:00:01.0', iommuGroup: -1 }] }),
    [
      'arch: "sparc" is not one of "x86_64", "ppc64"',
      'devices[0].bdf: "x" is not a PCI address (dddd:bb:dd.f)',
      'devices[1].iommuGroup: -1 is less than 0',
    ],
  );
});

test('references between fields: duplicates, parents, models, windows, pages', () => {
  assert.deepEqual(issues({ devices: [{ bdf: '0000:00:01.0' }, { bdf: '0000:00:01.0' }] }), [
    'devices[1].bdf: "0000:00:01.0" is already used by devices[0]',
  ]);
  assert.deepEqual(issues({ devices: [{ bdf: '0000:01:00.0', parent: '0000:00:1c.0' }] }), [
    'devices[0].parent: no device "0000:00:1c.0" is listed before this one',
  ]);
  assert.match(
    issues({ devices: [{ bdf: '0000:00:01.0', model: 'nope' }] })[0] ?? '',
    /^devices\[0\]\.model: "nope" is not a known device model \(known: generic/,
  );
  assert.deepEqual(issues({ arch: 'x86_64', pageSize: 65536 }), [
    'pageSize: 65536 is not possible on x86_64 (PAGE_SIZE is 4096)',
  ]);
  assert.deepEqual(issues({ iommu: { dma32WindowSize: '0x40000000' } }), [
    'iommu.dma32WindowSize: only a ppc64 host has a 32-bit DMA window',
  ]);
  assert.deepEqual(issues({ iommu: { reservedRegions: [{ start: '0x2000', end: '0x1000' }] } }), [
    'iommu.reservedRegions[0]: start "0x2000" is after end "0x1000"',
  ]);
});

test('JSON syntax errors say the line and column', () => {
  assert.throws(
    () => parseHostDescription('{\n  "arch": "x86_64",\n  "devices": [,]\n}', 'bad.json'),
    (e: unknown) =>
      e instanceof HostDescriptionError &&
      e.file === 'bad.json' &&
      /^line 3, column 15: not valid JSON/.test(e.issues[0] ?? ''),
  );
});

test('sizes and numbers are converted', () => {
  assert.equal(parseSize('64M'), 64n << 20n);
  assert.equal(parseSize('4K'), 4096n);
  assert.equal(parseSize(12345), 12345n);
  assert.equal(parseSize('0x1000'), 4096n);
  assert.equal(parseSize('unlimited'), 0xffff_ffff_ffff_ffffn);
  const d = validateHostDescription({
    iommu: { reservedRegions: [{ start: '0xfee00000', end: 4277141503, type: 'msi' }] },
    devices: [{ bdf: '0000:00:0A.0', vendor: '0x8086', device: 4307, class: '0x020000' }],
    process: { rlimitMemlock: '1G', rlimitNofile: 64 },
  });
  assert.deepEqual(d.iommu.reservedRegions, [{ start: 0xfee00000n, end: 0xfeefffffn, type: 'msi' }]);
  assert.deepEqual(d.devices, [
    { bdf: '0000:00:0a.0', model: 'generic', vendor: 0x8086, device: 0x10d3, class: 0x020000 },
  ]);
  assert.deepEqual(d.process, { rlimitMemlock: 1n << 30n, rlimitNofile: 64n });
  assert.equal(d.arch, 'x86_64');
  assert.equal(d.kernel, '4.1');
});

test('a description boots into the machine it describes', () => {
  const host = bootHost(
    validateHostDescription({
      kernel: '6.12',
      iommu: { addressWidth: 48, intrRemap: false },
      devices: [
        { bdf: '0000:00:02.0', iommuGroup: 2, driver: 'e1000e' },
        { bdf: '0000:00:03.0', iommuGroup: 3, driver: 'vfio-pci' },
      ],
    }),
  );
  assert.equal(host.version, '6.12');
  assert.equal(host.iommu.caps.addressWidth, 48);
  assert.equal(host.iommu.caps.intrRemap, false);
  assert.equal(host.device('0000:00:02.0')?.driver?.name, 'e1000e');
  assert.equal(host.device('0000:00:03.0')?.driver?.name, 'vfio-pci');
  assert.equal(host.device('0000:00:03.0')?.iommu_group?.id, 3);
});

test('schemas/host.schema.json is the schema the validator walks', () => {
  const file = JSON.parse(readFileSync('schemas/host.schema.json', 'utf8')) as unknown;
  assert.deepEqual(
    file,
    JSON.parse(JSON.stringify(hostSchema)),
    'regenerate it: node --import tsx scripts/readme-assets.ts --schema',
  );
});

test('every example host is valid, and the demo boots the examples it names', () => {
  const dir = 'examples/hosts';
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 4);
  for (const f of files) {
    const d = parseHostDescription(readFileSync(join(dir, f), 'utf8'), f);
    assert.ok(bootHost(d, f).pci.devices().length > 0, f);
  }
  const strip = (o: unknown): unknown => {
    const { $schema: _, ...rest } = o as Record<string, unknown>;
    return rest;
  };
  assert.deepEqual(strip(JSON.parse(readFileSync(join(dir, 'x86-edu.json'), 'utf8'))), X86_EDU);
  assert.deepEqual(strip(JSON.parse(readFileSync(join(dir, 'ppc64-edu.json'), 'utf8'))), PPC64_EDU);
});
