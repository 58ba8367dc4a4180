import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { memoryIo } from '../../src/cli/io.ts';
import { runCli } from '../../src/cli/main.ts';
import { assertGolden } from '../helpers/golden.ts';

/*
 * Every command of the vfio-ts CLI, run in-process with captured output:
 * exit statuses, help, the pointed errors for bad host files, the demo's
 * complete flow on both architectures, traces in the seeds' shape, graphs,
 * and user programs.
 */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = memoryIo();
  const code = await runCli(argv, io);
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

const tmp = mkdtempSync(join(tmpdir(), 'vfio-ts-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('help everywhere, version, usage errors exit 2', async () => {
  const top = await cli('--help');
  assert.equal(top.code, 0);
  for (const c of ['demo', 'topology', 'run', 'trace', 'graph'])
    assert.match(top.out, new RegExp(`\\n  ${c} `));
  for (const [c, opt] of [
    ['demo', '--graph <file>'],
    ['topology', '--host <file>'],
    ['run', '--trace [patterns]'],
    ['trace', '--filter <patterns...>'],
    ['graph', '--format <format>'],
  ] as const) {
    const h = await cli(c, '--help');
    assert.equal(h.code, 0, c);
    assert.ok(h.out.includes(opt), `${c} --help mentions ${opt}`);
  }
  assert.deepEqual(await cli('--version'), { code: 0, out: '0.1.0', err: '' });
  const unknown = await cli('frobnicate');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown command 'frobnicate'/);
  assert.equal((await cli('demo', '--bogus')).code, 2);
  const arch = await cli('demo', '--arch', 'arm64');
  assert.equal(arch.code, 2);
  assert.match(arch.err, /Allowed choices are x86_64, ppc64/);
  assert.equal((await cli('run')).code, 2, 'missing program argument');
  assert.equal((await cli()).code, 2, 'no command');
});

test('bad host files: the error points at the field, exit 2', async () => {
  const bdf = await cli('topology', '--host', 'test/cli/hosts/bad-bdf.json');
  assert.equal(bdf.code, 2);
  assert.equal(
    bdf.err,
    'vfio-ts: test/cli/hosts/bad-bdf.json: devices[2].bdf: "0000:0g:00.0" is not a PCI address (dddd:bb:dd.f)',
  );
  assert.equal(bdf.out, '');
  const syntax = await cli('demo', '--host', 'test/cli/hosts/bad-syntax.json');
  assert.equal(syntax.code, 2);
  assert.equal(
    syntax.err,
    'vfio-ts: test/cli/hosts/bad-syntax.json: line 6, column 1: not valid JSON (Expected double-quoted property name)',
  );
  const many = await cli(
    'run',
    'test/cli/programs/open_container.ts',
    '--host',
    'test/cli/hosts/bad-many.json',
  );
  assert.equal(many.code, 2);
  assert.equal(
    many.err,
    [
      'vfio-ts: test/cli/hosts/bad-many.json: kernal: unknown field (did you mean "kernel"?); known: $schema, description, arch, kernel, pageSize, iommu, devices, process',
      '  iommu.addressWidth: 100 is more than 64',
      '  devices[0].iommuGroup: "one" is not an integer',
    ].join('\n'),
  );
  const missing = await cli('graph', '--host', 'test/cli/hosts/nope.json');
  assert.equal(missing.code, 2);
  assert.equal(missing.err, 'vfio-ts: test/cli/hosts/nope.json: no such file');
  const clash = await cli('topology', '--host', 'examples/hosts/ppc64-edu.json', '--arch', 'x86_64');
  assert.equal(clash.code, 2);
  assert.match(
    clash.err,
    /--arch x86_64 contradicts examples\/hosts\/ppc64-edu.json, which describes a ppc64 host/,
  );
});

test('topology: lspci -k and iommu_groups, with why a group is not viable', async () => {
  for (const name of ['x86-edu', 'ppc64-edu', 'two-groups', 'non-viable']) {
    const r = await cli('topology', '--host', `examples/hosts/${name}.json`);
    assert.equal(r.code, 0, name);
    assertGolden(`cli/topology-${name}.txt`, `${r.out}\n`);
  }
  const nv = await cli('topology', '--host', 'examples/hosts/non-viable.json', '--json');
  const data = JSON.parse(nv.out) as { groups: { group: number; viable: boolean; why: string | null }[] };
  assert.deepEqual(data.groups, [
    {
      group: 7,
      devices: ['0000:01:00.0', '0000:01:00.1'],
      viable: false,
      why: '0000:01:00.1 is bound to e1000e, a host driver doing DMA through the DMA API',
      devnode: '/dev/vfio/7',
    },
  ]);
});

