/**
 * What telemetry costs a call: warren without telemetry (`off`), with the
 * connection's default and `@opentelemetry/api` but no SDK (`default`: installs
 * nothing, an A/A control), with the telemetry interceptors installed
 * explicitly and no SDK (`api`), and with the SDK recording every span into an
 * exporter that drops it (`sdk`); see bench/lib/otel-variants.ts. Against the
 * local RabbitMQ, after an in-memory part that isolates warren's own CPU.
 *
 *   npm run bench:otel [-- options]
 *   options: --reps 5 --duration 3000 --slices 6 --warmup 100 --jit-warmup 1500
 *            --cells small-c1,small-c16 --out bench/results/otel
 *
 * Each variant's server runs in its own child process; the three clients live
 * in this process, one running at a time. Within a repetition each cell's
 * window is cut in `slices` slices run A B C D A B C D …, the order rotating and reversing per
 * repetition (A B C D, D C B A, B C D A, …), so the variants are measured close
 * together in time on this shared machine. Reported: medians over
 * repetitions with their min–max, each variant's calls/s as a ratio of `off`'s
 * in the same repetition, and CPU per call of client and server.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import amqp from "amqplib";
import { runCell } from "./lib/driver.js";
import { childCpuMicros, selfCpuMicros } from "./lib/cpu.js";
import { otelClient, VARIANTS, type Variant } from "./lib/otel-variants.js";
import { calculatorHandlers } from "../test/helpers/calculator-handlers.js";
import { CalculatorClient, serveCalculator } from "../generated/calculator/index.js";
import { RpcClient } from "../src/rpc/client.js";
import { RpcServer } from "../src/rpc/server.js";
import { MemoryBroker } from "../src/testing/memory-broker.js";
import { warrenTelemetry } from "../src/otel/index.js";
import { Samples, balancedOrder, median, percentile } from "./lib/stats.js";
import { stopChildren } from "./lib/child.js";
import { BENCH_URL, benchRoot, option } from "./lib/cli.js";

const { here, root, compiled } = benchRoot(import.meta.url);
const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => option(args, name, fallback);
const url = BENCH_URL;
const reps = Number(opt("reps", "5"));
const durationMs = Number(opt("duration", "3000"));
const slices = Math.max(1, Math.round(Number(opt("slices", "6"))));
const warmupMs = Number(opt("warmup", "100"));
const jitWarmupMs = Number(opt("jit-warmup", "1500"));
const out = path.resolve(root, opt("out", "bench/results/otel"));
const CELLS = [
  { id: "small-c1", label: "small, 1 in flight", concurrency: 1 },
  { id: "small-c16", label: "small, 16 in flight", concurrency: 16 },
  { id: "small-c128", label: "small, 128 in flight", concurrency: 128 },
];
const cells = CELLS.filter((c) => opt("cells", "small-c1,small-c16").split(",").includes(c.id));

const memoryReps = Number(opt("memory-reps", "7"));
const memoryOnly = args.includes("--memory-only");

/**
 * The in-memory part: client and server in this process on the in-memory broker, so a
 * call costs only warren's JavaScript (no sockets, no broker): the CPU the `api` variant
 * adds per call, measured where nothing else hides it. Only `off` and `api`: the SDK's
 * context manager, once used, slows every promise of the process, whichever variant runs.
 */
