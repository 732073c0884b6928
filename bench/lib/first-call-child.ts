/**
 * Child-process entry for the first-call measurement: a fresh process (no
 * validator compiled, nothing JIT-warmed) connects, makes its first call to
 * the warren Calculator server, then warm calls, and reports:
 *   ctorMs   creating the generated client (warren compiles validators here; 0 for amqplib)
 *   firstMs  the first call, from the call to its result
 *   warmMs   median of the next 200 sequential calls
 *   argv: <url> <addQueue> <warren|amqplib>
 * `amqplib` is a hand-written request/reply over direct reply-to: what any
 * client pays for a first call in a fresh process (cold JIT, first frames).
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import amqp from "amqplib";
import { CalculatorClient } from "../../generated/calculator/index.js";
import { connect } from "../../src/index.js";
import { median } from "./stats.js";

const [url, add, impl] = process.argv.slice(2) as [string, string, "warren" | "amqplib"];

/** Times the construction, the first call and 200 warm calls of `make`'s client. */
async function measure(make: () => Promise<{ call(a: number, b: number): Promise<unknown>; close(): Promise<void> }>, create: () => void = () => {}) {
  const client = await make();
  const t0 = performance.now();
  create();
  const ctorMs = performance.now() - t0;
  const t1 = performance.now();
  await client.call(1, 2);
  const firstMs = performance.now() - t1;
  const warm: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await client.call(i, 1);
    warm.push(performance.now() - t);
  }
  await client.close();
  return { ctorMs, firstMs, warmMs: median(warm) };
}

let result;
if (impl === "amqplib") {
  result = await measure(async () => {
    const conn = await amqp.connect(url);
    const ch = await conn.createChannel();
    const pending = new Map<string, (v: unknown) => void>();
    await ch.consume("amq.rabbitmq.reply-to", (m) => m && pending.get(m.properties.correlationId)?.(JSON.parse(m.content.toString())), { noAck: true });
    return {
      call: (a, b) =>
        new Promise((resolve) => {
          const id = randomUUID();
          pending.set(id, resolve);
          ch.sendToQueue(add, Buffer.from(JSON.stringify({ a, b })), { correlationId: id, replyTo: "amq.rabbitmq.reply-to", type: "add", contentType: "application/json" });
        }),
      close: () => conn.close(),
    };
  });
} else {
  const conn = await connect(url, { name: "bench-first-call", logger: { warn() {}, error() {} } });
  const transport = await conn.client({ queues: { Calculator: add } });
  let calc: CalculatorClient | undefined;
  result = await measure(
    async () => ({
      call: (a, b) => calc!.add({ a, b }),
      close: async () => {
        await transport.close();
        await conn.close();
      },
    }),
    () => (calc = new CalculatorClient(transport)),
  );
}
process.send!(result);
process.disconnect?.();