for (const [arch, kernel] of [
  ['x86_64', '4.1'],
  ['x86_64', '6.12'],
  ['ppc64', '4.1'],
  ['ppc64', '6.12'],
] as const) {
  test(`demo on ${arch}, kernel ${kernel}: the whole flow, DMA verified, MSIs, baseline`, async () => {
    const graph = join(tmp, `demo-${arch}-${kernel}.svg`);
    const r = await cli('demo', '--arch', arch, '--kernel', kernel, '--graph', graph);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /DMA RAM -> device -> RAM through the IOMMU: bytes match/);
    assert.match(r.out, /MSIs delivered on the eventfd: 3/);
    assert.match(r.out, /host back to its baseline after exit: yes/);
    assert.match(r.out, /IOMMU fault logged: .*fault (addr|at) (0x)?4000000/);
    assert.doesNotMatch(r.out, /stopped at/);
    if (kernel === '4.1') assertGolden(`cli/demo-${arch}.txt`, `${r.out}\n`);
    assert.equal(r.err, `graph (svg) written to ${graph}`);
    assert.ok(readFileSync(graph, 'utf8').includes('>vfio_container #1</text>'));
  });
}

/** the lines of a function_graph trace, reduced to their FUNCTION CALLS column */
function calls(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => /^\s*\d+\) .*\|.*\| {2}/.test(l))
    .map((l) => l.slice(l.indexOf('|', l.indexOf('|') + 1) + 3).trimEnd());
}

/** find `chain` as a nested call path: each next call one level deeper, in order */
function hasCallTree(lines: readonly string[], chain: readonly string[]): boolean {
  for (let i = 0; i < lines.length; i++) {
    let depth = -1;
    let k = 0;
    for (let j = i; j < lines.length && k < chain.length; j++) {
      const l = lines[j] as string;
      const d = (l.length - l.trimStart().length) / 2;
      if (l.trimStart().startsWith(`${chain[k]}(`) && (k === 0 || d === depth + 1)) {
        depth = d;
        k++;
      } else if (k > 0 && d <= depth && !l.trimStart().startsWith('}')) break;
    }
    if (k === chain.length) return true;
  }
  return false;
}

test("demo --trace on ppc64 shows the seed's sPAPR call tree", async () => {
  const r = await cli('demo', '--arch', 'ppc64', '--trace', '--no-graph');
  assert.equal(r.code, 0);
  const lines = calls(r.out);
  assert.ok(
    hasCallTree(lines, [
      'vfio_fops_unl_ioctl',
      'vfio_ioctl_set_iommu',
      '__vfio_container_attach_groups',
      'tce_iommu_attach_group',
      'iommu_take_ownership',
    ]),
    lines.join('\n'),
  );
  assert.ok(lines.some((l) => /^ {4}tce_iommu_open\(arg=2\); \/\* = &tce_container/.test(l)));
  assert.ok(hasCallTree(lines, ['vfio_group_fops_unl_ioctl', 'vfio_group_set_container']));
  assert.ok(hasCallTree(lines, ['vfio_group_fops_unl_ioctl', 'vfio_group_get_device_fd', 'vfio_pci_open']));
  assert.ok(lines.includes('vfio_fops_open(); /* = 0x0 */'));
});

test('trace: the ftrace header, filters, JSON', async () => {
  const all = await cli('trace', '--arch', 'ppc64');
  assert.equal(all.code, 0);
  assert.deepEqual(all.out.split('\n').slice(0, 4), [
    '# tracer: function_graph',
    '#',
    '# CPU  TASK/PID         DURATION                  FUNCTION CALLS',
    '# |     |    |           |   |                     |   |   |   |',
  ]);
  assert.ok(
    all.out.includes('/* ioctl(0, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU) */'),
    'markers name each syscall',
  );
  const only = await cli('trace', '--arch', 'ppc64', '-f', 'vfio_ioctl_set_iommu');
  const calls1 = calls(only.out).filter((l) => !l.startsWith('/*'));
  assertGolden('cli/trace-ppc64-set-iommu.txt', `${calls1.join('\n')}\n`);
  assert.ok(calls1[0]?.startsWith('vfio_ioctl_set_iommu(arg=VFIO_SPAPR_TCE_IOMMU) {'));
  const hidden = await cli('trace', '-f', '!vfio_fops_*', '-f', '!vfio_group_fops_*,!vfio_device_fops_*');
  assert.ok(!calls(hidden.out).some((l) => /vfio_(group_|device_)?fops_/.test(l)));
  const json = await cli('trace', '--json', '-f', 'vfio_group_set_container');
  const recs = JSON.parse(json.out) as { fn: string; depth: number; marker: boolean; ret: string }[];
  assert.deepEqual(
    recs.filter((x) => !x.marker).map((x) => [x.depth, x.fn, x.ret]),
    [
      [0, 'vfio_group_set_container', '0x0'],
      [1, 'vfio_container_get', ''],
    ],
  );
});