async function memoryPart(): Promise<string[]> {
  const quiet = { warn() {}, error() {} };
  const broker = new MemoryBroker();
  const t = warrenTelemetry()!;
  const make = async (variant: "off" | "api") => {
    const queue = `memory.${variant}`;
    await serveCalculator(new RpcServer(broker.connect(), { logger: quiet, interceptors: variant === "api" ? [t.server] : [] }), calculatorHandlers, { queue });
    const calc = new CalculatorClient(new RpcClient(broker.connect(), { queues: { Calculator: queue }, interceptors: variant === "api" ? [t.client] : [] }));
    return async (i: number) => {
      if ((await calc.add({ a: i, b: 1 })).sum !== i + 1) throw new Error("wrong reply");
      // The in-memory broker delivers on process.nextTick: without a turn of the loop now and then, timers (the window's end) would starve.
      if ((i & 15) === 0) await new Promise((resolve) => setImmediate(resolve));
    };
  };
  const calls = { off: await make("off"), api: await make("api") };
  for (const v of ["off", "api"] as const) await runCell(calls[v], 16, jitWarmupMs, 1);
  const rates: Record<"off" | "api", number[]> = { off: [], api: [] };
  const cpu: Record<"off" | "api", number[]> = { off: [], api: [] };
  const ratio: number[] = [];
  const cpuRatio: number[] = [];
  for (let rep = 0; rep < memoryReps; rep++) {
    const order = rep % 2 === 0 ? (["off", "api"] as const) : (["api", "off"] as const);
    const acc = { off: { calls: 0, seconds: 0, cpu: 0 }, api: { calls: 0, seconds: 0, cpu: 0 } };
    for (let s = 0; s < slices; s++) {
      for (const v of order) {
        broker.published.length = 0; // the broker keeps every publish; not what is measured
        let c0 = 0;
        const r = await runCell(calls[v], 16, warmupMs, durationMs / slices, (phase) => (phase === "start" ? (c0 = selfCpuMicros()) : (acc[v].cpu += selfCpuMicros() - c0)));
        acc[v].calls += r.calls;
        acc[v].seconds += r.seconds;
      }
    }
    for (const v of ["off", "api"] as const) {
      rates[v].push(acc[v].calls / acc[v].seconds);
      cpu[v].push(acc[v].cpu / acc[v].calls);
    }
    ratio.push(rates.api.at(-1)! / rates.off.at(-1)!);
    cpuRatio.push(cpu.api.at(-1)! / cpu.off.at(-1)!);
    console.log(`memory rep ${rep + 1}/${memoryReps}: off ${rates.off.at(-1)!.toFixed(0)}/s ${cpu.off.at(-1)!.toFixed(2)} µs CPU/call, api ${rates.api.at(-1)!.toFixed(0)}/s ${cpu.api.at(-1)!.toFixed(2)} µs CPU/call`);
  }
  const spread = (xs: number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
  const added = cpu.api.map((c, i) => c - cpu.off[i]!);
  return [
    `## In memory: client and server in one process, 16 in flight, ${memoryReps} repetitions × ${slices} slices of ${durationMs} ms, order alternating`,
    "",
    "| variant | calls/s | ÷ off (same repetition) | CPU µs per call (client + server) | ÷ off (same repetition) |",
    "| --- | --- | --- | --- | --- |",
    `| off | ${spread(rates.off, 0)} | 1 | ${spread(cpu.off, 2)} | 1 |`,
    `| api | ${spread(rates.api, 0)} | ${spread(ratio, 3)} | ${spread(cpu.api, 2)} | ${spread(cpuRatio, 3)} |`,
    "",
    `The API without an SDK adds ${spread(added, 2)} µs of CPU per call, client and server together (the interceptor machinery of RpcClient and RpcServer included).`,
    "",
  ];
}

const runId = `${Date.now().toString(36)}-${process.pid}`;
const queueOf = (v: Variant) => `bench.${runId}.otel-${v}.add`;
const children = new Map<Variant, ChildProcess>();

async function startServer(variant: Variant): Promise<void> {
  const execArgv = compiled ? [] : ["--import", "tsx"];
  const child = fork(path.join(here, `lib/otel-server-child.${compiled ? "js" : "ts"}`), [variant, url, queueOf(variant)], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.set(variant, child);
  await new Promise<void>((resolve, reject) => {
    child.once("message", (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(`${variant} server: ${m.error}`))));
    child.once("exit", (code) => reject(new Error(`${variant} server exited with code ${code}`)));
  });
}

interface Rep {
  callsPerSec: number;
  p50: number;
  p99: number;
  clientCpuPerCall: number;
  serverCpuPerCall: number;
}

const clients = new Map<Variant, Awaited<ReturnType<typeof otelClient>>>();
const results = new Map<string, Map<Variant, Rep[]>>();
const ratios = new Map<string, Map<Variant, number[]>>();

const memoryLines = await memoryPart();
if (memoryOnly) {
  console.log("\n" + memoryLines.join("\n"));
  process.exit(0);
}

try {
  for (const v of VARIANTS) await startServer(v);
  for (const v of VARIANTS) clients.set(v, await otelClient(url, v, queueOf(v)));
  // Untimed warm-up of every variant, so the JIT has compiled each before it is measured.
  for (const v of VARIANTS) await runCell(clients.get(v)!.add, 16, jitWarmupMs, 1);

  for (let rep = 0; rep < reps; rep++) {
    const order = balancedOrder(VARIANTS, rep + 1);
    for (const cell of cells) {
      const acc = new Map(VARIANTS.map((v) => [v, { calls: 0, seconds: 0, samples: new Samples(), clientCpu: 0, serverCpu: 0 }]));
      for (let s = 0; s < slices; s++) {
        for (const v of order) {
          const a = acc.get(v)!;
          let c0 = 0;
          let s0 = 0;
          const r = await runCell(clients.get(v)!.add, cell.concurrency, warmupMs, durationMs / slices, (phase) => {
            if (phase === "start") {
              c0 = selfCpuMicros();
              s0 = childCpuMicros(children.get(v)) ?? 0;
            } else {
              a.clientCpu += selfCpuMicros() - c0;
              a.serverCpu += (childCpuMicros(children.get(v)) ?? 0) - s0;
            }
          }, a.samples);
          a.calls += r.calls;
          a.seconds += r.seconds;
        }
      }
      const byVariant = results.get(cell.id) ?? new Map<Variant, Rep[]>();
      results.set(cell.id, byVariant);
      for (const v of VARIANTS) {
        const a = acc.get(v)!;
        const sorted = a.samples.sorted();
        const repResult: Rep = { callsPerSec: a.calls / a.seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), clientCpuPerCall: a.clientCpu / a.calls, serverCpuPerCall: a.serverCpu / a.calls };
        byVariant.set(v, [...(byVariant.get(v) ?? []), repResult]);
      }
      const offRate = byVariant.get("off")!.at(-1)!.callsPerSec;
      const r = ratios.get(cell.id) ?? new Map<Variant, number[]>();
      ratios.set(cell.id, r);
      for (const v of VARIANTS) r.set(v, [...(r.get(v) ?? []), byVariant.get(v)!.at(-1)!.callsPerSec / offRate]);
      console.log(`rep ${rep + 1}/${reps} ${cell.label}: ${VARIANTS.map((v) => `${v} ${byVariant.get(v)!.at(-1)!.callsPerSec.toFixed(0)}/s`).join(", ")}`);
    }
  }

  const spread = (xs: number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
  const lines = [
    `# warren telemetry overhead (\`npm run bench:otel\`)`,
    "",
    `${new Date().toISOString()}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), node ${process.version}; ${reps} repetitions × ${slices} slices of ${durationMs} ms per cell, order rotating and reversing; medians (min–max over repetitions).`,
    "",
    ...memoryLines,
    `## Over RabbitMQ: each variant's server in its own process, its client in this one`,
    "",
    "| cell | variant | calls/s | ÷ off (same repetition) | p50 ms | p99 ms | client CPU µs/call | server CPU µs/call |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const cell of cells) {
    for (const v of VARIANTS) {
      const rs = results.get(cell.id)!.get(v)!;
      lines.push(
        `| ${cell.label} | ${v} | ${spread(rs.map((r) => r.callsPerSec), 0)} | ${spread(ratios.get(cell.id)!.get(v)!, 3)} | ${spread(rs.map((r) => r.p50), 3)} | ${spread(rs.map((r) => r.p99), 3)} | ${spread(rs.map((r) => r.clientCpuPerCall), 1)} | ${spread(rs.map((r) => r.serverCpuPerCall), 1)} |`,
      );
    }
  }
  const text = lines.join("\n") + "\n";
  console.log("\n" + text);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(`${out}.md`, text);
  await writeFile(`${out}.json`, JSON.stringify({ reps, slices, durationMs, results: Object.fromEntries([...results].map(([k, m]) => [k, Object.fromEntries(m)])), ratios: Object.fromEntries([...ratios].map(([k, m]) => [k, Object.fromEntries(m)])) }, null, 2));
} finally {
  await Promise.all([...clients.values()].map((c) => c.close().catch(() => {})));
  await stopChildren(children.values());
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  for (const v of VARIANTS) await ch.deleteQueue(queueOf(v)).catch(() => {});
  await conn.close();
}
