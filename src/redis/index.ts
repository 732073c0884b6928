/**
 * `warren/redis`: a Redis-backed store for the `dedupe()` server interceptor,
 * so that several server processes of one queue run each idempotency key
 * once. Bring a connected Redis client (the `redis` package, an optional peer
 * dependency, or any client with `sendCommand`); warren does not import one.
 *
 * ```ts
 * import { createClient } from "redis";
 * import { dedupe } from "warren";
 * import { redisDedupeStore } from "warren/redis";
 *
 * const redis = await createClient({ url: "redis://127.0.0.1:6379" }).connect();
 * const server = conn.server({ interceptors: [dedupe({ store: redisDedupeStore({ client: redis }) })] });
 * ```
 */
export { redisDedupeStore } from "./dedupe-store.js";
export type { RedisCommandClient, RedisDedupeStoreOptions } from "./dedupe-store.js";
