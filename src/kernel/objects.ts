/*
 * Object accounting: every kernel object is counted by kind while alive
 * (kzalloc ... kfree), so a test can assert that a host went back to its
 * baseline after a process exited or a device was unbound.
 */
export class ObjectCounter {
  private readonly counts = new Map<string, number>();

  alloc(kind: string): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  free(kind: string): void {
    const n = this.counts.get(kind) ?? 0;
    if (n <= 0) throw new Error(`kfree of a ${kind} that was never allocated (double free)`);
    if (n === 1) this.counts.delete(kind);
    else this.counts.set(kind, n - 1);
  }

  count(kind: string): number {
    return this.counts.get(kind) ?? 0;
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.counts.keys()].sort()) out[k] = this.counts.get(k) ?? 0;
    return out;
  }
}
