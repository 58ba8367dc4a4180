import { EEXIST, EINVAL, ELOOP, ENOENT, ENOTDIR } from '../uapi/index.ts';

/*
 * One namespace for the pseudo filesystems a VFIO user touches: devtmpfs
 * (/dev), sysfs (/sys) and procfs (/proc). Nodes are directories, text
 * attributes (sysfs show/store), symlinks and character device nodes.
 */
export interface DirNode {
  readonly kind: 'dir';
  readonly children: Map<string, VfsNode>;
  mode: number;
}
export interface AttrNode {
  readonly kind: 'attr';
  mode: number;
  show?: () => string;
  /** returns bytes consumed or -errno, as a sysfs store */
  store?: (text: string) => number;
}
export interface LinkNode {
  readonly kind: 'link';
  readonly target: string;
}
export interface DevNode {
  readonly kind: 'chr';
  readonly major: number;
  readonly minor: number;
  mode: number;
  uid: number;
  gid: number;
}
export type VfsNode = DirNode | AttrNode | LinkNode | DevNode;

export function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0 && s !== '.');
}

export function joinPath(parts: readonly string[]): string {
  return `/${parts.join('/')}`;
}

export class Vfs {
  readonly root: DirNode = { kind: 'dir', children: new Map(), mode: 0o755 };

  private dir(parts: readonly string[], create: boolean): DirNode | number {
    let d: DirNode = this.root;
    for (const p of parts) {
      let n = d.children.get(p);
      if (n === undefined) {
        if (!create) return -ENOENT;
        n = { kind: 'dir', children: new Map(), mode: 0o755 };
        d.children.set(p, n);
      }
      if (n.kind === 'link') {
        const t = this.lookup(n.target);
        if (typeof t === 'number') return t;
        n = t;
      }
      if (n.kind !== 'dir') return -ENOTDIR;
      d = n;
    }
    return d;
  }

  mkdirp(path: string): DirNode {
    const d = this.dir(splitPath(path), true);
    if (typeof d === 'number') throw new Error(`mkdir -p ${path}: ${d}`);
    return d;
  }

  add(path: string, node: VfsNode): number {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) return -EINVAL;
    const d = this.dir(parts, true);
    if (typeof d === 'number') return d;
    if (d.children.has(name)) return -EEXIST;
    d.children.set(name, node);
    return 0;
  }

  link(path: string, target: string): number {
    return this.add(path, { kind: 'link', target });
  }

  remove(path: string): void {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) return;
    const d = this.dir(parts, false);
    if (typeof d !== 'number') d.children.delete(name);
  }

  /** resolve a path, following symlinks (the last one too unless noFollow) */
  lookup(path: string, noFollow = false, depth = 0): VfsNode | number {
    if (depth > 40) return -ELOOP;
    const parts = splitPath(path);
    let cur: VfsNode = this.root;
    const seen: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] ?? '';
      if (p === '..') {
        seen.pop();
        const back = this.lookup(joinPath(seen), false, depth + 1);
        if (typeof back === 'number') return back;
        cur = back;
        continue;
      }
      if (cur.kind !== 'dir') return -ENOTDIR;
      const n: VfsNode | undefined = cur.children.get(p);
      if (n === undefined) return -ENOENT;
      const last = i === parts.length - 1;
      if (n.kind === 'link' && !(last && noFollow)) {
        const rest = parts.slice(i + 1);
        return this.lookup(joinPath([...splitPath(n.target), ...rest]), noFollow, depth + 1);
      }
      seen.push(p);
      cur = n;
    }
    return cur;
  }

  /** the canonical path of a directory, every symlink on the way resolved */
  realpath(path: string, depth = 0): string[] | number {
    if (depth > 40) return -ELOOP;
    const out: string[] = [];
    let cur: VfsNode = this.root;
    for (const p of splitPath(path)) {
      if (p === '..') {
        out.pop();
        const back = this.lookup(joinPath(out));
        if (typeof back === 'number') return back;
        cur = back;
        continue;
      }
      if (cur.kind !== 'dir') return -ENOTDIR;
      const n: VfsNode | undefined = cur.children.get(p);
      if (n === undefined) return -ENOENT;
      if (n.kind === 'link') {
        const t = this.realpath(n.target, depth + 1);
        if (typeof t === 'number') return t;
        out.length = 0;
        out.push(...t);
        const tn = this.lookup(joinPath(out));
        if (typeof tn === 'number') return tn;
        cur = tn;
        continue;
      }
      out.push(p);
      cur = n;
    }
    return out;
  }

  /**
   * readlink: the target relative to the directory that really holds the
   * link (sysfs stores it so), however the link was reached.
   */
  readlink(path: string): string | number {
    const n = this.lookup(path, true);
    if (typeof n === 'number') return n;
    if (n.kind !== 'link') return -EINVAL;
    const from = this.realpath(joinPath(splitPath(path).slice(0, -1)));
    if (typeof from === 'number') return from;
    const to = splitPath(n.target);
    let common = 0;
    while (common < from.length && common < to.length && from[common] === to[common]) common++;
    return [...from.slice(common).map(() => '..'), ...to.slice(common)].join('/');
  }

  list(path: string): string[] | number {
    const n = this.lookup(path);
    if (typeof n === 'number') return n;
    if (n.kind !== 'dir') return -ENOTDIR;
    return [...n.children.keys()].sort();
  }
}
