import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import { type Module, ModuleLoader, modulePut, tryModuleGet } from '../../src/kernel/index.ts';
import { EAGAIN, EIO, ENOENT, O_RDWR } from '../../src/uapi/index.ts';

/* loadable modules: request_module, try_module_get/module_put, delete_module */

function loader(): { l: ModuleLoader; order: string[] } {
  const l = new ModuleLoader();
  const order: string[] = [];
  l.install({
    name: 'base',
    init: () => {
      order.push('base');
      return 0;
    },
    exit: () => order.push('~base'),
  });
  l.install({
    name: 'user',
    depends: ['base'],
    init: () => {
      order.push('user');
      return 0;
    },
    exit: () => order.push('~user'),
  });
  l.install({ name: 'broken', init: () => -EIO });
  return { l, order };
}

describe('request_module', () => {
  it('loads dependencies first, once; a loaded module answers 0', () => {
    const { l, order } = loader();
    assert.equal(l.requestModule('user'), 0);
    assert.deepEqual(order, ['base', 'user']);
    assert.equal(l.requestModule('user'), 0);
    assert.equal(l.requestModule('base'), 0);
    assert.deepEqual(order, ['base', 'user']);
    assert.equal(l.find('user')?.state, 'live');
    assert.deepEqual(
      l.list().map((m) => m.name),
      ['base', 'user'],
    );
  });

  it('a module that is not installed: -ENOENT; an init that fails: its error, not loaded', () => {
    const { l } = loader();
    assert.equal(l.requestModule('nope'), -ENOENT);
    assert.equal(l.requestModule('broken'), -EIO);
    assert.equal(l.find('broken'), undefined);
  });
});

describe('try_module_get / module_put', () => {
  it('pins a live module; fails on a module going away; built-in code (undefined) always succeeds', () => {
    const { l } = loader();
    l.requestModule('base');
    const m = l.find('base') as Module;
    assert.equal(tryModuleGet(m), true);
    assert.equal(m.refcnt, 1);
    modulePut(m);
    assert.equal(m.refcnt, 0);
    assert.throws(() => modulePut(m), /underflow/);
    m.state = 'going';
    assert.equal(tryModuleGet(m), false);
    assert.equal(m.refcnt, 0);
    assert.equal(tryModuleGet(undefined), true);
    modulePut(undefined);
  });
});

describe('delete_module', () => {
  it('refused with -EWOULDBLOCK while used by a module or referenced; works after', () => {
    const { l, order } = loader();
    l.requestModule('user');
    assert.equal(l.deleteModule('base'), -EAGAIN);
    const u = l.find('user') as Module;
    tryModuleGet(u);
    assert.equal(l.deleteModule('user'), -EAGAIN);
    modulePut(u);
    assert.equal(l.deleteModule('user'), 0);
    assert.equal(l.deleteModule('base'), 0);
    assert.deepEqual(order, ['base', 'user', '~user', '~base']);
    assert.equal(l.deleteModule('base'), -ENOENT);
  });

  it('an open /dev/vfio/vfio pins vfio; closing lets it go (rmmod of its users first)', () => {
    const host = new Host();
    const vfio = host.kernel.modules.find('vfio') as Module;
    const refs = vfio.refcnt;
    const p = host.spawn();
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    assert.equal(vfio.refcnt, refs + 1);
    assert.equal(host.rmmod('vfio'), -EAGAIN);
    p.close(c);
    assert.equal(vfio.refcnt, refs);
  });
});
