/**
 * A Calculator server in its own process whose `add` is deduplicated through
 * Redis, for test/integration/idempotency.test.ts.
 * Usage: node --import tsx test/helpers/idempotent-server.ts <queue> <redis prefix> <mode: run|hang> <leaseMs>
 * Prints `ready` once consuming, `arrived <idempotency key> redelivered=<bool>` for
 * every request (before deduplication) and `handling <idempotency key>` each time
 * the handler starts. `run`: the side effect is `INCR <prefix>side-effects`
 * and the result `{ sum: a + b + 1000 * <the count after it> }`; `hang`: the handler
 * never gets to its side effect (the test kills the process meanwhile).
 */
import { createClient } from "redis";
import { serveCalculator } from "../../generated/calculator/index.js";
import { calculatorHandlers } from "./calculator-handlers.js";
import { connect, dedupe, type ServerInterceptor } from "../../src/index.js";
import { redisDedupeStore } from "../../src/redis/index.js";

const [queue, prefix, mode, leaseMs] = process.argv.slice(2);
if (!queue || !prefix || (mode !== "run" && mode !== "hang") || !leaseMs) throw new Error("usage: idempotent-server.ts <queue> <redis prefix> <run|hang> <leaseMs>");
const redis = await createClient({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }).connect();
const conn = await connect();
const arrivals: ServerInterceptor = (next) => (request, ctx) => {
  process.stdout.write(`arrived ${ctx.idempotencyKey} redelivered=${ctx.redelivered}\n`);
  return next(request, ctx);
};
const server = conn.server({ prefetch: 8, interceptors: [arrivals, dedupe({ store: redisDedupeStore({ client: redis, prefix }), leaseMs: Number(leaseMs), pollMs: 20 })] });
await serveCalculator(server, {
  ...calculatorHandlers,
  add: async ({ a, b }, ctx) => {
    process.stdout.write(`handling ${ctx.idempotencyKey}\n`);
    if (mode === "hang") await new Promise(() => {});
    const count = await redis.incr(`${prefix}side-effects`);
    return { sum: a + b + 1000 * count };
  },
}, { queue });
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  void server.close().then(async () => {
    await conn.close();
    await redis.close();
    process.exit(0);
  });
});
