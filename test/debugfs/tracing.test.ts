import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeTraceArgs,
  durationColumn,
  formatFtrace,
  globToRegExp,
  ioctlName,
  KernelTrace,
  type TraceRecord,
} from '../../src/debugfs/index.ts';
import { Host } from '../../src/host/index.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_SET_IOMMU,
} from '../../src/uapi/index.ts';

/* The function_graph output: ftrace's columns, nesting, return values by errno name, filters. */

const rec = (depth: number, fn: string, extra: Partial<TraceRecord> = {}): TraceRecord => ({
  cpu: 0,
  pid: 100,
  comm: 'qemu-system-x86',
  depth,
  fn,
  args: '',
  ret: '0x0',
  durationNs: 0,
  marker: false,
  ...extra,
});

test('the trace file: header, CPU and TASK/PID columns, braces, leaves, returns, markers', () => {
  const lines = formatFtrace([
    rec(0, 'ioctl(3, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU)', { marker: true, ret: '' }),
    rec(0, 'vfio_fops_unl_ioctl', { args: 'cmd=VFIO_SET_IOMMU', ret: '-EBUSY', durationNs: 12_345 }),
    rec(1, 'vfio_ioctl_set_iommu', { args: 'arg=VFIO_SPAPR_TCE_IOMMU', ret: '-EBUSY' }),
    rec(2, 'tce_iommu_open', { ret: 'tce_container', durationNs: 250 }),
    rec(2, '__vfio_container_attach_groups', { ret: '-EBUSY' }),
    rec(3, 'tce_iommu_attach_group', { ret: '-EBUSY' }),
    rec(4, 'iommu_take_ownership', { ret: '-EBUSY' }),
    rec(2, 'tce_iommu_release', { ret: '' }),
    rec(0, 'vfio_fops_release', { pid: 7, comm: 'kworker' }),
  ]);
  assert.deepEqual(lines, [
    '# tracer: function_graph',
    '#',
    '# CPU  TASK/PID         DURATION                  FUNCTION CALLS',
    '# |     |    |           |   |                     |   |   |   |',
    ' 0)  qemu-sy-100   |               |  /* ioctl(3, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU) */',
    ' 0)  qemu-sy-100   |               |  vfio_fops_unl_ioctl(cmd=VFIO_SET_IOMMU) {',
    ' 0)  qemu-sy-100   |               |    vfio_ioctl_set_iommu(arg=VFIO_SPAPR_TCE_IOMMU) {',
    ' 0)  qemu-sy-100   |   0.250 us    |      tce_iommu_open(); /* = tce_container */',
    ' 0)  qemu-sy-100   |               |      __vfio_container_attach_groups() {',
    ' 0)  qemu-sy-100   |               |        tce_iommu_attach_group() {',
    ' 0)  qemu-sy-100   |               |          iommu_take_ownership(); /* = -EBUSY */',
    ' 0)  qemu-sy-100   |               |        } /* tce_iommu_attach_group = -EBUSY */',
    ' 0)  qemu-sy-100   |               |      } /* __vfio_container_attach_groups = -EBUSY */',
    ' 0)  qemu-sy-100   |               |      tce_iommu_release();',
    ' 0)  qemu-sy-100   |               |    } /* vfio_ioctl_set_iommu = -EBUSY */',
    ' 0)  qemu-sy-100   | + 12.345 us   |  } /* vfio_fops_unl_ioctl = -EBUSY */',
    ' 0)   kworker-7    |               |  vfio_fops_release(); /* = 0x0 */',
  ]);
});

test("durations: ftrace's width, precision and overhead marks", () => {
  assert.equal(durationColumn(0), '              |  ');
  assert.equal(durationColumn(250), '  0.250 us    |  ');
  assert.equal(durationColumn(15_000), '+ 15.000 us   |  ');
  assert.equal(durationColumn(150_000), '! 150.000 us  |  ');
  assert.equal(durationColumn(2_000_000), '# 2000.000 us |  ');
  assert.equal(durationColumn(100_000_000), '* 100000.0 us |  ');
  assert.equal(durationColumn(2_000_000_000), '$ 2000000 us  |  ');
  for (const ns of [1, 999, 12_345, 1e6, 1e8, 5e9]) assert.equal(durationColumn(ns).length, 17, String(ns));
});

