/**
 * Idempotency keys on the real broker: a retry after connection_lost keeps its
 * message_id; and with `dedupe()` on a Redis store shared by two server
 * processes, a request whose server is SIGKILLed mid-handler, redelivered by the
 * broker, retried by its client and re-sent by another caller with the same key
 * has its side effect (a Redis INCR, outside both processes) exactly once.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Calculator, serveCalculator } from "../../generated/calculator/index.js";
import type { HandlerContext } from "../../src/index.js";
import { deleteAfter, killConnection, onTeardown, openConnection, uniqueName, until } from "../helpers/broker.js";
import { gate } from "../helpers/dedupe-contract.js";
import { redisClient, redisPrefix } from "../helpers/redis.js";

const add = Calculator.methods.add;

/** A server process of test/helpers/idempotent-server.ts; `output` is its stdout so far. Killed after the test. */
async function startServer(queue: string, prefix: string, mode: "run" | "hang", leaseMs: number) {
  const script = fileURLToPath(new URL("../helpers/idempotent-server.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script, queue, prefix, mode, String(leaseMs)], { stdio: ["ignore", "pipe", "inherit"] });
  const proc = { child, output: "" };
  child.stdout.on("data", (d: Buffer) => (proc.output += d.toString()));
  onTeardown(() => child.exitCode === null && child.kill("SIGKILL"));
  const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`server process exited with ${code}: ${proc.output}`))));
  await Promise.race([until(() => proc.output.includes("ready"), "the server process to consume", 20_000), exited]);
  return proc;
}

describe("idempotency keys on RabbitMQ", () => {
  it("a retry after connection_lost carries the first attempt's message_id under a new correlation id", async () => {
    const queue = deleteAfter(uniqueName("calc"));
    const seen: { key: string; correlationId: string }[] = [];
    const hold = gate();
    const serverConn = await openConnection();
    await serveCalculator(serverConn.server(), {
      add: async ({ a, b }, ctx: HandlerContext<any>) => {
        seen.push({ key: ctx.idempotencyKey, correlationId: ctx.correlationId });
        if (seen.length === 1) await hold.promise; // the first attempt is still running when its caller loses the connection
        return { sum: a + b };
      },
      divide: () => ({ quotient: 0 }),
      summarize: () => ({ statistic: "mean", value: 0, count: 0, label: null }),
      centroid: () => ({ x: 0, y: 0 }),
    }, { queue });
    const name = uniqueName("caller");
    const client = await (await openConnection(name)).client({ queues: { Calculator: queue } });
    const call = client.call(add, { a: 1, b: 2 }, { timeoutMs: 20_000 }); // add is idempotent: retried after connection_lost
    await until(() => seen.length === 1, "the first attempt to reach the handler");
    expect(await killConnection(name)).toBe(1);
    await expect(call).resolves.toEqual({ sum: 3 });
    hold.open();
    expect(seen).toHaveLength(2);
    expect(seen[1]!.correlationId).not.toBe(seen[0]!.correlationId);
    expect(seen[1]!.key).toBe(seen[0]!.key);
    expect(seen[0]!.key).toBe(seen[0]!.correlationId);
  });

  it("with dedupe() on Redis: SIGKILL mid-handler, redelivery, a client retry and a re-send with the same key run the side effect exactly once", async () => {
    const queue = deleteAfter(uniqueName("calc"));
    const redis = await redisClient();
    const prefix = redisPrefix(redis);
    const leaseMs = 1000;
    const doomed = await startServer(queue, prefix, "hang", leaseMs);

    // Caller 1 calls with the default key (its first correlation id); the only server takes it and hangs before its side effect.
    const name = uniqueName("caller");
    const caller1 = await (await openConnection(name)).client({ queues: { Calculator: queue } });
    const first = caller1.call(add, { a: 1, b: 2 }, { timeoutMs: 25_000 });
    await until(() => doomed.output.includes("handling "), "the first server to start the handler");
    const key = /handling (\S+)\n/.exec(doomed.output)![1]!;

    const survivor = await startServer(queue, prefix, "run", leaseMs);
    // Caller 1 loses its connection: its client retries the call with the same message_id.
    expect(await killConnection(name)).toBe(1);
    // The first server dies mid-handler holding the key's claim: the broker redelivers what it held to the survivor.
    doomed.child.kill("SIGKILL");
    // Another caller sends the same request with the same key.
    const caller2 = await (await openConnection()).client({ queues: { Calculator: queue } });
    const resent = caller2.call(add, { a: 1, b: 2 }, { timeoutMs: 25_000, idempotencyKey: key });

    const results = await Promise.all([first, resent]);
    expect(results).toEqual([{ sum: 1003 }, { sum: 1003 }]);
    expect(await redis.get(`${prefix}side-effects`)).toBe("1");
    // The broker redelivered the killed server's request to the survivor, which ran the handler once for all of them.
    await until(() => survivor.output.includes(`arrived ${key} redelivered=true\n`), "the redelivered request to reach the survivor");
    expect(survivor.output.split("\n").filter((line) => line === `handling ${key}`)).toHaveLength(1);
    expect(survivor.output.split("\n").filter((line) => line.startsWith(`arrived ${key} `)).length).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
