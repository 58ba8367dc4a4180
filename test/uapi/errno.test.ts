import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as uapi from '../../src/uapi/index.ts';
import { errnoFromName, errnoName, strerror } from '../../src/uapi/index.ts';

const exported = uapi as unknown as Record<string, unknown>;

// asm-generic values
const SAMPLE: Record<string, number> = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ESPIPE: 29,
  ERANGE: 34,
  EDEADLK: 35,
  ENOSYS: 38,
  ELOOP: 40,
  ENOMSG: 42,
  EOVERFLOW: 75,
  EBADFD: 77,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  ECANCELED: 125,
  EHWPOISON: 133,
  ERESTARTSYS: 512,
  EPROBE_DEFER: 517,
  ENOTSUPP: 524,
};

describe('errno', () => {
  it('numbers match Linux', () => {
    for (const [name, n] of Object.entries(SAMPLE)) assert.equal(exported[name], n, name);
  });

  it('every number 1..133 except 41 and 58 has a name that round-trips', () => {
    for (let n = 1; n <= 133; n++) {
      if (n === 41 || n === 58) {
        assert.equal(errnoName(n), `E${n}`);
        continue;
      }
      const name = errnoName(n);
      assert.match(name, /^E[A-Z0-9]+$/);
      assert.equal(exported[name], n, name);
      assert.equal(errnoFromName(name), n);
    }
  });

  it('errnoName accepts negative values and falls back to E<n>', () => {
    assert.equal(errnoName(22), 'EINVAL');
    assert.equal(errnoName(-22), 'EINVAL');
    assert.equal(errnoName(-25), 'ENOTTY');
    assert.equal(errnoName(4000), 'E4000');
    assert.equal(errnoName(-4000), 'E4000');
  });

  it('aliases share numbers; the canonical name wins', () => {
    assert.equal(uapi.EWOULDBLOCK, uapi.EAGAIN);
    assert.equal(uapi.EDEADLOCK, uapi.EDEADLK);
    assert.equal(uapi.ENOTSUP, uapi.EOPNOTSUPP);
    assert.equal(errnoName(11), 'EAGAIN');
    assert.equal(errnoName(35), 'EDEADLK');
    assert.equal(errnoFromName('EWOULDBLOCK'), 11);
    assert.equal(errnoFromName('EDEADLOCK'), 35);
    assert.equal(errnoFromName('E4000'), 4000);
    assert.equal(errnoFromName('NOPE'), undefined);
  });

  it("strerror gives glibc's texts", () => {
    assert.equal(strerror(0), 'Success');
    assert.equal(strerror(1), 'Operation not permitted');
    assert.equal(strerror(-22), 'Invalid argument');
    assert.equal(strerror(25), 'Inappropriate ioctl for device');
    assert.equal(strerror(16), 'Device or resource busy');
    assert.equal(strerror(9), 'Bad file descriptor');
    assert.equal(strerror(77), 'File descriptor in bad state');
    assert.equal(strerror(12), 'Cannot allocate memory');
    assert.equal(strerror(14), 'Bad address');
    assert.equal(strerror(19), 'No such device');
    assert.equal(strerror(11), 'Resource temporarily unavailable');
    assert.equal(strerror(35), 'Resource deadlock avoided');
    assert.equal(strerror(95), 'Operation not supported');
    assert.equal(strerror(110), 'Connection timed out');
    assert.equal(strerror(512), 'Unknown error 512');
    assert.equal(strerror(9999), 'Unknown error 9999');
  });
});
