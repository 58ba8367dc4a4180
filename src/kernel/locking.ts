/*
 * mutex and rw_semaphore, placed where the kernel takes them. Nothing runs
 * concurrently here, but a lock taken twice or released unheld is the same
 * bug it would be in the kernel, so misuse throws (and becomes an oops).
 */
export class Mutex {
  private owner: unknown = undefined;
  private held = false;
  constructor(readonly name: string) {}

  lock(): void {
    if (this.held) throw new Error(`mutex ${this.name}: recursive lock (deadlock)`);
    this.held = true;
  }
  unlock(): void {
    if (!this.held) throw new Error(`mutex ${this.name}: unlock when not held`);
    this.held = false;
    this.owner = undefined;
  }
  isLocked(): boolean {
    return this.held;
  }
  tryLock(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }
  get ownerTag(): unknown {
    return this.owner;
  }
}

export class RwSem {
  private readers = 0;
  private writer = false;
  constructor(readonly name: string) {}

  downRead(): void {
    if (this.writer) throw new Error(`rwsem ${this.name}: down_read while write-held (deadlock)`);
    this.readers++;
  }
  upRead(): void {
    if (this.readers <= 0) throw new Error(`rwsem ${this.name}: up_read when not read-held`);
    this.readers--;
  }
  downWrite(): void {
    if (this.writer || this.readers > 0)
      throw new Error(`rwsem ${this.name}: down_write while held (deadlock)`);
    this.writer = true;
  }
  upWrite(): void {
    if (!this.writer) throw new Error(`rwsem ${this.name}: up_write when not write-held`);
    this.writer = false;
  }
  isHeld(): boolean {
    return this.writer || this.readers > 0;
  }
}