test('globs and argument names', () => {
  assert.ok(globToRegExp('vfio_*_ioctl').test('vfio_fops_unl_ioctl'));
  assert.ok(!globToRegExp('vfio_*_ioctl').test('vfio_ioctl_set_iommu'));
  assert.ok(globToRegExp('__vfio_container_attach_group?').test('__vfio_container_attach_groups'));
  assert.equal(
    decodeTraceArgs('vfio_fops_unl_ioctl', `cmd=0x${VFIO_SET_IOMMU.toString(16)}`),
    'cmd=VFIO_SET_IOMMU',
  );
  assert.equal(decodeTraceArgs('vfio_ioctl_set_iommu', 'arg=7'), 'arg=VFIO_SPAPR_TCE_v2_IOMMU');
  assert.equal(decodeTraceArgs('vfio_group_fops_unl_ioctl', 'cmd=0x3b6a'), 'cmd=VFIO_GROUP_GET_DEVICE_FD');
  assert.equal(ioctlName(VFIO_IOMMU_GET_INFO, 'container', { arch: 'x86_64' }), 'VFIO_IOMMU_GET_INFO');
  assert.equal(
    ioctlName(VFIO_IOMMU_GET_INFO, 'container', { arch: 'ppc64' }),
    'VFIO_IOMMU_SPAPR_TCE_GET_INFO',
  );
  assert.equal(
    ioctlName(VFIO_IOMMU_GET_INFO, 'container', { fn: 'tce_iommu_ioctl' }),
    'VFIO_IOMMU_SPAPR_TCE_GET_INFO',
  );
});

function traced(): { t: KernelTrace; pid: number } {
  const host = new Host();
  host.addPciDevice({ bdf: '0000:00:03.0', iommuGroup: 3, driver: 'vfio-pci' });
  const t = new KernelTrace(host.kernel);
  t.start();
  const p = host.spawn({ comm: 'qemu' });
  const arg = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const c = p.open('/dev/vfio/vfio', O_RDWR);
  const g = p.open('/dev/vfio/3', O_RDWR);
  p.mem.write(arg, new Uint8Array(new Int32Array([c]).buffer));
  t.mark('SET_CONTAINER', p.pid, 'qemu');
  p.ioctl(g, VFIO_GROUP_SET_CONTAINER, arg);
  p.ioctl(c, VFIO_SET_IOMMU, 999);
  p.exit();
  t.stop();
  return { t, pid: p.pid };
}

test('a real run: the seed functions, named ioctls, the task column', () => {
  const { t, pid } = traced();
  const lines = t.lines({ header: false });
  const fns = lines.map((l) => l.slice(38));
  assert.ok(fns.includes('vfio_fops_open(); /* = 0x0 */'), fns.join('\n'));
  assert.ok(fns.includes('vfio_group_fops_unl_ioctl(cmd=VFIO_GROUP_SET_CONTAINER) {'));
  assert.ok(fns.includes('  vfio_group_set_container(container_fd=0) {'));
  assert.ok(fns.includes('    vfio_container_get();'));
  assert.ok(fns.includes('  vfio_group_get_from_minor() {'));
  assert.ok(fns.includes('  } /* vfio_group_get_from_minor = &vfio_group */'));
  assert.ok(fns.includes('vfio_fops_unl_ioctl(cmd=VFIO_SET_IOMMU) {'));
  assert.ok(fns.includes('  vfio_ioctl_set_iommu(arg=999); /* = -ENODEV */'));
  assert.ok(fns.includes('/* SET_CONTAINER */'));
  assert.ok(lines.every((l) => l.startsWith(` 0) `)));
  assert.ok(lines.some((l) => l.includes(`qemu-${pid}`)));
});

test('set_graph_function and set_graph_notrace', () => {
  const { t } = traced();
  const only = t.lines({ header: false, filter: ['vfio_group_set_container'] }).map((l) => l.slice(38));
  assert.deepEqual(only, [
    '/* SET_CONTAINER */',
    'vfio_group_set_container(container_fd=0) {',
    '  vfio_container_get();',
    '} /* vfio_group_set_container = 0x0 */',
  ]);
  const hidden = t
    .lines({ header: false, filter: ['!vfio_group_set_container', '!vfio_fops_*'] })
    .map((l) => l.slice(38));
  assert.ok(!hidden.some((l) => l.includes('vfio_group_set_container')));
  assert.ok(!hidden.some((l) => l.includes('vfio_fops_')));
  assert.ok(hidden.includes('vfio_group_fops_unl_ioctl(cmd=VFIO_GROUP_SET_CONTAINER); /* = 0x0 */'));
  const recs = t.records({ filter: ['vfio_ioctl_*'] });
  assert.deepEqual(
    recs.filter((r) => !r.marker).map((r) => [r.depth, r.fn, r.ret]),
    [[0, 'vfio_ioctl_set_iommu', '-ENODEV']],
  );
});
