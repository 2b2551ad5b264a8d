// u32 sequence numbers compared modulo 2^32 (serial number arithmetic, RFC 1982 with SERIAL_BITS = 32).
// A sequence wraps from 4294967295 to 0; `a` is after `b` when a - b (mod 2^32) is in 1..2^31-1. When the
// distance is exactly 2^31 neither is after the other.

/** The sequence after `s`: (s + 1) mod 2^32. */
export function seqNext(s: number): number {
  return (s + 1) >>> 0;
}

/** a + n (mod 2^32), n any integer. */
export function seqAdd(a: number, n: number): number {
  return Number((BigInt(a) + BigInt(n)) & 0xffffffffn);
}

/** The signed distance from b to a: ((a - b) mod 2^32) as an int32, in -2^31..2^31-1. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a is after b (modulo 2^32). */
export function seqAfter(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}

/** a is before b (modulo 2^32). */
export function seqBefore(a: number, b: number): boolean {
  return seqDiff(b, a) > 0;
}
