// The only source of randomness of the sample generator. Math.random and the clock are never used:
// the same seed must give the same bytes, on any machine, in any run.

/** A 32-bit avalanche mix (the finaliser of murmur3): turns a counter into well-spread bits. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Hashes a few small integers into one 32-bit value. Every document of the sample gets its own
 * stream seeded with hash(seed, collection, index), so a document depends only on its position and
 * never on how many random numbers its predecessors drew.
 */
export function hash(...parts: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) h = mix32((h ^ mix32(p >>> 0)) + 0x7f4a7c15 + ((p / 0x100000000) >>> 0));
  return h;
}

/** mulberry32: small, fast, good enough for fixtures, and defined to the bit. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks by weight: `weighted([['a', 3], ['b', 1]])` gives 'a' three times in four. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of choices) total += w;
    let r = this.next() * total;
    for (const [value, w] of choices) {
      r -= w;
      if (r < 0) return value;
    }
    return choices[choices.length - 1]![0];
  }
}
