/**
 * Events throughput against a local RabbitMQ: publish with confirms and
 * consume, warren's generated publisher and subscriber against a hand-written
 * amqplib ConfirmChannel publisher and consumer (bench/lib/event-impls.ts says
 * what each does).
 *
 *   npm run bench:events [-- options]   (tsc output in dist-bench/, plain node)
 *   options: --reps 5 --duration 3000 --slices 6 --jit-warmup 2000 --cells small-f1,1KB-f128
 *            --cpu-prof-dir DIR (profile the consumer children) --out bench/results/events
 *
 * Publishers live in this process, each implementation's consumer in a child
 * process of its own. A cell keeps `inFlight` publishes unconfirmed (each
 * publisher sends its next event once the previous one is confirmed); an
 * event counts once it was published, confirmed and consumed. Cells run
 * interleaved: each implementation's window is cut in `slices` slices run
 * A B A B …, the order rotating and reversing per repetition (see
 * `balancedOrder`: each implementation follows each other equally often); every slice ends when the
 * consumer has consumed everything published in it, so no backlog carries
 * over. Reported numbers are medians over repetitions, with the spread
 * (min–max). Every event is checked: content, and each sequence number seen
 * exactly once; a wrong or missing event aborts the run.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import amqp from "amqplib";
import { runEventSlice } from "./lib/event-driver.js";
import { BINDING_KEY, EVENT_IMPL_LABEL, EVENT_PREFETCH, EVENT_PUBLISHERS, type EventImplName, type EventNames, type EventPublisherImpl } from "./lib/event-impls.js";
import { EVENT_BYTES, type EventSize } from "./lib/event-payload.js";
import { balancedOrder, median } from "./lib/stats.js";
import { childCpuMicros, procCpuMicros, selfCpuMicros } from "./lib/cpu.js";
import { brokerPidOnPort } from "./lib/broker-pid.js";
import { stopChildren } from "./lib/child.js";
import { brokerVersion, pkgVersion } from "./lib/versions.js";
import { BENCH_URL, benchRoot, option } from "./lib/cli.js";

/** `compiled`: running the tsc output in dist-bench/ rather than the sources through tsx. */
const { here, root, compiled } = benchRoot(import.meta.url);

// ------------------------------------------------------------------ options
const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => option(args, name, fallback);
const url = BENCH_URL;
const reps = Number(opt("reps", "5"));
const durationMs = Number(opt("duration", "3000"));
const slices = Math.max(1, Math.round(Number(opt("slices", "6"))));
const jitWarmupMs = Number(opt("jit-warmup", "2000"));
const cpuProfDir = args.includes("--cpu-prof-dir") ? path.resolve(opt("cpu-prof-dir", "")) : undefined;
const out = path.resolve(root, opt("out", "bench/results/events"));
const impls = opt("impls", "baseline,baseline-props,warren").split(",") as EventImplName[];
/** The hand-written implementations warren is compared with. */
const baselines = impls.filter((i) => i === "baseline" || i === "baseline-props");
for (const impl of impls) if (!(impl in EVENT_PUBLISHERS)) throw new Error(`unknown implementation ${impl}`);

interface Cell {
  id: string;
  label: string;
  size: EventSize;
  inFlight: number;
}
const CELLS: Cell[] = [
  { id: "small-f1", label: `small (${EVENT_BYTES.small} B), 1 in flight`, size: "small", inFlight: 1 },
  { id: "small-f128", label: `small (${EVENT_BYTES.small} B), 128 in flight`, size: "small", inFlight: 128 },
  { id: "1KB-f1", label: `${EVENT_BYTES["1KB"]} B, 1 in flight`, size: "1KB", inFlight: 1 },
  { id: "1KB-f128", label: `${EVENT_BYTES["1KB"]} B, 128 in flight`, size: "1KB", inFlight: 128 },
];
const cellFilter = opt("cells", "");
const cells = cellFilter ? CELLS.filter((c) => cellFilter.split(",").includes(c.id)) : CELLS;

// ------------------------------------------------------------------ setup
const runId = `${Date.now().toString(36)}-${process.pid}`;
const names = Object.fromEntries(impls.map((i) => [i, { exchange: `bench.${runId}.events.${i}`, deadLetterQueue: `bench.${runId}.events.${i}.dead` }])) as Record<EventImplName, EventNames>;
const children: ChildProcess[] = [];
const consumers = {} as Record<EventImplName, Consumer>;
const publishers = {} as Record<EventImplName, EventPublisherImpl>;
/** Next sequence number per implementation: its consumer expects 0, 1, 2, … */
const nextSeq = Object.fromEntries(impls.map((i) => [i, 0])) as Record<EventImplName, number>;
const beam = brokerPidOnPort(Number(new URL(url).port || 5672));

