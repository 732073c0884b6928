/**
 * Where `dedupe()` (src/rpc/idempotency.ts) keeps what it knows of each
 * idempotency key: a claim while a handler runs, then the outcome to replay.
 * The interface is small so that any shared store can back it; warren ships
 * an in-process one here and a Redis one in `warren/redis`.
 */
import { randomUUID } from "node:crypto";

/**
 * What a store answers to {@link DedupeStore.claim}:
 *
 * - `claimed`: the caller holds the key now and runs the request; `token`
 *   proves it to `renew`, `finish` and `release`.
 * - `running`: someone else holds a live claim for a request with `fingerprint`.
 * - `done`: an outcome is stored for a request with `fingerprint`.
 */
export type DedupeEntry =
  | { readonly state: "claimed"; readonly token: string }
  | { readonly state: "running"; readonly fingerprint: string }
  | { readonly state: "done"; readonly fingerprint: string; readonly outcome: string };

/**
 * A store of idempotency keys shared by every server process that must run a
 * key once. Contract for implementations (every method may reject when the
 * store cannot be reached; `dedupe()` then fails the request, or logs):
 *
 * 1. `claim` is atomic: of any number of concurrent claims of a key that has
 *    neither a live claim nor an outcome, exactly one gets `claimed`.
 * 2. A claim lives `leaseMs` from its `claim` or its latest `renew`; once it
 *    has expired the key is free again (`claim` may hand it to someone else).
 * 3. `renew`, `finish` and `release` act only while `token` still holds the
 *    key, and answer whether it did (`release` need not answer).
 * 4. `finish` replaces the claim with `outcome`, kept at least until `ttlMs`
 *    has passed (an in-process store may drop it earlier to stay bounded:
 *    then a duplicate runs again).
 * 5. `outcome` and `fingerprint` are opaque strings, stored and returned unchanged.
 */
export interface DedupeStore {
  /** Claims `key` for a request with `fingerprint` for `leaseMs`, or says who has it. */
  claim(key: string, fingerprint: string, leaseMs: number): Promise<DedupeEntry>;
  /** Extends the claim `token` holds to `leaseMs` from now; false when it no longer holds the key. */
  renew(key: string, token: string, leaseMs: number): Promise<boolean>;
  /** Stores `outcome` for `ttlMs` in place of the claim `token` holds; false (nothing stored) when it no longer holds the key. */
  finish(key: string, token: string, outcome: string, ttlMs: number): Promise<boolean>;
  /** Frees `key` if `token` holds it, so that the next claim runs the request. */
  release(key: string, token: string): Promise<void>;
}

/** Options of {@link memoryDedupeStore}. */
export interface MemoryDedupeStoreOptions {
  /** Keys kept at most; past it the oldest are dropped first (a duplicate of a dropped key runs again). @default 10000 */
  maxEntries?: number;
}

interface MemoryEntry {
  readonly fingerprint: string;
  /** The claim's token, or `undefined` once an outcome is stored. */
  readonly token: string | undefined;
  readonly outcome: string;
  /** When the claim's lease or the outcome's ttl runs out (ms since the epoch). */
  expiresAt: number;
}

/**
 * A {@link DedupeStore} in this process's memory: right for one server process
 * (or tests); several processes that share a queue need a shared store such as
 * `redisDedupeStore` from `warren/redis`. Expired entries are dropped as they
 * are met, and the oldest beyond `maxEntries`.
 * @throws TypeError when `maxEntries` is not a positive integer.
 */
export function memoryDedupeStore(options: MemoryDedupeStoreOptions = {}): DedupeStore {
  const max = options.maxEntries ?? 10_000;
  if (!Number.isSafeInteger(max) || max < 1) throw new TypeError(`warren: memoryDedupeStore: maxEntries must be a positive integer, got ${String(max)}`);
  // Insertion order is age order: an entry is re-inserted whenever it is written.
  const entries = new Map<string, MemoryEntry>();
  const live = (key: string, now: number): MemoryEntry | undefined => {
    const entry = entries.get(key);
    if (entry !== undefined && entry.expiresAt <= now) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const put = (key: string, entry: MemoryEntry) => {
    entries.delete(key);
    entries.set(key, entry);
    // Bounded: drop expired entries from the old end, then the oldest while over the limit.
    const now = Date.now();
    for (const [old, e] of entries) {
      if (entries.size <= max && e.expiresAt > now) break;
      entries.delete(old);
    }
  };
  const held = (key: string, token: string): MemoryEntry | undefined => {
    const entry = live(key, Date.now());
    return entry !== undefined && entry.token === token ? entry : undefined;
  };
  return {
    async claim(key, fingerprint, leaseMs) {
      const entry = live(key, Date.now());
      if (entry === undefined) {
        const token = randomUUID();
        put(key, { fingerprint, token, outcome: "", expiresAt: Date.now() + leaseMs });
        return { state: "claimed", token };
      }
      return entry.token === undefined ? { state: "done", fingerprint: entry.fingerprint, outcome: entry.outcome } : { state: "running", fingerprint: entry.fingerprint };
    },
    async renew(key, token, leaseMs) {
      const entry = held(key, token);
      if (entry === undefined) return false;
      entry.expiresAt = Date.now() + leaseMs;
      return true;
    },
    async finish(key, token, outcome, ttlMs) {
      const entry = held(key, token);
      if (entry === undefined) return false;
      put(key, { fingerprint: entry.fingerprint, token: undefined, outcome, expiresAt: Date.now() + ttlMs });
      return true;
    },
    async release(key, token) {
      if (held(key, token) !== undefined) entries.delete(key);
    },
  };
}
