import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import {
  Atomic,
  BlockingNotifierHead,
  errStr,
  fail,
  Idr,
  IS_ERR,
  Kref,
  Mutex,
  NOTIFY_OK,
  NOTIFY_STOP_MASK,
  NSEC_PER_SEC,
  ObjectCounter,
  RwSem,
  VirtualClock,
  WARN,
  WaitQueueHead,
} from '../../src/kernel/index.ts';
import { EBUSY, EINVAL, ENOENT, ENOSPC, ENOTTY, errnoName } from '../../src/uapi/index.ts';

/* kernel primitives: errno and fail(), kref/atomic, locks, idr, notifiers, accounting, clock, kthreads */

describe('errno and fail()', () => {
  it('the table carries Linux numbers, whatever the host OS', () => {
    assert.deepEqual([EINVAL, ENOENT, EBUSY, ENOTTY, ENOSPC], [22, 2, 16, 25, 28]);
    assert.equal(errnoName(EINVAL), 'EINVAL');
  });

  it('fail() returns -errno and logs the reason in words; errStr names it', () => {
    const host = new Host();
    const n = host.dmesg().length;
    const r = host.inKernel(() => fail(EBUSY, 'the thing is in use'));
    assert.equal(r, -EBUSY);
    assert.deepEqual(host.dmesg().slice(n), ['vfio-ts: -EBUSY: the thing is in use']);
    assert.deepEqual(host.dmesg({ reasons: false }).slice(n), []);
    assert.equal(errStr(r), '-EBUSY');
    assert.equal(errStr(3), '3');
    assert.equal(errStr(-ENOTTY), '-ENOTTY');
  });

  it('fail() outside any kernel only returns the errno', () => {
    assert.equal(fail(EINVAL, 'nowhere'), -EINVAL);
  });

  it('IS_ERR is the ERR_PTR idiom: numbers are errors, objects are not', () => {
    assert.equal(IS_ERR(-EINVAL), true);
    assert.equal(IS_ERR({}), false);
  });

  it('WARN logs only when its condition holds and returns it', () => {
    const host = new Host();
    const n = host.dmesg().length;
    host.inKernel(() => {
      assert.equal(WARN(false, 'quiet'), false);
      assert.equal(WARN(true, 'loud'), true);
    });
    assert.deepEqual(host.dmesg().slice(n), ['WARNING: loud']);
  });
});

describe('kref and atomic_t', () => {
  it('kref: get/put; the last put runs release once; misuse throws', () => {
    const k = new Kref();
    let released = 0;
    k.get();
    assert.equal(k.refcount, 2);
    assert.equal(
      k.put(() => released++),
      false,
    );
    assert.equal(
      k.put(() => released++),
      true,
    );
    assert.equal(released, 1);
    assert.throws(() => k.put(() => released++), /underflow/);
    assert.throws(() => k.get(), /released/);
    assert.equal(k.getUnlessZero(), false);
    assert.equal(released, 1);
  });

  it('atomic: cmpxchg returns the old value; dec_if_positive never goes below 0', () => {
    const a = new Atomic(0);
    assert.equal(a.cmpxchg(0, 1), 0);
    assert.equal(a.read(), 1);
    assert.equal(a.cmpxchg(0, 5), 1);
    assert.equal(a.read(), 1);
    assert.equal(a.decIfPositive(), 0);
    assert.equal(a.decIfPositive(), -1);
    assert.equal(a.read(), 0);
    assert.equal(a.incNotZero(), false);
    a.set(2);
    assert.equal(a.incNotZero(), true);
    assert.equal(a.read(), 3);
    a.dec();
    a.inc();
    assert.equal(a.decAndTest(), false);
    a.set(1);
    assert.equal(a.decAndTest(), true);
  });
});

describe('mutex and rw_semaphore misuse', () => {
  it('mutex: recursive lock and unlock-when-not-held throw; trylock reports', () => {
    const m = new Mutex('m');
    assert.throws(() => m.unlock(), /unlock when not held/);
    m.lock();
    assert.equal(m.isLocked(), true);
    assert.throws(() => m.lock(), /recursive lock/);
    assert.equal(m.tryLock(), false);
    m.unlock();
    assert.equal(m.tryLock(), true);
    m.unlock();
    assert.equal(m.isLocked(), false);
  });

  it('rwsem: readers share, a writer excludes, releases must match', () => {
    const s = new RwSem('s');
    s.downRead();
    s.downRead();
    assert.throws(() => s.downWrite(), /deadlock/);
    s.upRead();
    s.upRead();
    assert.throws(() => s.upRead(), /not read-held/);
    s.downWrite();
    assert.throws(() => s.downRead(), /deadlock/);
    assert.throws(() => s.downWrite(), /deadlock/);
    s.upWrite();
    assert.throws(() => s.upWrite(), /not write-held/);
    assert.equal(s.isHeld(), false);
  });
});

