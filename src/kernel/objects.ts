/*
 * Object accounting: every kernel object is counted by kind while alive
 * (kzalloc ... kfree), so a test can assert that a host went back to its
 * baseline after a process exited or a device was unbound.
 */
/* one mutable slot per kind: a hot alloc/free is one Map lookup, and a kind that drops to zero keeps its slot (no delete/re-insert churn) */
interface Slot {
  n: number;
}

export class ObjectCounter {
  private readonly counts = new Map<string, Slot>();

  alloc(kind: string): void {
    const s = this.counts.get(kind);
    if (s === undefined) this.counts.set(kind, { n: 1 });
    else s.n++;
  }

  free(kind: string): void {
    const s = this.counts.get(kind);
    if (s === undefined || s.n <= 0)
      throw new Error(`kfree of a ${kind} that was never allocated (double free)`);
    s.n--;
  }

  count(kind: string): number {
    return this.counts.get(kind)?.n ?? 0;
  }

  /** the live kinds (count > 0), sorted by name */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.counts.keys()].sort()) {
      const n = this.counts.get(k)?.n ?? 0;
      if (n > 0) out[k] = n;
    }
    return out;
  }
}
