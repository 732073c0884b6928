/**
 * Sections of `npm run bench:micro` beyond the RPC body path, each runnable
 * on its own (`npx tsx bench/lib/micro-extra.ts [events|presence]`):
 *
 * - {@link microEventPublish}: the JS of one event publish, publisher side,
 *   with amqplib's real frame encoder and a confirm on the next microtask
 *   (no socket, no broker): warren's generated publisher against the
 *   hand-written confirm-channel publish of bench/lib/event-impls.ts.
 * - {@link microPresence}: what the RPC client's "does anyone consume this
 *   queue" check costs a call: `Presence.known()` on a fresh answer, and the
 *   whole call over the in-memory fake channel with the check on and off
 *   (`waitForServer: true` skips it).
 */
import { performance } from "node:perf_hooks";
import type { ChannelSource, MessageProperties, WireChannel } from "../../src/amqp/channel-source.js";
import { EventBus } from "../../src/events/bus.js";
import { Presence } from "../../src/rpc/presence.js";
import { RpcClient } from "../../src/rpc/client.js";
import { RpcServer } from "../../src/rpc/server.js";
import { OrdersPublisher } from "../../generated/orders/index.js";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { publishMessage } from "../../src/amqp/internals.js";
import { directChannel } from "./amqplib-frames.js";
import { FakeChannel, fakeConnection } from "./fake-channel.js";
import { orderEvent, orderRoutingKey, type EventSize } from "./event-payload.js";
import { benchCalculator } from "./calculator.js";

let sink: unknown;

/** Best of 5 rounds of `n` sequential awaited calls, in ns per call (after a 20,000-call warm-up). */
export async function timeAsync(label: string, n: number, call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20_000; i++) sink = await call();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink = await call();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / n);
  }
  console.log(`  ${label.padEnd(58)} ${best.toFixed(0).padStart(7)} ns/call`);
  return best;
}

/** Best of 5 rounds of `n` synchronous calls, in ns per call. */
export function timeSync(label: string, n: number, fn: () => unknown): number {
  for (let i = 0; i < Math.min(n, 20_000); i++) sink = fn();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink = fn();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / n);
  }
  console.log(`  ${label.padEnd(58)} ${best.toFixed(1).padStart(7)} ns/call`);
  return best;
}

/** A confirm channel whose publishes go through amqplib's encoder the way warren's AmqpChannel sends them (publishMessage), confirmed on the next microtask. */
class EncodingConfirmChannel extends FakeChannel implements WireChannel {
  readonly #raw = directChannel(1, false).channel;
  override publishConfirmed(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, confirmed: (err: Error | null) => void): boolean {
    queueMicrotask(() => confirmed(null));
    return publishMessage(this.#raw, exchange, routingKey, content, props);
  }
}

/** Event publish, publisher-side JS per event (sequential, one in flight). */
export async function microEventPublish(): Promise<Record<string, number>> {
  console.log("4. One event publish, publisher side: JS + amqplib's frame encoding, confirm on the next microtask, sequential\n");
  const r: Record<string, number> = {};
  for (const size of ["small", "1KB"] as EventSize[]) {
    console.log(`${size} payload`);
    const raw = directChannel(1, false).channel;
    let seq = 0;
    r[`baseline-${size}`] = await timeAsync("hand-written: JSON + ConfirmChannel-style publish + callback", 200_000, () =>
      new Promise<void>((resolve) => {
        const order = orderEvent(seq++, size);
        raw.publish("ex", orderRoutingKey(order), Buffer.from(JSON.stringify(order)), { persistent: true, contentType: "application/json" });
        queueMicrotask(resolve);
      }),
    );
    const source: ChannelSource = { ...fakeConnection, open: async () => new EncodingConfirmChannel() };
    const publisher = new OrdersPublisher(new EventBus(source));
    r[`warren-${size}`] = await timeAsync("warren: OrdersPublisher.publishOrderPlaced (validated)", 200_000, () => publisher.publishOrderPlaced(orderEvent(seq++, size)));
    const more = r[`warren-${size}`]! - r[`baseline-${size}`]!;
    console.log(`  => warren costs ${Math.abs(more).toFixed(0)} ns per event ${more >= 0 ? "more" : "less"} (${(r[`warren-${size}`]! / r[`baseline-${size}`]!).toFixed(2)}x)\n`);
  }
  // What the publish itself costs in amqplib with warren's properties: channel.publish (Args.publish, headers via the prototype chain) vs the sendMessage path.
  const raw = directChannel(1, false).channel;
  const body = Buffer.from(JSON.stringify(orderEvent(1, "small")));
  const props = (): MessageProperties => ({ deliveryMode: 2, contentType: "application/json", type: "order_placed", messageId: "8f14e45f-ceea-4672-9b1c-2f0a6c1d3e21", timestamp: Math.floor(Date.now() / 1000), headers: { "x-warren-contract-version": "1.0.0" } });
  r.encodePublish = timeSync("encode an event: amqplib channel.publish", 300_000, () => raw.publish("ex", "orders.eu.placed", body, props() as never));
  r.encodeSendMessage = timeSync("encode an event: warren publishMessage (same bytes)", 300_000, () => publishMessage(raw, "ex", "orders.eu.placed", body, props()));
  console.log();
  return r;
}

/** The RPC client's consumer check, per call. */
export async function microPresence(): Promise<Record<string, number>> {
  console.log("5. The RPC client's no-consumer check (src/rpc/presence.ts), per call\n");
  const r: Record<string, number> = {};
  const presence = new Presence(fakeConnection);
  await presence.check("q.presence");
  // Cached answers are fresh for a second; each round here is far shorter, so every lookup is a cache hit.
  const now = Date.now(); // as a call passes the time it started: the answer stays fresh for the whole measurement
  r.known = timeSync("Presence.known(queue, now): cached answer", 2_000_000, () => presence.known("q.presence", now));
  r.dateNow = timeSync("(for scale: one Date.now(), which every call reads anyway)", 2_000_000, () => Date.now());
  await presence.close();

  const server = new RpcServer(fakeConnection, { prefetch: 64, logger: console });
  await serveCalculator(
    server,
    benchCalculator,
    { queue: "q.presence.calc" },
  );
  // One client (the fake's direct reply-to address is one per process): the call option waitForServer skips the check per call.
  const client = new RpcClient(fakeConnection, { queues: { Calculator: "q.presence.calc" } });
  await client.ready();
  const calc = new CalculatorClient(client);
  const checkOn = {};
  const checkOff = { waitForServer: true };
  // Alternate off/on rounds so drift hits both alike; keep each one's best.
  let bestOn = Infinity;
  let bestOff = Infinity;
  for (let round = 0; round < 3; round++) {
    bestOff = Math.min(bestOff, await timeAsync("whole call, check off (call option waitForServer: true)", 100_000, () => calc.add({ a: 1, b: 2 }, checkOff)));
    bestOn = Math.min(bestOn, await timeAsync("whole call, check on (the default)", 100_000, () => calc.add({ a: 1, b: 2 }, checkOn)));
  }
  r.callOff = bestOff;
  r.callOn = bestOn;
  console.log(`  => check on − off: ${(bestOn - bestOff).toFixed(0)} ns per call (best of 15 rounds each; Presence.known alone: ${r.known!.toFixed(1)} ns)\n`);
  await client.close();
  void sink;
  return r;
}

if (process.argv[1]?.endsWith("micro-extra.ts") || process.argv[1]?.endsWith("micro-extra.js")) {
  const which = process.argv[2];
  if (which === undefined || which === "events") await microEventPublish();
  if (which === undefined || which === "presence") await microPresence();
}
