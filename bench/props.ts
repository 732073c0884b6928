/**
 * What a message's basic properties cost the broker: the same small event
 * published and consumed with different properties, hand-written amqplib at
 * both ends (no warren code), measuring the broker's CPU per event and the
 * events per second. It shows the step RabbitMQ 3.10 takes when the encoded
 * properties grow past 64 bytes, which every event with a `message_id` and a
 * `type` crosses (warren's do, with their contract-version header and
 * timestamp; the minimal hand-written baseline of `bench:events` does not).
 *
 *   npm run bench:props [-- --rounds 5 --duration 1500 --in-flight 128 --out bench/results/props]
 *
 * One confirm-channel publisher keeps `in-flight` publishes unconfirmed; one
 * consumer (prefetch 16, an ack per event) on another connection; both in
 * this process. Variants run interleaved, the order reversed every other
 * round; each ends when the consumer has consumed all it published. Reported:
 * medians over rounds, with the spread.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import amqp, { type Options } from "amqplib";
import { brokerPidOnPort } from "./lib/broker-pid.js";
import { procCpuMicros } from "./lib/cpu.js";
import { median } from "./lib/stats.js";
import { BENCH_URL, benchRoot, option } from "./lib/cli.js";
import { brokerVersion } from "./lib/versions.js";
import { orderEvent } from "./lib/event-payload.js";

const { root, compiled } = benchRoot(import.meta.url);
const args = process.argv.slice(2);
const rounds = Number(option(args, "rounds", "5"));
const durationMs = Number(option(args, "duration", "1500"));
const inFlight = Number(option(args, "in-flight", "128"));
const out = path.resolve(root, option(args, "out", "bench/results/props"));

const BASE: Options.Publish = { persistent: true, contentType: "application/json" };
const VERSION_HEADER = "x-warren-contract-version";
/** A contract-version header whose value makes the encoded properties `bytes` long (flags included; amqplib always sends a headers table). */
const headerOf = (bytes: number): Options.Publish => ({ ...BASE, headers: { [VERSION_HEADER]: "x".repeat(bytes - 2 - 17 - 1 - 4 - (1 + VERSION_HEADER.length + 1 + 4)) } });
const WARREN_LIKE: Options.Publish = { ...BASE, type: "order_placed", messageId: "0b6c4a3e-8f1d-4c2b-9a7e-3d5f6e7a8b9c", timestamp: 1764690000, headers: { [VERSION_HEADER]: "1.0.0" } };

/** The variants: properties as sent, and their encoded size (property flags included). */
const VARIANTS: { id: string; label: string; props: Options.Publish; bytes: number }[] = [
  { id: "minimal", label: "content type + persistent (the bench:events baseline)", props: BASE, bytes: 24 },
  { id: "64B", label: "+ one header, 64 bytes in all", props: headerOf(64), bytes: 64 },
  { id: "65B", label: "+ one header, 65 bytes in all", props: headerOf(65), bytes: 65 },
  { id: "warren", label: "what warren sends: + type, message id, timestamp, version header", props: WARREN_LIKE, bytes: 2 + 17 + 1 + (1 + 12) + (1 + 36) + 8 + 4 + (1 + VERSION_HEADER.length + 1 + 4 + 5) },
];

const beam = brokerPidOnPort(Number(new URL(BENCH_URL).port || 5672));
if (beam === undefined) throw new Error("bench:props needs the broker's process (a local RabbitMQ) to read its CPU time");
const exchange = `bench.props.${Date.now().toString(36)}`;
const pubConn = await amqp.connect(BENCH_URL, { noDelay: true });
const pub = await pubConn.createConfirmChannel();
await pub.assertExchange(exchange, "topic", { durable: false, autoDelete: false });
const subConn = await amqp.connect(BENCH_URL, { noDelay: true });
const sub = await subConn.createChannel();
const { queue } = await sub.assertQueue("", { exclusive: true });
await sub.bindQueue(queue, exchange, "#");
await sub.prefetch(16);
let consumed = 0;
await sub.consume(queue, (m) => {
  consumed++;
  sub.ack(m!);
});
const body = Buffer.from(JSON.stringify(orderEvent(1, "small")));

/** Publishes for `ms` with `inFlight` unconfirmed, waits until all were consumed; broker CPU µs per event and events/s. */
async function run(props: Options.Publish, ms: number): Promise<{ cpu: number; rate: number }> {
  let sent = 0;
  const end = Date.now() + ms;
  const worker = async () => {
    while (Date.now() < end) {
      await new Promise<void>((resolve, reject) => pub.publish(exchange, "orders.eu.placed", body, props, (err) => (err ? reject(err) : resolve())));
      sent++;
    }
  };
  const c0 = consumed;
  const b0 = procCpuMicros(beam!)!;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  while (consumed - c0 < sent) await new Promise((r) => setTimeout(r, 1));
  return { cpu: (procCpuMicros(beam!)! - b0) / sent, rate: sent / ((performance.now() - t0) / 1000) };
}

const results = Object.fromEntries(VARIANTS.map((v) => [v.id, { cpu: [] as number[], rate: [] as number[] }]));
for (const v of VARIANTS) await run(v.props, 500); // warm-up
for (let round = 1; round <= rounds; round++) {
  for (const v of round % 2 ? VARIANTS : [...VARIANTS].reverse()) {
    const r = await run(v.props, durationMs);
    results[v.id]!.cpu.push(r.cpu);
    results[v.id]!.rate.push(r.rate);
    console.log(`round ${round}  ${v.id.padEnd(8)} ${r.rate.toFixed(0).padStart(6)} events/s  broker ${r.cpu.toFixed(1)} µs/event`);
  }
}
await pub.deleteExchange(exchange);
await pubConn.close();
await subConn.close();

const f0 = (n: number) => n.toFixed(0);
const base = results.minimal!;
const lines = [
  "# What message properties cost the broker",
  "",
  `Command: \`${compiled ? "npm run bench:props --" : "npx tsx bench/props.ts"} ${args.join(" ")}\``.replace(/ +`$/, "`").replace(/ --`$/, "`") + "  ",
  `${new Date().toISOString()}; Node ${process.version}; ${await brokerVersion(BENCH_URL)}. Hand-written amqplib at both ends, a ${body.length}-byte JSON body, ${inFlight} publishes in flight on one confirm channel, one consumer (prefetch 16, an ack per event); ${rounds} rounds of ${durationMs} ms per variant, interleaved; medians, spread = min–max.`,
  "",
  "| properties | encoded bytes | events/s | spread | broker CPU µs/event | spread | events/s vs minimal |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  ...VARIANTS.map((v) => {
    const r = results[v.id]!;
    return `| ${v.label} | ${v.bytes} | ${f0(median(r.rate))} | ${f0(Math.min(...r.rate))}–${f0(Math.max(...r.rate))} | ${median(r.cpu).toFixed(1)} | ${Math.min(...r.cpu).toFixed(1)}–${Math.max(...r.cpu).toFixed(1)} | ${(median(r.rate) / median(base.rate)).toFixed(2)} |`;
  }),
];
await mkdir(path.dirname(out), { recursive: true });
await writeFile(`${out}.md`, `${lines.join("\n")}\n`);
await writeFile(`${out}.json`, `${JSON.stringify({ rounds, durationMs, inFlight, results }, null, 2)}\n`);
console.log(`\n${lines.slice(5).join("\n")}\n\nwritten: ${path.relative(process.cwd(), out)}.md and .json`);
