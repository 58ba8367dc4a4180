import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

/*
 * The package's bin as a user runs it (`npx vfio-ts ...` runs this file):
 * a separate node process, real exit statuses, nothing on stdout but the
 * output, no colour when stdout is not a terminal.
 */
const BIN = resolve('bin/vfio-ts.mjs');

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return runIn(process.cwd(), ...args);
}

function runIn(cwd: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('bin: version, usage error, bad host file, the demo', () => {
  assert.deepEqual(run('--version'), { status: 0, stdout: '0.1.0\n', stderr: '' });
  const usage = run('demo', '--kernel', '5.4');
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /Allowed choices are 4\.1, 6\.12/);
  const bad = run('topology', '--host', 'test/cli/hosts/bad-bdf.json');
  assert.equal(bad.status, 2);
  assert.equal(bad.stdout, '');
  assert.equal(
    bad.stderr,
    'vfio-ts: test/cli/hosts/bad-bdf.json: devices[2].bdf: "0000:0g:00.0" is not a PCI address (dddd:bb:dd.f)\n',
  );
  /* the README's first command: the demo, and the graph it writes by default */
  const dir = mkdtempSync(join(tmpdir(), 'vfio-ts-bin-'));
  const demo = runIn(dir, 'demo', '--no-changes');
  assert.equal(demo.status, 0, demo.stderr);
  assert.equal(demo.stderr, 'graph (svg) written to vfio-demo.svg\n');
  assert.ok(existsSync(join(dir, 'vfio-demo.svg')));
  assert.ok(readFileSync(join(dir, 'vfio-demo.svg'), 'utf8').includes('>struct vfio</text>'));
  rmSync(dir, { recursive: true, force: true });
  assert.match(demo.stdout, /^vfio-ts demo: x86_64, kernel profile 4\.1\n/);
  assert.match(demo.stdout, /bytes match/);
  assert.ok(!demo.stdout.includes('\u001b['), 'no colour codes when stdout is a pipe');
  const exit3 = run('run', 'test/cli/programs/exit3.ts', '-q');
  assert.equal(exit3.status, 3);
});
