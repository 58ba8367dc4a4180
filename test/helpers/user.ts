import {
  type FieldTable,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  type StructLayout,
  type StructValue,
  type Syscalls,
} from '../../src/uapi/index.ts';

/*
 * Test helpers that play a C program's part: put structs and strings in
 * the process's memory and pass their addresses to the raw calls.
 */
export function userAlloc(p: Syscalls, size: number): bigint {
  const a = p.mmap(0n, Math.max(size, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  if (a < 0n) throw new Error(`mmap failed: ${a}`);
  return a;
}

export function putStruct<F extends FieldTable>(
  p: Syscalls,
  addr: bigint,
  layout: StructLayout<F>,
  v: Partial<StructValue<F>>,
): bigint {
  p.mem.write(addr, layout.encode(v));
  return addr;
}

export function getStruct<F extends FieldTable>(
  p: Syscalls,
  addr: bigint,
  layout: StructLayout<F>,
): StructValue<F> {
  return layout.decode(p.mem.read(addr, layout.size));
}

export function putS32(p: Syscalls, addr: bigint, v: number): bigint {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  p.mem.write(addr, b);
  return addr;
}

export function putCString(p: Syscalls, addr: bigint, s: string): bigint {
  p.mem.write(addr, new TextEncoder().encode(`${s}\0`));
  return addr;
}
