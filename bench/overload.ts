/**
 * Overload: a burst of 50,000 Calculator.add calls fired at once at a real
 * server in the same process (its own connection, prefetch 64). Every call must
 * come back with the right sum: none lost, none wrong. Prints calls/s and the
 * peak heap and RSS.
 *
 *   npm run bench:overload -- [calls=50000] [prefetch=64]
 *
 * Exits 1 on any lost (rejected) or incorrect call, or a call still pending.
 */
import { connect, type RpcError } from "../src/index.js";
import { CalculatorClient, serveCalculator } from "../generated/calculator/index.js";
import { calculatorHandlers } from "../examples/services/calculator.js";

const N = Number(process.argv[2] ?? 50_000);
const PREFETCH = Number(process.argv[3] ?? 64);
const TIMEOUT_MS = 120_000; // generous: this measures loss under overload, not latency
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with: npm run bench:overload");

const fmt = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const queue = `bench.overload.${Date.now().toString(36)}-${process.pid}`;
const serverConn = await connect(undefined, { name: "warren-bench-overload-server" });
const server = serverConn.server({ prefetch: PREFETCH });
let handled = 0;
await serveCalculator(server, { ...calculatorHandlers, add: ({ a, b }) => (handled++, { sum: a + b }) }, { queue });
const conn = await connect(undefined, { name: "warren-bench-overload-client" });
const client = await conn.client({ queues: { Calculator: queue } });
const calc = new CalculatorClient(client);

// Warm-up, then the baseline after a forced GC.
await Promise.all(Array.from({ length: 500 }, (_, i) => calc.add({ a: i, b: 1 }, { timeoutMs: TIMEOUT_MS })));
for (let i = 0; i < 3; i++) {
  await sleep(50);
  gc();
}
const base = process.memoryUsage();
let peakHeap = base.heapUsed;
let peakRss = base.rss;
const sample = () => {
  const m = process.memoryUsage();
  if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
  if (m.rss > peakRss) peakRss = m.rss;
};
const sampler = setInterval(sample, 10);

let correct = 0;
let incorrect = 0;
const lost = new Map<string, number>();
let maxPending = 0;
const started = performance.now();
const calls: Promise<void>[] = [];
for (let i = 0; i < N; i++) {
  const a = i;
  const b = i * 2 + 0.5;
  calls.push(
    calc.add({ a, b }, { timeoutMs: TIMEOUT_MS }).then(
      (r) => void (r.sum === a + b ? correct++ : incorrect++),
      (err: RpcError) => void lost.set(String(err.code), (lost.get(String(err.code)) ?? 0) + 1),
    ),
  );
}
maxPending = client.pendingCount;
sample();
await Promise.all(calls);
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
sample();
const pendingAfter = client.pendingCount;
const lostTotal = [...lost.values()].reduce((s, n) => s + n, 0);

console.log(`burst: ${N} calls at once, server prefetch ${PREFETCH}, same process`);
console.log(`done in ${seconds.toFixed(2)} s = ${Math.round(N / seconds)} calls/s; pending right after firing ${maxPending}, after ${pendingAfter}`);
console.log(`correct ${correct}  incorrect ${incorrect}  lost ${lostTotal}${lostTotal ? ` ${JSON.stringify(Object.fromEntries(lost))}` : ""}  handled by server ${handled - 500}`);
console.log(`heapUsed  baseline ${fmt(base.heapUsed)}  peak ${fmt(peakHeap)}`);
console.log(`rss       baseline ${fmt(base.rss)}  peak ${fmt(peakRss)} (sampled every 10 ms; getrusage maxRSS ${fmt(process.resourceUsage().maxRSS * 1024)})`);

await client.close();
await server.close();
const ch = await serverConn.channel();
await ch.deleteQueue(queue).catch(() => {});
await conn.close();
await serverConn.close();

if (incorrect > 0 || lostTotal > 0 || correct !== N || pendingAfter !== 0) {
  console.error(`FAIL: ${incorrect} incorrect, ${lostTotal} lost, ${N - correct - incorrect - lostTotal} unaccounted, ${pendingAfter} pending`);
  process.exitCode = 1;
} else {
  console.log("PASS");
}
