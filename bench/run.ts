/**
 * End-to-end RPC benchmark against a local RabbitMQ:
 * hand-written amqplib baseline vs warren vs rabbitmq-client.
 *
 *   npm run bench [-- options]      (compiles with tsc into dist-bench/, then runs
 *                                    node dist-bench/bench/run.js: the JS users run)
 *   npx tsx bench/run.ts [options]  (same, through tsx: its keepNames helper costs
 *                                    every closure, so numbers are lower)
 *   options: --reps 3 --warmup 500 --duration 3000 --slices 6 --jit-warmup 2000 --impls baseline,warren,rmqc
 *            --inproc (servers in this process) --cpu-prof-dir DIR (profile the server children)
 *            --out bench/results/latest (writes .md and .json)
 *
 * Each implementation's server runs in its own child process (one per
 * implementation), so clients and servers do not share an event loop; all
 * clients live in this process. Cells run interleaved: for each repetition,
 * for each cell, the window (warm-up and measurement) is cut in `slices`
 * slices, and every implementation runs one slice in turn, A B C A B C …, the
 * order rotating and reversing per repetition (A B C, C B A, B C A, …; each
 * implementation follows each other equally often). A repetition's
 * result for an implementation merges its slices. Reported
 * numbers are medians over repetitions. Every reply is checked; a wrong reply
 * aborts the run.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import amqp from "amqplib";
import { runCell, type CellResult } from "./lib/driver.js";
import { CLIENTS, IMPL_LABEL, PREFETCH, SERVERS, loadRabbitmqClient, type BenchClientImpl, type BenchServerImpl, type ImplName, type Queues } from "./lib/impls.js";
import { ECHO_BYTES, addRequest, checkAdd, checkEcho, echoRequest } from "./lib/payload.js";
import { Samples, balancedOrder, median, percentile } from "./lib/stats.js";
import { brokerPid, childCpuMicros, procCpuMicros, selfCpuMicros } from "./lib/cpu.js";
import { stopChildren } from "./lib/child.js";
import { brokerVersion, pkgVersion } from "./lib/versions.js";
import { BENCH_URL, benchRoot, option } from "./lib/cli.js";

/** `compiled`: running the tsc output in dist-bench/ rather than the sources through tsx. */
const { here, root, compiled } = benchRoot(import.meta.url);

// ------------------------------------------------------------------ options
const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => option(args, name, fallback);
const url = BENCH_URL;
const reps = Number(opt("reps", "3"));
const warmupMs = Number(opt("warmup", "500"));
const durationMs = Number(opt("duration", "3000"));
/** Each cell's window is cut in this many slices, run A B C A B C …: implementations are measured close together in time. */
const slices = Math.max(1, Math.round(Number(opt("slices", "6"))));
const jitWarmupMs = Number(opt("jit-warmup", "2000"));
const inproc = args.includes("--inproc");
const cpuProfDir = args.includes("--cpu-prof-dir") ? path.resolve(opt("cpu-prof-dir", "")) : undefined;
const out = path.resolve(root, opt("out", "bench/results/latest"));
let impls = opt("impls", "baseline,warren,rmqc").split(",") as ImplName[];

interface Cell {
  id: string;
  label: string;
  payload: "small" | "4KB";
  concurrency: number;
}
const CELLS: Cell[] = [
  { id: "small-c1", label: "small, 1 in flight", payload: "small", concurrency: 1 },
  { id: "small-c16", label: "small, 16 in flight", payload: "small", concurrency: 16 },
  { id: "small-c128", label: "small, 128 in flight", payload: "small", concurrency: 128 },
  { id: "4KB-c16", label: `${(ECHO_BYTES / 1024).toFixed(1)} KB, 16 in flight`, payload: "4KB", concurrency: 16 },
];
const cellFilter = opt("cells", "");
const cells = cellFilter ? CELLS.filter((c) => cellFilter.split(",").includes(c.id)) : CELLS;

const rmqc = impls.includes("rmqc") ? await loadRabbitmqClient() : undefined;
if (impls.includes("rmqc") && rmqc === undefined) {
  console.log("rabbitmq-client not installed, column skipped");
  impls = impls.filter((i) => i !== "rmqc");
}

// ------------------------------------------------------------------ setup
const runId = `${Date.now().toString(36)}-${process.pid}`;
const queues = Object.fromEntries(impls.map((i) => [i, { add: `bench.${runId}.${i}.add`, echo: `bench.${runId}.${i}.echo` }])) as Record<ImplName, Queues>;
const children: ChildProcess[] = [];
const childOf: Partial<Record<ImplName, ChildProcess>> = {};
const beam = brokerPid();
const inprocServers: BenchServerImpl[] = [];
const clients = {} as Record<ImplName, BenchClientImpl>;

