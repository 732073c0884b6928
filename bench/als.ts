/**
 * What `asyncContext: true` costs (a server that runs each handler in an
 * AsyncLocalStorage, so that nested calls inherit its deadline without
 * `parent: ctx`). Once an AsyncLocalStorage is entered, Node 20 tracks every
 * promise of the process, so the cost falls on all code, not just warren's.
 *
 * Two measures, each in a fresh child process per run (the tracking cannot be
 * switched off again within a process), modes interleaved off/on/off/on…:
 *
 * 1. `loop`: 300,000 async handler runs (128 at a time) and 200,000 awaits,
 *    with and without each handler run inside `AsyncLocalStorage.run`.
 * 2. `rpc`: whole calls (generated client + server, full validation, 64 in
 *    flight) over an in-memory fake channel (no amqplib, no broker), on a
 *    server with `asyncContext` false and true: the JS warren adds per call.
 *
 *   npm run bench:als [-- --reps 7]
 */
import { fork } from "node:child_process";
import { AsyncLocalStorage } from "node:async_hooks";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { CalculatorClient, serveCalculator } from "../generated/calculator/index.js";
import { RpcClient } from "../src/rpc/client.js";
import { RpcServer } from "../src/rpc/server.js";
import { fakeConnection } from "./lib/fake-channel.js";
import { median } from "./lib/stats.js";
import { benchCalculator } from "./lib/calculator.js";

type Measure = "loop" | "rpc";
type Mode = "off" | "on";

async function loop(mode: Mode): Promise<number> {
  const als = new AsyncLocalStorage<{ deadline: number }>();
  const handler = async (x: number) => {
    await null;
    return x + 1;
  };
  const t0 = performance.now();
  const batch: Promise<number>[] = [];
  for (let i = 0; i < 300_000; i++) {
    batch.push(mode === "on" ? als.run({ deadline: i }, handler, i) : handler(i));
    if (batch.length === 128) {
      await Promise.all(batch);
      batch.length = 0;
    }
  }
  await Promise.all(batch);
  let sum = 0;
  for (let i = 0; i < 200_000; i++) sum += await Promise.resolve(i);
  if (sum < 0) throw new Error("unreachable");
  return performance.now() - t0;
}

async function rpc(mode: Mode): Promise<number> {
  const server = new RpcServer(fakeConnection, { prefetch: 64, asyncContext: mode === "on", logger: console });
  await serveCalculator(
    server,
    { ...benchCalculator, add: async ({ a, b }) => ({ sum: a + b }) }, // async: the promises AsyncLocalStorage tracks
    { queue: "q.als" },
  );
  const transport = new RpcClient(fakeConnection, { queues: { Calculator: "q.als" }, waitForServer: true });
  await transport.ready();
  const calc = new CalculatorClient(transport);
  const run = async (n: number) => {
    const inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      inFlight.push(calc.add({ a: i, b: 1 }));
      if (inFlight.length === 64) {
        await Promise.all(inFlight);
        inFlight.length = 0;
      }
    }
    await Promise.all(inFlight);
  };
  await run(20_000); // warm-up
  const t0 = performance.now();
  await run(100_000);
  const ms = performance.now() - t0;
  await transport.close();
  return ms;
}

if (process.argv[2] === "child") {
  const [measure, mode] = [process.argv[3] as Measure, process.argv[4] as Mode];
  const ms = measure === "loop" ? await loop(mode) : await rpc(mode);
  process.send!({ ms });
  process.exit(0);
} else {
  const at = process.argv.indexOf("--reps");
  const reps = at > 0 ? Number(process.argv[at + 1]) : 7;
  const self = fileURLToPath(import.meta.url);
  const once = (measure: Measure, mode: Mode) =>
    new Promise<number>((resolve, reject) => {
      const child = fork(self, ["child", measure, mode], { stdio: "inherit" });
      child.once("message", (m: { ms: number }) => resolve(m.ms));
      child.once("exit", (code) => (code === 0 ? undefined : reject(new Error(`child exited ${code}`))));
    });
  console.log(`asyncContext cost, Node ${process.version}, ${reps} runs per mode, each in a fresh process, modes interleaved\n`);
  for (const measure of ["loop", "rpc"] as const) {
    const times: Record<Mode, number[]> = { off: [], on: [] };
    for (let r = 0; r < reps; r++) for (const mode of (r % 2 === 0 ? ["off", "on"] : ["on", "off"]) as Mode[]) times[mode].push(await once(measure, mode));
    const what = measure === "loop" ? "300k async handler runs + 200k awaits" : "100k calls, 64 in flight, fake channel";
    for (const mode of ["off", "on"] as const) {
      const sorted = [...times[mode]].sort((a, b) => a - b);
      console.log(`  ${measure} ${mode.padEnd(3)} (${what}): median ${median(sorted).toFixed(0)} ms, range ${sorted[0]!.toFixed(0)}–${sorted.at(-1)!.toFixed(0)} ms`);
    }
    console.log(`  => ${measure}: on/off = ${(median(times.on) / median(times.off)).toFixed(2)}x\n`);
  }
}
