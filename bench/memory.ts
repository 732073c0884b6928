/**
 * Client memory with 10,000 calls in flight: the calls go to an existing queue
 * that nobody consumes, so they wait (until their timeout, set far away).
 * Measures heap and RSS after a forced GC, before and with the calls pending,
 * for warren and for the hand-written amqplib baseline.
 *
 *   npm run bench:memory -- [calls=10000]
 */
import amqp from "amqplib";
import { connect } from "../src/index.js";
import { CalculatorClient } from "../generated/calculator/index.js";
import { sleep } from "./lib/driver.js";

const url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const N = Number(process.argv[2] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with: npm run bench:memory");

async function settle(): Promise<{ heap: number; rss: number }> {
  for (let i = 0; i < 3; i++) {
    await sleep(50);
    gc!();
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

const queue = `bench.memory.${Date.now().toString(36)}-${process.pid}`;
const admin = await amqp.connect(url);
const adminCh = await admin.createChannel();
await adminCh.assertQueue(queue, { durable: false, autoDelete: false });
const MB = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
const rows: string[] = [];

async function measure(label: string, setup: () => Promise<{ fire: (i: number) => Promise<unknown>; pending: () => number; close: () => Promise<void> }>) {
  const impl = await setup();
  // Warm the code paths so compiled code is not counted as per-call memory.
  const warm = Array.from({ length: 200 }, (_, i) => impl.fire(i).catch(() => {}));
  await sleep(200);
  await adminCh.purgeQueue(queue);
  const before = await settle();
  const calls = Array.from({ length: N }, (_, i) => impl.fire(i).catch(() => {}));
  while (impl.pending() < N + 200) await sleep(10);
  await sleep(300); // let every publish reach the socket
  const during = await settle();
  const perCall = (during.heap - before.heap) / N;
  rows.push(
    `| ${label} | ${impl.pending()} | ${MB(before.heap)} | ${MB(during.heap)} | ${MB(before.rss)} | ${MB(during.rss)} | ${perCall.toFixed(0)} | ${((during.rss - before.rss) / N).toFixed(0)} |`,
  );
  await impl.close();
  await Promise.all([...warm, ...calls]);
  await adminCh.purgeQueue(queue);
}

await measure("warren (CalculatorClient.add, timeout 120 s)", async () => {
  const conn = await connect(url, { name: "bench-memory", logger: { warn() {}, error() {} } });
  const transport = await conn.client({ queues: { Calculator: queue } });
  const calc = new CalculatorClient(transport);
  return {
    fire: (i) => calc.add({ a: i, b: 1 }, { timeoutMs: 120_000 }),
    pending: () => transport.pendingCount,
    close: async () => {
      await transport.close();
      await conn.close();
    },
  };
});

await measure("hand-written amqplib baseline (no timer)", async () => {
  const conn = await amqp.connect(url, { noDelay: true });
  const ch = await conn.createChannel();
  const pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  await ch.consume("amq.rabbitmq.reply-to", () => {}, { noAck: true });
  let next = 0;
  return {
    fire: (i) =>
      new Promise((resolve, reject) => {
        const id = String(++next);
        pending.set(id, { resolve, reject });
        ch.publish("", queue, Buffer.from(JSON.stringify({ a: i, b: 1 })), { correlationId: id, replyTo: "amq.rabbitmq.reply-to" });
      }),
    pending: () => pending.size,
    close: async () => {
      for (const p of pending.values()) p.reject(new Error("closed"));
      pending.clear();
      await conn.close();
    },
  };
});

await adminCh.deleteQueue(queue);
await admin.close();

const out = [
  `Client memory with ${N} calls in flight (queue without a consumer; +200 warm-up calls also pending). Heap after forced GC. Node ${process.version}.`,
  "",
  "| client | pending | heap before | heap with calls pending | RSS before | RSS with calls pending | heap bytes / pending call | RSS bytes / pending call |",
  "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ...rows,
].join("\n");
console.log(out);
