/**
 * Leak check for calls that time out: 100,000 calls to a durable queue nobody
 * consumes, each with a short timeout, fired in batches of concurrent calls.
 * Afterwards no call may still be pending and, after a forced GC, the heap must
 * be back near its baseline.
 *
 *   npm run bench:leaks -- [calls=100000] [batch=10000] [timeoutMs=50]
 *
 * Exits 1 if `client.pendingCount !== 0`, if any call settled with a code other
 * than `timeout`, or if the final heap exceeds the baseline by more than 10 MB.
 */
import { connect, type RpcError } from "../src/index.js";
import { CalculatorClient } from "../generated/calculator/index.js";

const TOTAL = Number(process.argv[2] ?? 100_000);
const BATCH = Number(process.argv[3] ?? 10_000);
const TIMEOUT_MS = Number(process.argv[4] ?? 50);
const LIMIT_MB = 10;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with: npm run bench:leaks");

const MB = (b: number) => b / 1048576;
const fmt = (b: number) => `${MB(b).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function settled(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 4; i++) {
    await sleep(50);
    gc!();
  }
  return process.memoryUsage();
}

const queue = `bench.leaks.${Date.now().toString(36)}-${process.pid}`;
const conn = await connect(undefined, { name: "warren-bench-leaks" });
const admin = await conn.channel();
await admin.assertQueue(queue, { durable: true }); // exists, so requests route (no no_server), but nobody consumes
const client = await conn.client({ queues: { Calculator: queue } });
const calc = new CalculatorClient(client);

const codes = new Map<string, number>();
let peakHeap = 0;
let peakRss = 0;
const sample = () => {
  const m = process.memoryUsage();
  peakHeap = Math.max(peakHeap, m.heapUsed);
  peakRss = Math.max(peakRss, m.rss);
};

async function batch(n: number, offset: number): Promise<void> {
  const calls: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    calls.push(
      calc.add({ a: offset + i, b: 1 }, { timeoutMs: TIMEOUT_MS }).then(
        () => void codes.set("ok", (codes.get("ok") ?? 0) + 1),
        (err: RpcError) => void codes.set(String(err.code), (codes.get(String(err.code)) ?? 0) + 1),
      ),
    );
  }
  sample(); // all of the batch pending
  await Promise.all(calls);
  sample();
}

try {
  // Warm-up: compile the code paths and the schemas, so they are not counted as leaked.
  await batch(1000, -1000);
  codes.clear();
  await admin.purgeQueue(queue);
  const base = await settled();
  peakHeap = base.heapUsed;
  peakRss = base.rss;

  const started = performance.now();
  for (let done = 0; done < TOTAL; done += BATCH) await batch(Math.min(BATCH, TOTAL - done), done);
  const seconds = (performance.now() - started) / 1000;
  const pending = client.pendingCount;
  await admin.purgeQueue(queue); // the requests left (expired ones are dropped by the broker)
  const end = await settled();

  const heapDelta = end.heapUsed - base.heapUsed;
  console.log(`calls: ${TOTAL} in batches of ${BATCH}, timeoutMs ${TIMEOUT_MS}, ${seconds.toFixed(1)} s`);
  console.log(`outcomes: ${JSON.stringify(Object.fromEntries(codes))}`);
  console.log(`pendingCount after: ${pending}`);
  console.log(`heapUsed  baseline ${fmt(base.heapUsed)}  peak ${fmt(peakHeap)}  final ${fmt(end.heapUsed)}  delta ${heapDelta >= 0 ? "+" : ""}${MB(heapDelta).toFixed(2)} MB`);
  console.log(`rss       baseline ${fmt(base.rss)}  peak ${fmt(peakRss)}  final ${fmt(end.rss)}  delta ${end.rss - base.rss >= 0 ? "+" : ""}${MB(end.rss - base.rss).toFixed(2)} MB`);

  const failures: string[] = [];
  if (pending !== 0) failures.push(`${pending} calls still pending`);
  if ((codes.get("timeout") ?? 0) !== TOTAL) failures.push(`expected ${TOTAL} timeouts, got ${JSON.stringify(Object.fromEntries(codes))}`);
  if (heapDelta > LIMIT_MB * 1048576) failures.push(`final heap is ${MB(heapDelta).toFixed(1)} MB above the baseline (limit ${LIMIT_MB} MB)`);
  if (failures.length > 0) {
    console.error(`FAIL: ${failures.join("; ")}`);
    process.exitCode = 1;
  } else {
    console.log("PASS");
  }
} finally {
  await admin.deleteQueue(queue).catch(() => {});
  await client.close();
  await conn.close();
}
