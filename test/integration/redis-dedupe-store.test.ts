/**
 * `warren/redis` against the Redis on this machine (REDIS_URL): the DedupeStore
 * contract and `dedupe()` on it, as the unit tests run them on the in-memory
 * store. Keys live under a prefix per test and are deleted after it.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { redisDedupeStore } from "../../src/redis/index.js";
import { dedupeContract, storeContract } from "../helpers/dedupe-contract.js";
import { redisClient, redisPrefix } from "../helpers/redis.js";

const key = () => `k-${randomBytes(6).toString("hex")}`;
const makeStore = async () => {
  const client = await redisClient();
  return redisDedupeStore({ client, prefix: redisPrefix(client) });
};
storeContract("redisDedupeStore", makeStore, key);
dedupeContract("redisDedupeStore", makeStore, key);

describe("redisDedupeStore", () => {
  it("keeps each key under its prefix, with the lease as the Redis key's expiry", async () => {
    const client = await redisClient();
    const prefix = redisPrefix(client);
    const store = redisDedupeStore({ client, prefix });
    await store.claim("order-1", "fp", 60_000);
    const ttl = await client.pTTL(`${prefix}order-1`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it("says clearly when a key under its prefix is not one of its entries", async () => {
    const client = await redisClient();
    const prefix = redisPrefix(client);
    await client.set(`${prefix}foreign`, "hello");
    await expect(redisDedupeStore({ client, prefix }).claim("foreign", "fp", 1000)).rejects.toThrow(
      `warren/redis: Redis key "${prefix}foreign" does not hold a warren dedupe entry; is another application using the prefix?`,
    );
  });

  it("refuses a client without sendCommand", () => {
    expect(() => redisDedupeStore({ client: {} as never })).toThrow("warren/redis: redisDedupeStore: `client` must be a Redis client with sendCommand()");
  });
});
