/**
 * A Calculator server in its own process, for scale-out and fault tests.
 * Usage: node --import tsx test/helpers/calc-server.ts <queue> [prefetch] [delayMs]
 * Prints `ready` once consuming and `handling <a>` per add call; on SIGTERM stops
 * gracefully and prints `served <n> redelivered <m>`.
 */
import { serveCalculator } from "../../generated/calculator/index.js";
import { calculatorHandlers } from "./calculator-handlers.js";
import { connect } from "../../src/index.js";

const [queue, prefetch = "8", delayMs = "0"] = process.argv.slice(2);
if (!queue) throw new Error("usage: calc-server.ts <queue> [prefetch] [delayMs]");
const delay = Number(delayMs);
let served = 0;
let redelivered = 0;
const conn = await connect();
const server = conn.server({ prefetch: Number(prefetch) });
await serveCalculator(server, {
  ...calculatorHandlers,
  add: async ({ a, b }, ctx) => {
    if (ctx.redelivered) redelivered++;
    process.stdout.write(`handling ${a}\n`);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    served++;
    return { sum: a + b };
  },
}, { queue });
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  void server.close().then(async () => {
    process.stdout.write(`served ${served} redelivered ${redelivered}\n`);
    await conn.close();
    process.exit(0);
  });
});
