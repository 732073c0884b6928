/** Redis for the tests of `warren/redis`: a connected client, a key prefix per test, its keys deleted after the test. */
import { randomBytes } from "node:crypto";
import { createClient } from "redis";
import { onTeardown } from "./broker.js";

/** The Redis the tests use: `REDIS_URL`, else Redis on this machine. */
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A connected node-redis client, closed after the test; fails in one line naming the URL when Redis is unreachable. */
export async function redisClient() {
  const client = createClient({ url: REDIS_URL, socket: { connectTimeout: 3000, reconnectStrategy: false } });
  client.on("error", () => {}); // a failed connect rejects connect() below
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`warren's Redis tests need Redis at ${REDIS_URL} (start one with: redis-server --daemonize yes --port 6379 --save ""): ${(err as Error).message}`);
  }
  onTeardown(() => client.close());
  return client;
}

/** A key prefix no other test uses (the run's tag, then the test's); every key under it is deleted after the test. */
export function redisPrefix(client: { scanIterator(options: { MATCH: string }): AsyncIterable<string[]>; del(keys: string[]): Promise<unknown> }): string {
  const prefix = `__test_${process.env.WARREN_TEST_RUN ?? "norun"}_${randomBytes(4).toString("hex")}__:`;
  onTeardown(async () => {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*` })) if (keys.length > 0) await client.del(keys);
  });
  return prefix;
}