async function startServer(impl: ImplName): Promise<void> {
  const q = queues[impl];
  if (inproc) {
    inprocServers.push(await SERVERS[impl](url, q));
    return;
  }
  const execArgv = [...(compiled ? [] : ["--import", "tsx"]), ...(cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", cpuProfDir, "--cpu-prof-name", `server-${impl}.cpuprofile`] : [])];
  const child = fork(path.join(here, `lib/server-child.${compiled ? "js" : "ts"}`), [impl, url, q.add, q.echo], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.push(child);
  childOf[impl] = child;
  await new Promise<void>((resolve, reject) => {
    child.once("message", (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(`${impl} server: ${m.error}`))));
    child.once("exit", (code) => reject(new Error(`${impl} server exited with code ${code}`)));
  });
}

async function cleanup(): Promise<void> {
  await Promise.all(Object.values(clients).map((c) => c.close().catch(() => {})));
  await Promise.all(inprocServers.map((s) => s.close().catch(() => {})));
  await stopChildren(children);
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  for (const q of Object.values(queues)) for (const name of [q.add, q.echo]) await ch.deleteQueue(name).catch(() => {});
  await conn.close();
}

// ------------------------------------------------------------------ run
/** One checked call of `impl` with `payload`: a wrong reply throws and aborts the run. */
function callFor(impl: ImplName, payload: Cell["payload"]): (i: number) => Promise<void> {
  const client = clients[impl];
  return payload === "small"
    ? async (i) => {
        const req = addRequest(i);
        checkAdd(req, await client.add(req));
      }
    : async (i) => {
        const req = echoRequest(i);
        checkEcho(req, await client.echo(req));
      };
}

type Cpu = { client?: number | undefined; server?: number | undefined; broker?: number | undefined }; // µs of CPU per call
type Measured = CellResult & { cpuPerCall: Cpu };
type Raw = Record<string, Record<string, Measured[]>>; // cell id -> impl -> per repetition
const raw: Raw = Object.fromEntries(cells.map((c) => [c.id, Object.fromEntries(impls.map((i) => [i, [] as Measured[]]))]));

/** First call of a fresh process vs its warm calls, one process per run: see lib/first-call-child.ts. */
interface FirstCall {
  ctorMs: number;
  firstMs: number;
  warmMs: number;
}
let firstCalls: Record<"warren" | "amqplib", FirstCall[]> | undefined;
const FIRST_CALL_RUNS = 5;

/** Fresh processes calling warren's server, warren's client and a hand-written amqplib one alternating. */
async function measureFirstCalls(): Promise<Record<"warren" | "amqplib", FirstCall[]>> {
  const runs: Record<"warren" | "amqplib", FirstCall[]> = { warren: [], amqplib: [] };
  for (let i = 0; i < FIRST_CALL_RUNS; i++) {
    for (const impl of ["amqplib", "warren"] as const) {
      const child = fork(path.join(here, `lib/first-call-child.${compiled ? "js" : "ts"}`), [url, queues.warren.add, impl], {
        execArgv: compiled ? [] : ["--import", "tsx"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      const r = await new Promise<FirstCall>((resolve, reject) => {
        child.once("message", (m: FirstCall) => resolve(m));
        child.once("exit", (code) => reject(new Error(`first-call child exited with code ${code}`)));
      });
      runs[impl].push(r);
      console.log(`first call ${i + 1} ${impl.padEnd(7)}: client created in ${r.ctorMs.toFixed(1)} ms, first call ${r.firstMs.toFixed(2)} ms, warm p50 ${r.warmMs.toFixed(3)} ms`);
    }
  }
  return runs;
}

const started = Date.now();
const broker = await brokerVersion(url);
let failed = false;
const onSignal = () => {
  console.error("interrupted; cleaning up");
  void cleanup().finally(() => process.exit(130));
};
process.once("SIGINT", onSignal);
process.once("SIGTERM", onSignal);
try {
  for (const impl of impls) await startServer(impl);
  for (const impl of impls) clients[impl] = await CLIENTS[impl](url, queues[impl]);
  console.log(
    `servers: ${inproc ? "in this process (client and server share one event loop)" : "one child process per implementation"}; ` +
      `${reps} reps x ${cells.length} cells x ${impls.length} impls, ${warmupMs} ms warm-up + ${durationMs} ms each, in ${slices} slices`,
  );
  // Untimed JIT warm-up: every implementation runs each payload for a while before anything is
  // measured, so the first measured cell of an implementation does not pay for compiling its code.
  if (jitWarmupMs > 0) {
    for (const impl of impls) {
      await runCell(callFor(impl, "small"), 16, 0, jitWarmupMs);
      await runCell(callFor(impl, "small"), 1, 0, jitWarmupMs / 2);
      await runCell(callFor(impl, "4KB"), 16, 0, jitWarmupMs / 2);
    }
  }
  for (let rep = 1; rep <= reps; rep++) {
    // Rotated and reversed per repetition (A B C, C B A, B C A, …), so none always runs first or after the same one.
    const order = balancedOrder(impls, rep);
    for (const cell of cells) {
      // The cell's window in slices, implementations alternating within the repetition's order:
      // what drifts on a shared machine (process placement, the broker's state) hits all of them alike.
      const acc = new Map(order.map((impl) => [impl, { calls: 0, seconds: 0, samples: new Samples(), cpu: { client: 0, server: 0, broker: 0 } as Record<keyof Cpu, number>, cpuSeen: { client: true, server: true, broker: true } }]));
      for (let slice = 0; slice < slices; slice++) {
        for (const impl of order) {
          const a = acc.get(impl)!;
          const before: Cpu = {};
          const after: Cpu = {};
          const sample = (into: Cpu) => {
            into.client = selfCpuMicros();
            into.server = childCpuMicros(childOf[impl]);
            into.broker = beam === undefined ? undefined : procCpuMicros(beam);
          };
          const r = await runCell(callFor(impl, cell.payload), cell.concurrency, warmupMs / slices, durationMs / slices, (phase) => sample(phase === "start" ? before : after), a.samples);
          a.calls += r.calls;
          a.seconds += r.seconds;
          for (const k of ["client", "server", "broker"] as const) {
            if (before[k] === undefined || after[k] === undefined) a.cpuSeen[k] = false;
            else a.cpu[k] += after[k]! - before[k]!;
          }
        }
      }
      for (const impl of order) {
        const a = acc.get(impl)!;
        const sorted = a.samples.sorted();
        const per = (k: keyof Cpu) => (a.cpuSeen[k] ? a.cpu[k] / a.calls : undefined);
        const m: Measured = {
          calls: a.calls,
          seconds: a.seconds,
          callsPerSec: a.calls / a.seconds,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          cpuPerCall: { client: per("client"), server: per("server"), broker: per("broker") },
        };
        raw[cell.id]![impl]!.push(m);
        console.log(
          `rep ${rep}  ${cell.id.padEnd(11)} ${impl.padEnd(9)} ${m.callsPerSec.toFixed(0).padStart(7)} calls/s  p50 ${m.p50.toFixed(3)} ms  p99 ${m.p99.toFixed(3)} ms`,
        );
      }
    }
  }
  if (impls.includes("warren")) firstCalls = await measureFirstCalls();
} catch (err) {
  failed = true;
  console.error(`benchmark aborted: ${(err as Error).stack ?? err}`);
} finally {
  process.removeListener("SIGINT", onSignal);
  process.removeListener("SIGTERM", onSignal);
  await cleanup();
}
if (failed) process.exit(1);

// ------------------------------------------------------------------ report
const summary = cells.map((cell) => {
  const byImpl = Object.fromEntries(
    impls.map((impl) => {
      const rs = raw[cell.id]![impl]!;
      const cpu = (k: keyof Cpu) => median(rs.map((r) => r.cpuPerCall[k] ?? NaN));
      return [
        impl,
        {
          callsPerSec: median(rs.map((r) => r.callsPerSec)),
          p50: median(rs.map((r) => r.p50)),
          p99: median(rs.map((r) => r.p99)),
          cpuPerCall: { client: cpu("client"), server: cpu("server"), broker: cpu("broker") },
        },
      ];
    }),
  ) as Record<ImplName, { callsPerSec: number; p50: number; p99: number; cpuPerCall: Required<Cpu> }>;
  const b = byImpl.baseline;
  const w = byImpl.warren;
  const ratio = b && w ? { callsPerSec: w.callsPerSec / b.callsPerSec, p50: w.p50 / b.p50, p99: w.p99 / b.p99 } : undefined;
  return { cell, byImpl, ratio };
});

const env = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}`,
  broker,
  amqplib: await pkgVersion(root, "amqplib"),
  ajv: await pkgVersion(root, "ajv"),
  rabbitmqClient: await pkgVersion(root, "rabbitmq-client"),
  servers: inproc ? "same process as the clients (shared event loop)" : "one child process per implementation; clients in the parent",
  reps,
  warmupMs,
  durationMs,
  prefetch: PREFETCH,
  echoBytes: ECHO_BYTES,
  wallSeconds: Math.round((Date.now() - started) / 1000),
  firstCalls,
};

const f0 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(0));
const f2 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(2));
const f3 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(3));
const lines: string[] = [];
lines.push("# warren RPC benchmark", "");
lines.push(`Command: \`${compiled ? "npm run bench --" : "npx tsx bench/run.ts"} ${args.join(" ")}\`${compiled ? " (tsc output, plain node)" : " (through tsx)"}  `.replace(/ +`/, "`").replace(/ --`/, "`"));
lines.push(`${env.date}; Node ${env.node}; ${env.cpus}; ${env.broker}; amqplib ${env.amqplib}; ajv ${env.ajv}; rabbitmq-client ${env.rabbitmqClient}.  `);
lines.push(
  `Servers: ${env.servers}. Broker, servers and clients share the machine. ${reps} repetitions, the order rotating and reversing per repetition (A B C, C B A, B C A, …: each follows each other equally often); ` +
    `untimed JIT warm-up of ${jitWarmupMs * 2} ms per implementation first; ${warmupMs} ms warm-up + ${durationMs} ms measured per cell and implementation, in ${slices} slices interleaved A B C A B C …; medians over repetitions. Prefetch ${PREFETCH}; small = \`add({a,b}) -> {sum}\`; ` +
    `4 KB = \`Bench.echo\` (${ECHO_BYTES} B JSON each way). Latencies in ms. Total wall time ${env.wallSeconds} s.`,
  "",
);
const head = ["cell", ...impls.flatMap((i) => [`${IMPL_LABEL[i]} calls/s`, "p50", "p99"])];
if (impls.includes("baseline") && impls.includes("warren")) head.push("warren ÷ baseline calls/s", "p50 ratio", "p99 ratio");
lines.push(`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`);
for (const s of summary) {
  const row = [s.cell.label, ...impls.flatMap((i) => [f0(s.byImpl[i].callsPerSec), f3(s.byImpl[i].p50), f3(s.byImpl[i].p99)])];
  if (s.ratio) row.push(f2(s.ratio.callsPerSec), f2(s.ratio.p50), f2(s.ratio.p99));
  lines.push(`| ${row.join(" | ")} |`);
}
if (impls.includes("baseline") && impls.includes("warren")) {
  const tputOk = summary.every((s) => s.ratio!.callsPerSec >= 0.95);
  const c1 = summary.find((s) => s.cell.id === "small-c1");
  const latOk = c1 === undefined || c1.ratio!.p50 <= 1.1;
  lines.push("", `Targets: warren ≥ 0.95× baseline calls/s in every cell: **${tputOk ? "met" : "missed"}**; p50 at concurrency 1 ≤ 1.1× baseline: **${c1 ? (latOk ? "met" : "missed") : "not measured"}**.`);
}
lines.push(
  "",
  `CPU time per call (µs, user+system, measured window only; median over repetitions)${inproc ? "; client column includes the in-process server" : ""}. ` +
    "The 2 cores are shared by broker, server and client, so CPU spent per call by any of them lowers everyone's throughput.",
  "",
);
const cpuHead = ["cell", ...impls.flatMap((i) => [`${IMPL_LABEL[i]} client`, "server", "broker"])];
lines.push(`| ${cpuHead.join(" | ")} |`, `|${cpuHead.map(() => " --- ").join("|")}|`);
for (const s of summary) {
  lines.push(`| ${[s.cell.label, ...impls.flatMap((i) => [f0(s.byImpl[i].cpuPerCall.client), f0(s.byImpl[i].cpuPerCall.server), f0(s.byImpl[i].cpuPerCall.broker)])].join(" | ")} |`);
}
if (firstCalls !== undefined) {
  const m = (impl: "warren" | "amqplib", k: keyof FirstCall) => median(firstCalls![impl].map((r) => r[k]));
  lines.push(
    "",
    `First call of a fresh process to warren's Calculator server (${FIRST_CALL_RUNS} processes each, alternating; medians, ms):`,
    "",
    "| client | creating the client | first call | warm call p50 | first ÷ warm |",
    "| --- | --- | --- | --- | --- |",
    ...(["amqplib", "warren"] as const).map((impl) => `| ${impl === "warren" ? "warren (validators compiled when the generated client is created)" : "hand-written amqplib"} | ${f2(m(impl, "ctorMs"))} | ${f3(m(impl, "firstMs"))} | ${f3(m(impl, "warmMs"))} | ${f2(m(impl, "firstMs") / m(impl, "warmMs"))}x |`),
  );
}
lines.push("", "Per repetition (calls/s):", "");
for (const cell of cells) {
  lines.push(`- ${cell.id}: ${impls.map((i) => `${i} ${raw[cell.id]![i]!.map((r) => f0(r.callsPerSec)).join(" / ")}`).join("; ")}`);
}
const md = lines.join("\n") + "\n";
await mkdir(path.dirname(out), { recursive: true });
await writeFile(`${out}.md`, md);
await writeFile(`${out}.json`, JSON.stringify({ env, args, summary: summary.map((s) => ({ cell: s.cell, ...s.byImpl, ratio: s.ratio })), raw }, null, 2) + "\n");
console.log(`\n${md}\nwritten: ${path.relative(process.cwd(), out)}.md and .json`);
