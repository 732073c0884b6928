/**
 * A {@link DedupeStore} in Redis, shared by every server process of a queue.
 * One string value per key: a claim (`SET NX PX`: the lease is the key's
 * expiry) that a Lua script turns into the stored outcome (its expiry the ttl)
 * only while the claim's token is still the value — so a process whose lease
 * ran out can neither renew, finish nor release the claim someone else took.
 */
import { randomUUID } from "node:crypto";
import type { DedupeEntry, DedupeStore } from "../rpc/dedupe-store.js";

/**
 * The one method of a Redis client this store uses: send a command, resolve
 * with its reply. A node-redis client (`createClient()` from `redis`, version
 * 4 or later, connected to one Redis server) is one as it is; for ioredis pass
 * `{ sendCommand: ([name, ...args]) => redis.call(name!, ...args) }`.
 */
export interface RedisCommandClient {
  /** Sends `args` (the command's name, then its arguments) and resolves with the reply: a string, a number or null here. */
  sendCommand(args: string[]): Promise<unknown>;
}

/** Options of {@link redisDedupeStore}. */
export interface RedisDedupeStoreOptions {
  /** A connected client; the store never connects, closes or selects a database. */
  client: RedisCommandClient;
  /** Put before every idempotency key to make the Redis key; give each application (or test run) its own. @default "warren:dedupe:" */
  prefix?: string;
}

// Each acts only while the key still holds the caller's claim (its token is the whole value).
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const FINISH = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** What one Redis value holds: a claim (`claim` is a fresh UUID) or an outcome. */
type Stored = { claim: string; fingerprint: string } | { fingerprint: string; outcome: string };

/**
 * A {@link DedupeStore} on Redis, for `dedupe({ store })` on several server
 * processes: claims are atomic across them, a claim expires with its lease,
 * and outcomes expire after their ttl (Redis drops them; nothing to clean up).
 * Keys are `prefix + idempotency key`.
 * @throws TypeError when `client` has no `sendCommand`.
 */
export function redisDedupeStore(options: RedisDedupeStoreOptions): DedupeStore {
  const client = options.client;
  if (typeof client?.sendCommand !== "function") {
    throw new TypeError("warren/redis: redisDedupeStore: `client` must be a Redis client with sendCommand(), e.g. createClient() from the redis package, connected");
  }
  const prefix = options.prefix ?? "warren:dedupe:";
  const ms = (n: number) => String(Math.max(1, Math.ceil(n)));
  const evalScript = async (script: string, key: string, ...args: string[]) => Number(await client.sendCommand(["EVAL", script, "1", prefix + key, ...args]));
  return {
    async claim(key, fingerprint, leaseMs): Promise<DedupeEntry> {
      const token = JSON.stringify({ claim: randomUUID(), fingerprint } satisfies Stored);
      for (;;) {
        if ((await client.sendCommand(["SET", prefix + key, token, "NX", "PX", ms(leaseMs)])) === "OK") return { state: "claimed", token };
        const text = asText(await client.sendCommand(["GET", prefix + key]));
        if (text === undefined) continue; // it expired between the two commands: claim it again
        const stored = parse(text, prefix + key);
        return "outcome" in stored ? { state: "done", fingerprint: stored.fingerprint, outcome: stored.outcome } : { state: "running", fingerprint: stored.fingerprint };
      }
    },
    async renew(key, token, leaseMs) {
      return (await evalScript(RENEW, key, token, ms(leaseMs))) === 1;
    },
    async finish(key, token, outcome, ttlMs) {
      const fingerprint = read(token)?.fingerprint;
      if (fingerprint === undefined) return false; // not a token of this store: it holds nothing
      return (await evalScript(FINISH, key, token, JSON.stringify({ fingerprint, outcome } satisfies Stored), ms(ttlMs))) === 1;
    },
    async release(key, token) {
      await evalScript(RELEASE, key, token);
    },
  };
}

function asText(reply: unknown): string | undefined {
  if (typeof reply === "string") return reply;
  if (Buffer.isBuffer(reply)) return reply.toString("utf8");
  return undefined;
}

/** The entry `text` holds, or `undefined` when it is not one of this store's. */
function read(text: string): Stored | undefined {
  try {
    const value = JSON.parse(text) as Partial<Record<string, unknown>> | null;
    if (typeof value?.fingerprint === "string" && (typeof value.claim === "string" || typeof value.outcome === "string")) return value as Stored;
  } catch {
    // not JSON: not ours
  }
  return undefined;
}

function parse(text: string, redisKey: string): Stored {
  const stored = read(text);
  if (stored !== undefined) return stored;
  throw new Error(`warren/redis: Redis key ${JSON.stringify(redisKey)} does not hold a warren dedupe entry; is another application using the prefix?`);
}
