import { EAGAIN, EEXIST, ENOENT } from '../uapi/index.ts';
import { fail } from './err.ts';

/*
 * Loadable modules: enough of kernel/module to make try_module_get,
 * module_put and request_module mean what they mean in the seeds. A module
 * is "on disk" once registered with the loader and "live" after its init
 * returned 0.
 */
export interface ModuleSpec {
  readonly name: string;
  /** modules this one uses symbols of: loaded first, pinned while we are loaded */
  readonly depends?: readonly string[];
  init(this: void, mod: Module): number;
  exit?(this: void, mod: Module): void;
}

export type ModuleState = 'unformed' | 'coming' | 'live' | 'going';

export class Module {
  state: ModuleState = 'unformed';
  refcnt = 0;
  /** modules that depend on us (the kernel's source_list) */
  readonly users = new Set<Module>();
  constructor(readonly spec: ModuleSpec) {}
  get name(): string {
    return this.spec.name;
  }
}

export function tryModuleGet(mod: Module | undefined): boolean {
  if (mod === undefined) return true; /* built-in code has no module to pin */
  if (mod.state !== 'live') return false;
  mod.refcnt++;
  return true;
}

export function modulePut(mod: Module | undefined): void {
  if (mod === undefined) return;
  if (mod.refcnt <= 0) throw new Error(`module_put underflow on ${mod.name}`);
  mod.refcnt--;
}

export class ModuleLoader {
  private readonly available = new Map<string, ModuleSpec>();
  private readonly loaded = new Map<string, Module>();

  /** Make a module available to modprobe (it is installed, not loaded). */
  install(spec: ModuleSpec): void {
    this.available.set(spec.name, spec);
  }

  find(name: string): Module | undefined {
    return this.loaded.get(name);
  }

  list(): Module[] {
    return [...this.loaded.values()];
  }

  /** request_module / modprobe: load with dependencies; 0 if already live. */
  requestModule(name: string): number {
    const have = this.loaded.get(name);
    if (have !== undefined) return have.state === 'live' ? 0 : -EEXIST;
    const spec = this.available.get(name);
    if (spec === undefined) return fail(ENOENT, `request_module: module ${name} not found`);
    const deps: Module[] = [];
    for (const d of spec.depends ?? []) {
      const r = this.requestModule(d);
      if (r < 0) return r;
      const dm = this.loaded.get(d);
      if (dm !== undefined) deps.push(dm);
    }
    const mod = new Module(spec);
    mod.state = 'coming';
    this.loaded.set(name, mod);
    const ret = spec.init(mod);
    if (ret !== 0) {
      this.loaded.delete(name);
      return ret;
    }
    mod.state = 'live';
    for (const d of deps) d.users.add(mod);
    return 0;
  }

  /** delete_module: refused (-EWOULDBLOCK) while used by modules or holders. */
  deleteModule(name: string): number {
    const mod = this.loaded.get(name);
    if (mod === undefined) return fail(ENOENT, `delete_module: ${name} is not loaded`);
    if (mod.users.size > 0) return fail(EAGAIN, `delete_module: ${name} is in use by other modules`);
    if (mod.refcnt > 0) return fail(EAGAIN, `delete_module: ${name} is in use (refcnt ${mod.refcnt})`);
    mod.state = 'going';
    mod.spec.exit?.(mod);
    this.loaded.delete(name);
    for (const m of this.loaded.values()) m.users.delete(mod);
    return 0;
  }
}
