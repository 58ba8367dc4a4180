import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/*
 * Expected-output files under test/golden/. A mismatch fails with a diff;
 * when the change is intended, accept it with
 *   UPDATE_GOLDEN=1 node --import tsx --test <the test file>
 * and review the files' diff in git.
 */
export function assertGolden(name: string, actual: string): void {
  const file = join('test', 'golden', name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  assert.ok(existsSync(file), `${file} is missing: run with UPDATE_GOLDEN=1 to create it`);
  assert.equal(
    actual,
    readFileSync(file, 'utf8'),
    `${file} differs (UPDATE_GOLDEN=1 accepts the new output)`,
  );
}
