import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import {
  type EventfdCtx,
  eventfdCtxFdget,
  eventfdCtxPut,
  eventfdSignal,
  NSEC_PER_MSEC,
} from '../../src/kernel/index.ts';
import {
  EAGAIN,
  EBADF,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  EINVAL,
  O_RDWR,
  POLLERR,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  type PollFd,
} from '../../src/uapi/index.ts';
import { userAlloc } from '../helpers/user.ts';

/* eventfd(2) and poll(2) */
const EFD_SEMAPHORE = 1;
const MAX = 0xffff_ffff_ffff_ffffn;

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

function setup(flags = EFD_NONBLOCK, initval = 0) {
  const host = new Host();
  const p = host.spawn();
  const buf = userAlloc(p, 4096);
  const fd = p.eventfd(initval, flags);
  const readVal = (): bigint | number => {
    const r = p.read(fd, buf, 8);
    return r === 8 ? new DataView(p.mem.read(buf, 8).buffer).getBigUint64(0, true) : r;
  };
  const writeVal = (v: bigint): number => {
    p.mem.write(buf, u64(v));
    return p.write(fd, buf, 8);
  };
  return { host, p, buf, fd, readVal, writeVal };
}

describe('eventfd', () => {
  it('flags: unknown bits -EINVAL; EFD_CLOEXEC and EFD_NONBLOCK take effect', () => {
    const { p } = setup();
    assert.equal(p.eventfd(0, 0x100), -EINVAL);
    const a = p.eventfd(0, EFD_CLOEXEC);
    assert.equal(p.task.files.isCloexec(a), true);
    const b = p.eventfd(0, EFD_NONBLOCK);
    assert.equal(p.task.files.isCloexec(b), false);
    assert.equal((p.task.files.get(b)?.f_flags ?? 0) & EFD_NONBLOCK, EFD_NONBLOCK);
    assert.equal((p.task.files.get(b)?.f_flags ?? 0) & 3, O_RDWR);
  });

  it('counter mode: a read returns the sum and resets it; an empty nonblocking read is -EAGAIN', () => {
    const { readVal, writeVal } = setup(EFD_NONBLOCK, 3);
    assert.equal(writeVal(4n), 8);
    assert.equal(writeVal(0n), 8);
    assert.equal(readVal(), 7n);
    assert.equal(readVal(), -EAGAIN);
  });

  it('semaphore mode: each read returns 1', () => {
    const { readVal } = setup(EFD_NONBLOCK | EFD_SEMAPHORE, 2);
    assert.equal(readVal(), 1n);
    assert.equal(readVal(), 1n);
    assert.equal(readVal(), -EAGAIN);
  });

  it('short buffers are -EINVAL; ULLONG_MAX cannot be written; overflow would block: -EAGAIN', () => {
    const { p, fd, buf, writeVal } = setup();
    assert.equal(p.read(fd, buf, 7), -EINVAL);
    assert.equal(p.write(fd, buf, 7), -EINVAL);
    assert.equal(writeVal(MAX), -EINVAL);
    assert.equal(writeVal(MAX - 1n), 8);
    assert.equal(writeVal(1n), -EAGAIN);
    /* a longer buffer is fine: 8 bytes are used */
    assert.equal(p.read(fd, buf, 100), 8);
  });

  it('a blocking read sleeps until device work on the clock signals it', () => {
    const { host, p, fd, buf } = setup(0);
    const clock = host.kernel.clock;
    const ctx = host.kernel.inKernel(() => {
      const prev = host.kernel.enter(p.task);
      try {
        return eventfdCtxFdget(fd) as EventfdCtx;
      } finally {
        host.kernel.leave(prev);
      }
    });
    clock.schedule(5 * NSEC_PER_MSEC, () => eventfdSignal(ctx, 2n));
    assert.equal(p.read(fd, buf, 8), 8);
    assert.equal(clock.now, 5 * NSEC_PER_MSEC);
    /* nothing pending any more: a blocking read would sleep forever */
    assert.equal(p.read(fd, buf, 8), -EINTR);
    host.inKernel(() => eventfdCtxPut(ctx));
  });

  it('eventfd_ctx_fdget: -EBADF, -EINVAL for a non-eventfd, a counted reference otherwise', () => {
    const { host, p, fd } = setup();
    const other = p.open('/dev/vfio/vfio', O_RDWR);
    const prev = host.kernel.enter(p.task);
    try {
      assert.equal(eventfdCtxFdget(-1), -EBADF);
      assert.equal(eventfdCtxFdget(77), -EBADF);
      assert.equal(eventfdCtxFdget(other), -EINVAL);
      const ctx = eventfdCtxFdget(fd) as EventfdCtx;
      assert.equal(ctx.kref.refcount, 2);
      /* the context outlives the fd while the kernel holds it */
      p.close(fd);
      assert.equal(host.liveObjects().eventfd_ctx, 1);
      assert.equal(eventfdSignal(ctx, MAX), MAX);
      assert.equal(eventfdSignal(ctx, 5n), 0n);
      eventfdCtxPut(ctx);
      assert.equal(host.liveObjects().eventfd_ctx, undefined);
    } finally {
      host.kernel.leave(prev);
    }
  });
});

