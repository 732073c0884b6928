/**
 * Deadlines of many pending calls on one timer. Calls are grouped in buckets
 * of `resolutionMs`; a single timer fires for the earliest bucket that still
 * holds a call. Adding and removing a call is a Map and a Set operation, with
 * no timer created or cleared per call (a Node timer costs several hundred
 * nanoseconds and ~200 bytes each). A call expires at or after its deadline,
 * at most `resolutionMs` later.
 */

/** Something with a deadline. */
export interface Expiring {
  /** Called once, when the deadline has passed (unless removed first). */
  expire(): void;
}

/** The deadlines of one client; see the module comment. */
export class Deadlines<T extends Expiring> {
  readonly #buckets = new Map<number, Set<T>>();
  /** Bucket keys in ascending order; may hold keys whose bucket has since emptied. */
  #keys: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #timerKey = Infinity;
  readonly #fire = () => this.#expireDue();

  constructor(private readonly resolutionMs = 10) {}

  /** Number of registered items. */
  get size(): number {
    let n = 0;
    for (const bucket of this.#buckets.values()) n += bucket.size;
    return n;
  }

  /** Registers `item` to expire at `deadline` (ms since the epoch); returns the key {@link delete} needs. */
  add(item: T, deadline: number): number {
    const key = Math.ceil(deadline / this.resolutionMs);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = new Set();
      this.#buckets.set(key, bucket);
      insertSorted(this.#keys, key);
      if (key < this.#timerKey) this.#arm(key);
    }
    bucket.add(item);
    return key;
  }

  /** Removes `item` (registered under `key`); it will not expire. */
  delete(item: T, key: number): void {
    const bucket = this.#buckets.get(key);
    if (bucket !== undefined && bucket.delete(item) && bucket.size === 0) this.#buckets.delete(key);
  }

  /** Removes everything and stops the timer. */
  clear(): void {
    this.#buckets.clear();
    this.#keys = [];
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerKey = Infinity;
  }

  #arm(key: number): void {
    clearTimeout(this.#timer);
    this.#timerKey = key;
    // Unref'd: a pending call must not keep a process alive on its own (its connection does while it is open).
    this.#timer = setTimeout(this.#fire, Math.max(0, key * this.resolutionMs - Date.now())).unref();
  }

  #expireDue(): void {
    this.#timer = undefined;
    this.#timerKey = Infinity;
    const now = Date.now();
    const keys = this.#keys;
    const due: Set<T>[] = [];
    let i = 0;
    for (; i < keys.length; i++) {
      const bucket = this.#buckets.get(keys[i]!);
      if (bucket === undefined) continue; // emptied since it was added: only a marker
      if (keys[i]! * this.resolutionMs > now) break;
      this.#buckets.delete(keys[i]!);
      due.push(bucket);
    }
    keys.splice(0, i);
    if (keys.length > 0) this.#arm(keys[0]!);
    for (const bucket of due) for (const item of bucket) item.expire();
  }
}

/** Inserts `key` into the ascending `keys` unless present; appending (the usual case) is O(1). */
function insertSorted(keys: number[], key: number): void {
  const last = keys.length - 1;
  if (last < 0 || keys[last]! < key) {
    keys.push(key);
    return;
  }
  let lo = 0;
  let hi = last;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  if (keys[lo] !== key) keys.splice(lo, 0, key);
}
