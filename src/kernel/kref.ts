/*
 * kref and atomic_t. The model is single-threaded, so an atomic is a plain
 * counter; the kernel's operations keep their names and semantics so the
 * seeds' lines (atomic_cmpxchg(&group->opened, 0, 1)) map one to one.
 */
export class Kref {
  refcount = 1;

  get(): void {
    if (this.refcount <= 0) throw new Error('kref_get on a released object');
    this.refcount++;
  }

  /** kref_put: returns true when this put released the object. */
  put(release: () => void): boolean {
    if (this.refcount <= 0) throw new Error('kref_put underflow');
    if (--this.refcount === 0) {
      release();
      return true;
    }
    return false;
  }

  getUnlessZero(): boolean {
    if (this.refcount === 0) return false;
    this.refcount++;
    return true;
  }
}

export class Atomic {
  constructor(public counter = 0) {}

  read(): number {
    return this.counter;
  }
  set(v: number): void {
    this.counter = v;
  }
  inc(): void {
    this.counter++;
  }
  dec(): void {
    this.counter--;
  }
  /** atomic_cmpxchg: returns the old value */
  cmpxchg(old: number, neu: number): number {
    const v = this.counter;
    if (v === old) this.counter = neu;
    return v;
  }
  /** atomic_dec_if_positive: returns old - 1, decrementing only when that is >= 0 */
  decIfPositive(): number {
    const r = this.counter - 1;
    if (r >= 0) this.counter = r;
    return r;
  }
  /** atomic_inc_not_zero */
  incNotZero(): boolean {
    if (this.counter === 0) return false;
    this.counter++;
    return true;
  }
  decAndTest(): boolean {
    return --this.counter === 0;
  }
}