describe('poll', () => {
  it('reports eventfd readiness, POLLNVAL for closed fds, skips negative fds', () => {
    const { p, fd, writeVal } = setup();
    const fds: PollFd[] = [
      { fd, events: POLLIN | POLLOUT, revents: 0 },
      { fd: 9, events: POLLIN, revents: 0 },
      { fd: -1, events: POLLIN, revents: 0 },
    ];
    assert.equal(p.poll(fds, 0), 2);
    assert.deepEqual(
      fds.map((f) => f.revents),
      [POLLOUT, POLLNVAL, 0],
    );
    writeVal(1n);
    fds.splice(1);
    fds[0] = { fd, events: POLLIN, revents: 0 };
    assert.equal(p.poll(fds, 0), 1);
    assert.equal(fds[0]?.revents, POLLIN);
  });

  it('POLLERR at ULLONG_MAX is reported even when not asked for', () => {
    const { host, p, fd } = setup();
    const prev = host.kernel.enter(p.task);
    const ctx = eventfdCtxFdget(fd) as EventfdCtx;
    eventfdSignal(ctx, MAX);
    eventfdCtxPut(ctx);
    host.kernel.leave(prev);
    const fds: PollFd[] = [{ fd, events: POLLOUT, revents: 0 }];
    assert.equal(p.poll(fds, 0), 1);
    assert.equal(fds[0]?.revents, POLLERR);
  });

  it('files without a poll op are always ready for read and write', () => {
    const { p } = setup();
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    const fds: PollFd[] = [{ fd: c, events: POLLIN | POLLOUT, revents: 0 }];
    assert.equal(p.poll(fds, -1), 1);
    assert.equal(fds[0]?.revents, POLLIN | POLLOUT);
  });

  it('waits on the virtual clock: woken by a signal, or times out', () => {
    const { host, p, fd } = setup();
    const clock = host.kernel.clock;
    const prev = host.kernel.enter(p.task);
    const ctx = eventfdCtxFdget(fd) as EventfdCtx;
    host.kernel.leave(prev);
    const fds: PollFd[] = [{ fd, events: POLLIN, revents: 0 }];
    assert.equal(p.poll(fds, 3), 0);
    assert.equal(clock.now, 3 * NSEC_PER_MSEC);
    clock.schedule(5 * NSEC_PER_MSEC, () => eventfdSignal(ctx, 1n));
    assert.equal(p.poll(fds, 100), 1);
    assert.equal(clock.now, 8 * NSEC_PER_MSEC);
    assert.equal(fds[0]?.revents, POLLIN);
    /* an infinite wait with nothing pending */
    host.inKernel(() => eventfdCtxPut(ctx));
    const e2 = p.eventfd(0, 0);
    assert.equal(p.poll([{ fd: e2, events: POLLIN, revents: 0 }], -1), -EINTR);
  });
});
