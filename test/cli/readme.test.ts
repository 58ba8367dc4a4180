import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { memoryIo } from '../../src/cli/io.ts';
import { runCli } from '../../src/cli/main.ts';

/*
 * The README's tour is generated (scripts/readme-assets.ts): its trace
 * excerpt must be what the command prints today, and the picture must be
 * the object graph, not a drawing.
 */
const REGEN = 'regenerate with: node --import tsx scripts/readme-assets.ts';

test('the README starts with the two commands and its trace excerpt is current', async () => {
  const readme = readFileSync('README.md', 'utf8');
  assert.match(readme, /^# vfio-ts\n\n```sh\nnpm install && npx vfio-ts demo /);
  const io = memoryIo();
  assert.equal(
    await runCli(['trace', '--arch', 'ppc64', '-f', 'vfio_group_set_container,vfio_ioctl_set_iommu'], io),
    0,
  );
  const trace = `${io.stdout.join('\n')}\n`;
  assert.equal(readFileSync('docs/demo-trace.txt', 'utf8'), trace, REGEN);
  assert.ok(readme.includes(trace), REGEN);
  for (const f of ['tce_iommu_attach_group(group=1) {', 'iommu_take_ownership() {'])
    assert.ok(trace.includes(f), f);
});

test('the README picture is the object graph', () => {
  const svg = readFileSync('docs/vfio-objects.svg', 'utf8');
  assert.match(svg, /^<\?xml version="1\.0"/);
  for (const t of [
    'struct vfio',
    'vfio_group 3',
    'vfio_container #1',
    'vfio_iommu (type1)',
    'task 100 (vfio&#45;demo)',
  ])
    assert.ok(svg.includes(`>${t}</text>`), `${t}: ${REGEN}`);
  assert.ok(svg.length < 100_000, 'a documentation asset stays small');
  assert.ok(
    readFileSync('README.md', 'utf8').includes('![the objects of vfio-ts demo](docs/vfio-objects.svg)'),
  );
});
