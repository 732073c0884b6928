/** Small statistics helpers for the benchmarks. */

/** The p-th percentile (0..100) of `sorted` (ascending), nearest-rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: readonly number[]): number {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A growable Float64 buffer of latency samples. */
export class Samples {
  #buf = new Float64Array(1 << 16);
  #n = 0;
  push(v: number): void {
    if (this.#n === this.#buf.length) {
      const next = new Float64Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#n++] = v;
  }
  get length(): number {
    return this.#n;
  }
  sorted(): Float64Array {
    return this.#buf.slice(0, this.#n).sort();
  }
}

/**
 * The order in which `items` take turns in repetition `rep` (1-based). Slices
 * repeat one order (A B C A B C …), so what matters besides who goes first is
 * who follows whom: whatever one implementation leaves behind on the shared
 * broker (garbage to collect, acks or confirms still in flight) is paid by the
 * next. Plain rotation (A B C, B C A, C A B) never changes that: C always
 * follows B. So the direction flips every repetition and the rotation moves
 * every other one (A B C, C B A, B C A, B A C, C A B, A C B): with two or three
 * items every pair of repetitions has each item follow each other item equally
 * often (with more, each follows two of the others), and 2 × n repetitions
 * have each item first equally often.
 */
export function balancedOrder<T>(items: readonly T[], rep: number): T[] {
  const k = rep - 1;
  const base = k % 2 === 0 ? items : [...items].reverse();
  const shift = Math.floor(k / 2) % items.length;
  return base.map((_, i) => base[(i + shift) % base.length]!);
}
