import { ENOSPC } from '../uapi/index.ts';

/* idr: small integer ids to objects, lowest free id first, as idr_alloc. */
export class Idr<T> {
  private readonly map = new Map<number, T>();

  /** idr_alloc(idr, ptr, start, end): end exclusive; end <= 0 means no limit */
  alloc(ptr: T, start: number, end: number): number {
    const limit = end <= 0 ? 0x80000000 : end;
    for (let id = start; id < limit; id++) {
      if (!this.map.has(id)) {
        this.map.set(id, ptr);
        return id;
      }
    }
    return -ENOSPC;
  }

  find(id: number): T | undefined {
    return this.map.get(id);
  }

  remove(id: number): T | undefined {
    const p = this.map.get(id);
    this.map.delete(id);
    return p;
  }

  get size(): number {
    return this.map.size;
  }

  entries(): [number, T][] {
    return [...this.map.entries()].sort((a, b) => a[0] - b[0]);
  }
}