/** An implementation's consumer child, seen from here. */
interface Consumer {
  child: ChildProcess;
  /** Resolves once events 0 .. total-1 were consumed and checked. */
  consumed(total: number): Promise<void>;
}

async function startConsumer(impl: EventImplName): Promise<Consumer> {
  const execArgv = [...(compiled ? [] : ["--import", "tsx"]), ...(cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", cpuProfDir, "--cpu-prof-name", `events-consumer-${impl}.cpuprofile`] : [])];
  const child = fork(path.join(here, `lib/event-consumer-child.${compiled ? "js" : "ts"}`), [impl, url, names[impl].exchange, names[impl].deadLetterQueue], {
    execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.push(child);
  let failure: Error | undefined;
  let waiting: { total: number; resolve: () => void; reject: (err: Error) => void } | undefined;
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => {
      failure ??= new Error(`${impl} consumer exited with code ${code}`);
      reject(failure);
      waiting?.reject(failure);
    });
    child.on("message", (m: { ready?: boolean; error?: string; reached?: number }) => {
      if (m.ready) resolve();
      else if (m.error !== undefined) {
        failure ??= new Error(`${impl} consumer: ${m.error}`);
        reject(failure);
        waiting?.reject(failure);
      } else if (m.reached !== undefined && waiting?.total === m.reached) {
        const w = waiting;
        waiting = undefined;
        w.resolve();
      }
    });
  });
  return {
    child,
    consumed: (total) =>
      failure !== undefined
        ? Promise.reject(failure)
        : new Promise<void>((resolve, reject) => {
            waiting = { total, resolve, reject };
            child.send({ expect: total });
          }),
  };
}

async function cleanup(): Promise<void> {
  await Promise.all(Object.values(publishers).map((p) => p.close().catch(() => {})));
  await stopChildren(children);
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  for (const n of Object.values(names)) {
    await ch.deleteQueue(n.deadLetterQueue).catch(() => {});
    await ch.deleteExchange(n.exchange).catch(() => {});
  }
  await conn.close();
}

// ------------------------------------------------------------------ run
type Cpu = { publisher?: number | undefined; consumer?: number | undefined; broker?: number | undefined }; // µs of CPU per event
const CPU_KEYS = ["publisher", "consumer", "broker"] as const;
interface Measured {
  events: number;
  seconds: number;
  eventsPerSec: number;
  cpuPerEvent: Cpu;
}
const raw: Record<string, Record<string, Measured[]>> = Object.fromEntries(cells.map((c) => [c.id, Object.fromEntries(impls.map((i) => [i, [] as Measured[]]))]));

/** One slice of `impl` in `cell`; CPU sampled at its edges when `cpu` is given. */
async function slice(impl: EventImplName, cell: Pick<Cell, "size" | "inFlight">, ms: number, cpu?: { before: Cpu; after: Cpu }) {
  const publisher = publishers[impl];
  const consumer = consumers[impl];
  const sample = (into: Cpu) => {
    into.publisher = selfCpuMicros();
    into.consumer = childCpuMicros(consumer.child);
    into.broker = beam === undefined ? undefined : procCpuMicros(beam);
  };
  const r = await runEventSlice((seq) => publisher.publish(seq, cell.size), nextSeq[impl], cell.inFlight, ms, consumer.consumed, (phase) => cpu && sample(phase === "start" ? cpu.before : cpu.after));
  nextSeq[impl] += r.events;
  return r;
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
  for (const impl of impls) consumers[impl] = await startConsumer(impl);
  for (const impl of impls) publishers[impl] = await EVENT_PUBLISHERS[impl](url, names[impl]);
  console.log(`consumers: one child process per implementation; ${reps} reps x ${cells.length} cells x ${impls.length} impls, ${durationMs} ms each, in ${slices} slices`);
  // Untimed JIT warm-up: every implementation runs both sizes at both depths before anything is measured.
  if (jitWarmupMs > 0) {
    for (const impl of impls) {
      await slice(impl, { size: "small", inFlight: 128 }, jitWarmupMs / 2);
      await slice(impl, { size: "1KB", inFlight: 128 }, jitWarmupMs / 4);
      await slice(impl, { size: "small", inFlight: 1 }, jitWarmupMs / 4);
    }
  }
  for (let rep = 1; rep <= reps; rep++) {
    const order = balancedOrder(impls, rep);
    for (const cell of cells) {
      const acc = new Map(order.map((impl) => [impl, { events: 0, seconds: 0, cpu: { publisher: 0, consumer: 0, broker: 0 }, cpuSeen: { publisher: true, consumer: true, broker: true } }]));
      for (let s = 0; s < slices; s++) {
        for (const impl of order) {
          const a = acc.get(impl)!;
          const cpu = { before: {} as Cpu, after: {} as Cpu };
          const r = await slice(impl, cell, durationMs / slices, cpu);
          a.events += r.events;
          a.seconds += r.seconds;
          for (const k of CPU_KEYS) {
            if (cpu.before[k] === undefined || cpu.after[k] === undefined) a.cpuSeen[k] = false;
            else a.cpu[k] += cpu.after[k]! - cpu.before[k]!;
          }
        }
      }
      for (const impl of order) {
        const a = acc.get(impl)!;
        const per = (k: (typeof CPU_KEYS)[number]) => (a.cpuSeen[k] ? a.cpu[k] / a.events : undefined);
        const m: Measured = { events: a.events, seconds: a.seconds, eventsPerSec: a.events / a.seconds, cpuPerEvent: { publisher: per("publisher"), consumer: per("consumer"), broker: per("broker") } };
        raw[cell.id]![impl]!.push(m);
        console.log(
          `rep ${rep}  ${cell.id.padEnd(10)} ${impl.padEnd(8)} ${m.eventsPerSec.toFixed(0).padStart(7)} events/s  CPU µs/event: publisher ${f0(m.cpuPerEvent.publisher)}, consumer ${f0(m.cpuPerEvent.consumer)}, broker ${f0(m.cpuPerEvent.broker)}`,
        );
      }
    }
  }
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
function f0(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(0);
}
function f2(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(2);
}
const summary = cells.map((cell) => {
  const byImpl = Object.fromEntries(
    impls.map((impl) => {
      const rs = raw[cell.id]![impl]!;
      const eps = rs.map((r) => r.eventsPerSec);
      const cpu = (k: (typeof CPU_KEYS)[number]) => median(rs.map((r) => r.cpuPerEvent[k] ?? NaN));
      return [impl, { eventsPerSec: median(eps), min: Math.min(...eps), max: Math.max(...eps), cpuPerEvent: { publisher: cpu("publisher"), consumer: cpu("consumer"), broker: cpu("broker") } }];
    }),
  ) as Record<EventImplName, { eventsPerSec: number; min: number; max: number; cpuPerEvent: Required<Cpu> }>;
  const w = raw[cell.id]!.warren;
  // Per baseline: the ratio per repetition (both measured in the same interleaved window), and the ratio of the medians.
  const ratios = Object.fromEntries(
    (w === undefined ? [] : baselines).map((base) => {
      const perRep = w!.map((m, i) => m.eventsPerSec / raw[cell.id]![base]![i]!.eventsPerSec);
      return [base, { ofMedians: byImpl.warren.eventsPerSec / byImpl[base].eventsPerSec, medianPerRep: median(perRep), min: Math.min(...perRep), max: Math.max(...perRep), perRep }];
    }),
  ) as Partial<Record<EventImplName, { ofMedians: number; medianPerRep: number; min: number; max: number; perRep: number[] }>>;
  return { cell, byImpl, ratios };
});

const env = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}`,
  broker,
  amqplib: await pkgVersion(root, "amqplib"),
  ajv: await pkgVersion(root, "ajv"),
  reps,
  durationMs,
  slices,
  prefetch: EVENT_PREFETCH,
  bindingKey: BINDING_KEY,
  eventBytes: EVENT_BYTES,
  wallSeconds: Math.round((Date.now() - started) / 1000),
};

const lines: string[] = [];
lines.push("# warren events benchmark", "");
lines.push(`Command: \`${compiled ? "npm run bench:events --" : "npx tsx bench/events.ts"} ${args.join(" ")}\``.replace(/ +`$/, "`").replace(/ --`$/, "`") + "  ");
lines.push(`${env.date}; Node ${env.node}; ${env.cpus}; ${env.broker}; amqplib ${env.amqplib}; ajv ${env.ajv}.  `);
lines.push(
  `Publishers in this process, each consumer in a child process of its own; broker, publishers and consumers share the machine. ` +
    `All: durable topic exchange, persistent messages, routing key \`orders.<region>.placed\`, an exclusive auto-delete queue bound with \`${BINDING_KEY}\`, prefetch ${EVENT_PREFETCH}, TCP_NODELAY; the hand-written consumers ack each event, warren's holds acks (default \`ackDelayMs\`: up to 10 ms or 4 events, then one multiple ack); ` +
    `N in flight = N publishers each waiting for its event's publisher confirm before sending the next. ` +
    `amqplib baseline: ConfirmChannel \`publish\` with a confirm callback per message, \`JSON.stringify\` body, \`persistent\` + \`contentType\`; consumer \`JSON.parse\`, check, \`ack\`; no validation. ` +
    `amqplib, warren's properties: the same, also sending what warren sends (type, UUID message id, timestamp, contract-version header; over RabbitMQ 3.10's 64-byte step for properties, see \`npm run bench:props\`). ` +
    `warren: generated \`OrdersPublisher.publishOrderPlaced\` on \`conn.events()\` (payload schema-checked, confirm awaited; also sends type, message id, timestamp, contract-version header) and \`OrdersSubscriber.onOrderPlaced\` (content type, contract version and payload schema checked before the handler; ack after it). ` +
    `An event counts once published, confirmed and consumed (each slice ends when its consumer has consumed all it published); every event is checked, each sequence number exactly once. ` +
    `${reps} repetitions, the order rotating and reversing per repetition (each implementation follows each other equally often); untimed JIT warm-up of ${jitWarmupMs} ms per implementation first; ${durationMs} ms of publishing per cell and implementation per repetition, in ${slices} slices interleaved A B A B …; medians over repetitions, spread = min–max. Wall time ${env.wallSeconds} s.`,
  "",
);
const head = ["cell", ...impls.flatMap((i) => [`${EVENT_IMPL_LABEL[i]} events/s`, "spread"])];
const compared = impls.includes("warren") ? baselines : [];
for (const base of compared) head.push(`warren ÷ ${EVENT_IMPL_LABEL[base]} (of medians)`, "per-rep median", "per-rep min–max");
lines.push(`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`);
for (const s of summary) {
  const row = [s.cell.label, ...impls.flatMap((i) => [f0(s.byImpl[i].eventsPerSec), `${f0(s.byImpl[i].min)}–${f0(s.byImpl[i].max)}`])];
  for (const base of compared) {
    const r = s.ratios[base]!;
    row.push(f2(r.ofMedians), f2(r.medianPerRep), `${f2(r.min)}–${f2(r.max)}`);
  }
  lines.push(`| ${row.join(" | ")} |`);
}
for (const base of compared) {
  const ok = summary.every((s) => s.ratios[base]!.ofMedians >= 1.0);
  lines.push("", `Target: warren (validation on) ≥ 1.0× ${EVENT_IMPL_LABEL[base]} events/s in every cell: **${ok ? "met" : "missed"}** (${summary.map((s) => `${s.cell.id} ${f2(s.ratios[base]!.ofMedians)}`).join(", ")}).`);
}
lines.push("", "CPU time per event (µs, user+system, slices only, drain included; median over repetitions). The 2 cores are shared by broker, publishers and consumers.", "");
const cpuHead = ["cell", ...impls.flatMap((i) => [`${EVENT_IMPL_LABEL[i]} publisher`, "consumer", "broker"])];
lines.push(`| ${cpuHead.join(" | ")} |`, `|${cpuHead.map(() => " --- ").join("|")}|`);
for (const s of summary) {
  lines.push(`| ${[s.cell.label, ...impls.flatMap((i) => CPU_KEYS.map((k) => f0(s.byImpl[i].cpuPerEvent[k])))].join(" | ")} |`);
}
lines.push("", `Per repetition (events/s); the order of each repetition's slices: ${Array.from({ length: reps }, (_, i) => balancedOrder(impls, i + 1).join(" ")).join(" / ")}`, "");
for (const s of summary) {
  const ratios = compared.map((base) => `; warren ÷ ${base} ${s.ratios[base]!.perRep.map(f2).join(" / ")}`).join("");
  lines.push(`- ${s.cell.id}: ${impls.map((i) => `${i} ${raw[s.cell.id]![i]!.map((r) => f0(r.eventsPerSec)).join(" / ")}`).join("; ")}${ratios}`);
}
const md = lines.join("\n") + "\n";
await mkdir(path.dirname(out), { recursive: true });
await writeFile(`${out}.md`, md);
await writeFile(`${out}.json`, JSON.stringify({ env, args, summary: summary.map((s) => ({ cell: s.cell, ...s.byImpl, ratios: s.ratios })), raw }, null, 2) + "\n");
console.log(`\n${md}\nwritten: ${path.relative(process.cwd(), out)}.md and .json`);
