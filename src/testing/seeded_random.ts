/**
 * A seeded pseudo-random source for bounded fuzz tests (xorshift32): small, fast, and the same
 * sequence for the same seed on every machine, so a failing case is named by seed and index.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./seeded_random.ts";
 * const r = seededRandom(42);
 * const len = r.int(64); // 0..63
 * if (r.chance(0.5)) console.log(r.bytes(len));
 * ```
 */
export interface SeededRandom {
  /** A uniform integer in [0, n). */
  int(n: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
}

/** A {@link SeededRandom} starting from `seed` (0 is replaced by a fixed odd constant). */
export function seededRandom(seed: number): SeededRandom {
  let x = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const int = (n: number) => next() % n;
  return {
    int,
    chance: (p: number) => next() / 2 ** 32 < p,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => int(256)),
  };
}
