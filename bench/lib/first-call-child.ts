/**
 * Child-process entry for the first-call measurement: a fresh process (no
 * validator compiled, nothing JIT-warmed) connects, creates a generated
 * Calculator client, makes its first call, then warm calls, and reports:
 *   ctorMs   creating the generated client (warren compiles validators here)
 *   firstMs  the first call, from the call to its result
 *   warmMs   median of the next 200 sequential calls
 *   argv: <url> <addQueue>
 */
import { performance } from "node:perf_hooks";
import { CalculatorClient } from "../../generated/calculator/index.js";
import { connect } from "../../src/index.js";
import { median } from "./stats.js";

const [url, add] = process.argv.slice(2) as [string, string];
const conn = await connect(url, { name: "bench-first-call", logger: { warn() {}, error() {} } });
const transport = await conn.client({ queues: { Calculator: add } });
const t0 = performance.now();
const calc = new CalculatorClient(transport);
const ctorMs = performance.now() - t0;
const t1 = performance.now();
await calc.add({ a: 1, b: 2 });
const firstMs = performance.now() - t1;
const warm: number[] = [];
for (let i = 0; i < 200; i++) {
  const t = performance.now();
  await calc.add({ a: i, b: 1 });
  warm.push(performance.now() - t);
}
await transport.close();
await conn.close();
process.send!({ ctorMs, firstMs, warmMs: median(warm) });
process.disconnect?.();
