import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeSnapshot } from '../../src/debugfs/index.ts';
import { Host } from '../../src/host/index.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_CHECK_EXTENSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU,
} from '../../src/uapi/index.ts';
import { type VfioIommuDriverOps, vfioRegisterIommuDriver } from '../../src/vfio/index.ts';
import { buildGraph, type Graph, renderSvg, toDot } from '../../src/viz/index.ts';
import { assertGolden } from '../helpers/golden.ts';

/*
 * Snapshot -> graph -> DOT is pure: the seed's Figure 0, built through the
 * raw calls with a stand-in IOMMU backend, gives exactly the golden DOT;
 * the SVG Graphviz makes of it holds every struct and every count.
 */
class FakeTce {
  constructor(readonly groups: number[] = []) {}
  debugSnapshot(): object {
    return {
      type: 'tce_container',
      enabled: true,
      tables: [
        { group: 3, windowStart: 0n, windowSize: 0x4000_0000n, pageShift: 12, entries: 262144, inUse: 256 },
      ],
    };
  }
}
const ops: VfioIommuDriverOps = {
  name: 'fake-spapr',
  open: () => new FakeTce(),
  release: () => {},
  ioctl: (_d, cmd, arg) => (cmd === VFIO_CHECK_EXTENSION ? Number(arg === 42n) : -25),
  attach_group: (d, g) => {
    (d as FakeTce).groups.push(g.id);
    return 0;
  },
  detach_group: () => {},
};

/* Graphviz writes '-' as &#45; inside its own escaping, so undo until nothing changes */
function unescapeXml(s: string): string {
  const once = s
    .replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
  return once === s ? s : unescapeXml(once);
}

function figure0(): Graph {
  const host = new Host();
  host.addPciDevice({ bdf: '0000:00:02.0', iommuGroup: 2, driver: 'e1000e' });
  host.addPciDevice({ bdf: '0000:00:03.0', iommuGroup: 3, driver: 'vfio-pci' });
  host.inKernel(() => vfioRegisterIommuDriver(ops));
  const p = host.spawn({ comm: 'qemu' });
  const arg = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const c = p.open('/dev/vfio/vfio', O_RDWR);
  const g = p.open('/dev/vfio/3', O_RDWR);
  p.mem.write(arg, new Uint8Array(new Int32Array([c]).buffer));
  assert.equal(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, arg), 0);
  assert.equal(p.ioctl(c, VFIO_SET_IOMMU, 42), 0);
  p.mem.write(arg, new TextEncoder().encode('0000:00:03.0\0'));
  assert.ok(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, arg) >= 0);
  return buildGraph(takeSnapshot(host));
}

test('the graph holds Figure 0: struct vfio, driver list, group, device, container, iommu data, holders', () => {
  const g = figure0();
  const titles = g.nodes.map((n) => n.title);
  for (const t of [
    'struct vfio',
    'vfio_iommu_driver',
    'vfio_group 3',
    'vfio_device',
    'pci_dev 0000:00:03.0',
    'pci_dev 0000:00:02.0',
    'iommu_group 3',
    'vfio_container #1',
    'tce_container',
    'task 100 (qemu)',
    'struct file',
  ])
    assert.ok(titles.includes(t), `missing ${t} in ${titles.join(', ')}`);
  const edge = (from: string, label: string) =>
    g.edges.find((e) => e.from.startsWith(from) && e.label === label);
  /* the container is held by its file and by the group: kref 2 on both edges */
  assert.deepEqual(edge('file:', 'private_data')?.holds, [{ counter: 'kref', value: 2 }]);
  assert.deepEqual(edge('group:3', 'container')?.holds, [{ counter: 'kref', value: 2 }]);
  /* the device fd holds the vfio_device and a container user of its group */
  const devEdge = g.edges.find((e) => e.to === 'vfio_device:0000:00:03.0' && e.label === 'private_data');
  assert.deepEqual(devEdge?.holds, [
    { counter: 'kref', value: 2 },
    { counter: 'container_users', value: 2 },
  ]);
  assert.deepEqual(edge('pid:100', 'fd 0')?.holds, [{ counter: 'f_count', value: 1 }]);
  assert.equal(edge('vfio', 'group_list')?.style, 'list');
  const data = g.nodes.find((n) => n.kind === 'iommu_data');
  assert.deepEqual(
    data?.fields.map((f) => `${f.name}=${f.value}`),
    [
      'enabled=true',
      'tables=1',
      '=group=3 windowStart=0x0 windowSize=0x40000000 pageShift=12 entries=262144 inUse=256',
    ],
  );
  for (const e of g.edges) {
    assert.ok(
      g.nodes.some((n) => n.id === e.from),
      e.from,
    );
    assert.ok(
      g.nodes.some((n) => n.id === e.to),
      e.to,
    );
  }
});

test('DOT is deterministic and matches the golden file', () => {
  const dot = toDot(figure0());
  assert.equal(toDot(figure0()), dot);
  assertGolden('viz/figure0.dot', dot);
});

test('the SVG names every struct and every held count', async () => {
  const g = figure0();
  const svg = await renderSvg(toDot(g));
  assert.match(svg, /^<\?xml version="1\.0" encoding="UTF-8" standalone="no"\?>/);
  assert.match(svg, /<svg width="\d+pt" height="\d+pt"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  /* Graphviz gives each node a <g class="node"> with its id as <title> */
  const titles = [...svg.matchAll(/<g id="node\d+" class="node">\s*<title>([^<]*)<\/title>/g)].map((m) =>
    unescapeXml(m[1] ?? ''),
  );
  assert.deepEqual(titles.sort(), g.nodes.map((n) => n.id).sort());
  const edges = [...svg.matchAll(/<g id="edge\d+" class="edge">/g)];
  assert.equal(edges.length, g.edges.length);
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescapeXml(m[1] ?? ''));
  for (const t of [
    'struct vfio',
    'vfio_group 3',
    'vfio_container #1',
    'tce_container',
    'kref=2',
    'container_users=2',
  ])
    assert.ok(texts.includes(t), `the SVG has no text "${t}"`);
});