test('graph: DOT, JSON and SVG of the busiest moment; demo --graph writes the picture', async () => {
  const dot = await cli('graph');
  assert.equal(dot.code, 0);
  assert.match(dot.out, /^digraph vfio \{/);
  assert.ok(dot.out.includes('vfio_container #1'));
  const json = await cli('graph', '--format', 'json', '--arch', 'ppc64');
  const g = JSON.parse(json.out) as { nodes: { kind: string }[]; edges: unknown[] };
  for (const k of [
    'vfio',
    'iommu_driver',
    'group',
    'vfio_device',
    'container',
    'iommu_data',
    'process',
    'file',
  ])
    assert.ok(
      g.nodes.some((n) => n.kind === k),
      k,
    );
  const atEnd = JSON.parse((await cli('graph', '--format', 'json', '--at-end')).out) as {
    nodes: { kind: string }[];
  };
  assert.ok(!atEnd.nodes.some((n) => n.kind === 'container'), 'after exit no container is left');
  const svgFile = join(tmp, 'demo.svg');
  const r = await cli('demo', '--graph', svgFile, '--no-changes');
  assert.equal(r.code, 0);
  assert.match(r.err, /graph \(svg\) written to /);
  const svg = readFileSync(svgFile, 'utf8');
  assert.ok(svg.includes('<svg'));
  for (const t of ['struct vfio', 'vfio_group 3', 'vfio_container #1', 'vfio_device', 'iommu_group 3'])
    assert.ok(svg.includes(`>${t}</text>`), t);
  const dotFile = join(tmp, 'g.dot');
  assert.equal((await cli('graph', '-o', dotFile)).code, 0);
  assert.ok(readFileSync(dotFile, 'utf8').startsWith('digraph vfio {'));
});

test('demo --json is data', async () => {
  const r = await cli('demo', '--json', '--arch', 'ppc64', '--no-graph');
  assert.equal(r.code, 0);
  const d = JSON.parse(r.out) as {
    host: { arch: string };
    steps: { call: string; result: string; ok: boolean; changes: string[] }[];
    result: { completed: boolean; baseline: boolean; dmaVerified: boolean; msis: number };
  };
  assert.equal(d.host.arch, 'ppc64');
  assert.deepEqual(
    [d.result.completed, d.result.baseline, d.result.dmaVerified, d.result.msis],
    [true, true, true, 3],
  );
  const setIommu = d.steps.find((s) => s.call === 'ioctl(0, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU)');
  assert.equal(setIommu?.result, '0');
  assert.ok(d.steps.every((s) => s.ok));
});

test("run: the exit status is the program's; the step log and its notes", async () => {
  const ok = await cli('run', 'test/cli/programs/open_container.ts', '--changes');
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /\[\d+\] open\("\/dev\/vfio\/vfio", O_RDWR\) = 0/);
  assert.match(ok.out, /# device 0000:00:03\.0 in group 3, IOMMU type1/);
  assert.match(ok.out, /\+ container:1 \(kref=1/);
  assert.match(ok.out, /bind 0000:00:03\.0 -> vfio-pci/);
  const three = await cli('run', 'test/cli/programs/exit3.ts', '--arch', 'ppc64');
  assert.equal(three.code, 3);
  assert.match(three.out, /open\("\/dev\/vfio\/999", O_RDWR\) = -ENOENT/);
  const thrown = await cli('run', 'test/cli/programs/throws.ts');
  assert.equal(thrown.code, 1);
  assert.match(thrown.err, /the program gave up/);
  const none = await cli('run', 'test/cli/programs/no_function.ts');
  assert.equal(none.code, 2);
  assert.match(none.err, /exports no function/);
  const missing = await cli('run', 'test/cli/programs/missing.ts');
  assert.equal(missing.code, 2);
  assert.match(missing.err, /no such program/);
  const lib = await cli('run', 'test/cli/programs/lib_user.ts', '-q');
  assert.equal(lib.code, 0, lib.err);
  assert.equal(lib.out, '# VfioError ENOENT');
  const json = await cli('run', 'test/cli/programs/open_container.ts', '--json');
  const d = JSON.parse(json.out) as { status: number; steps: { call: string }[]; notes: { text: string }[] };
  assert.equal(d.status, 0);
  assert.ok(d.steps.some((s) => s.call === 'ioctl(0, VFIO_GET_API_VERSION)'));
  const traced = await cli('run', 'test/cli/programs/open_container.ts', '--trace', 'vfio_ioctl_*', '-q');
  assert.equal(traced.code, 0);
  const graph = join(tmp, 'run.json');
  assert.equal((await cli('run', 'test/cli/programs/open_container.ts', '-q', '--graph', graph)).code, 0);
  assert.ok(existsSync(graph));
  const g = JSON.parse(readFileSync(graph, 'utf8')) as { nodes: { kind: string }[] };
  assert.ok(
    g.nodes.some((n) => n.kind === 'container'),
    'the graph is drawn at ctx.checkpoint()',
  );
});

test('run: the examples of the repository run as programs', async () => {
  for (const arch of ['x86_64', 'ppc64']) {
    const r = await cli('run', 'examples/canonical.raw.ts', '--arch', arch, '-q');
    assert.equal(r.code, 0, `${arch}: ${r.err}`);
  }
});