describe('idr', () => {
  it('hands out the lowest free id in [start, end), -ENOSPC when full', () => {
    const idr = new Idr<string>();
    assert.equal(idr.alloc('a', 0, 3), 0);
    assert.equal(idr.alloc('b', 0, 3), 1);
    assert.equal(idr.alloc('c', 0, 3), 2);
    assert.equal(idr.alloc('d', 0, 3), -ENOSPC);
    assert.equal(idr.remove(1), 'b');
    assert.equal(idr.find(1), undefined);
    assert.equal(idr.alloc('e', 0, 3), 1);
    assert.equal(idr.alloc('f', 5, 0), 5);
    assert.deepEqual(
      idr.entries().map(([id]) => id),
      [0, 1, 2, 5],
    );
    assert.equal(idr.size, 4);
  });
});

describe('blocking notifier chains', () => {
  it('calls in priority order and stops at NOTIFY_STOP_MASK', () => {
    const head = new BlockingNotifierHead<string>();
    const seen: string[] = [];
    const mk = (name: string, priority: number, ret = NOTIFY_OK) => ({
      priority,
      notifier_call: (_nb: unknown, action: number, data: string) => {
        seen.push(`${name}:${action}:${data}`);
        return ret;
      },
    });
    const low = mk('low', 0);
    head.register(low);
    head.register(mk('high', 10));
    head.register(low);
    assert.equal(head.length, 2);
    assert.equal(head.call(1, 'x'), NOTIFY_OK);
    assert.deepEqual(seen, ['high:1:x', 'low:1:x']);
    seen.length = 0;
    head.register(mk('stop', 20, NOTIFY_STOP_MASK | 1));
    head.call(2, 'y');
    assert.deepEqual(seen, ['stop:2:y']);
    assert.equal(head.unregister(low), 0);
    assert.equal(head.unregister(low), -ENOENT);
  });
});

describe('object accounting', () => {
  it('counts by kind and refuses a double free', () => {
    const o = new ObjectCounter();
    o.alloc('file');
    o.alloc('file');
    o.alloc('vfio_group');
    assert.deepEqual(o.snapshot(), { file: 2, vfio_group: 1 });
    o.free('file');
    o.free('vfio_group');
    assert.deepEqual(o.snapshot(), { file: 1 });
    assert.throws(() => o.free('vfio_group'), /double free/);
    assert.equal(o.count('file'), 1);
  });
});

describe('virtual clock and kthreads', () => {
  it('timers run in deadline order, ties in scheduling order; advance moves now', () => {
    const c = new VirtualClock();
    const order: string[] = [];
    c.schedule(20, () => order.push('b'));
    c.schedule(10, () => order.push('a'));
    const t = c.schedule(10, () => order.push('a2'));
    c.schedule(10, () => order.push('a3'));
    c.cancel(t);
    assert.equal(c.pending(), 3);
    c.advance(15);
    assert.deepEqual(order, ['a', 'a3']);
    assert.equal(c.now, 15);
    assert.equal(c.nextDeadline(), 20);
    assert.equal(
      c.runUntil(() => order.length === 3, 100),
      true,
    );
    assert.equal(c.now, 20);
    assert.equal(
      c.runUntil(() => false, 5),
      false,
    );
    assert.equal(c.now, 25);
  });

  it('a kthread sleeps on a wait queue until woken with its condition met, or times out', () => {
    const host = new Host();
    const k = host.kernel;
    const wq = new WaitQueueHead('wq');
    let ready = false;
    const trace: string[] = [];
    const kt = k.runKthread(
      'sleeper',
      (function* () {
        for (let i = 0; ; i++) {
          trace.push(`try ${i} at ${k.clock.now / NSEC_PER_SEC}s`);
          const met = yield { wq, cond: () => ready, timeoutNs: 10 * NSEC_PER_SEC };
          if (met) return i;
        }
      })(),
    );
    assert.equal(kt.state, 'sleeping');
    assert.equal(wq.length, 1);
    k.clock.advance(25 * NSEC_PER_SEC);
    assert.deepEqual(trace, ['try 0 at 0s', 'try 1 at 10s', 'try 2 at 20s']);
    wq.wakeUp();
    assert.equal(kt.state, 'sleeping');
    ready = true;
    wq.wakeUp();
    assert.equal(kt.state, 'done');
    assert.equal(kt.result, 2);
    assert.equal(wq.length, 0);
    assert.equal(k.clock.pending(), 0);
    let done = -1;
    kt.whenDone((r) => {
      done = r;
    });
    assert.equal(done, 2);
  });

  it('a kthread whose condition already holds does not sleep', () => {
    const host = new Host();
    const wq = new WaitQueueHead('wq');
    const kt = host.kernel.runKthread(
      'quick',
      (function* () {
        const met: boolean = yield { wq, cond: () => true };
        return met;
      })(),
    );
    assert.equal(kt.state, 'done');
    assert.equal(kt.result, true);
  });
});
