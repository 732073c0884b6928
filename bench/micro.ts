/**
 * Per-call overhead of warren in isolation (no broker, no amqplib):
 *
 * 1. Codec + validation: the work warren does on one call's bodies at both
 *    ends (client: validate + encode request, decode + validate response;
 *    server: decode + validate request, validate + encode response), against
 *    the JSON.stringify / JSON.parse a hand-written RPC does anyway.
 * 2. Full runtime path: RpcClient.call and the server's dispatch over an
 *    in-memory fake channel (so everything warren's JS does per call — uuid,
 *    timer, headers, promises, Context — but no amqplib and no I/O), against
 *    the hand-written baseline's JS over the same fake channel.
 *
 *   npm run bench:micro    (sections 4 and 5: bench/lib/micro-extra.ts)
 */
import { performance } from "node:perf_hooks";
import { Calculator } from "../generated/calculator/index.js";
import { Bench } from "../generated/bench/index.js";
import { CalculatorClient, serveCalculator } from "../generated/calculator/index.js";
import { RpcClient } from "../src/rpc/client.js";
import { RpcServer } from "../src/rpc/server.js";
import { CONTENT_TYPE, DEFAULT_MAX_MESSAGE_BYTES, decodeBody, encodeBody } from "../src/core/protocol.js";
import { checksFor } from "../src/core/validation.js";
import { ECHO_BYTES, echoRequest } from "./lib/payload.js";
import { FakeChannel, fakeConnection } from "./lib/fake-channel.js";
import { directChannel } from "./lib/amqplib-frames.js";
import { publishMessage } from "../src/amqp/internals.js";
import { benchCalculator } from "./lib/calculator.js";

function bench(label: string, iterations: number, fn: () => void): number {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(); // warm-up / JIT
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / iterations);
  }
  console.log(`  ${label.padEnd(58)} ${best.toFixed(0).padStart(7)} ns/call`);
  return best;
}

let sink: unknown;

// ------------------------------------------------------------ 1. codec + validation
const cases = [
  { name: "small: add({a,b}) -> {sum}", method: Calculator.methods.add, req: { a: 12, b: 30 }, handler: (r: any) => ({ sum: r.a + r.b }), n: 200_000 },
  { name: `4 KB: Bench.echo (${ECHO_BYTES} B each way)`, method: Bench.methods.echo, req: echoRequest(7), handler: (r: any) => r, n: 20_000 },
];
const results: Record<string, Record<string, number>> = {};
console.log("1. Bodies of one call, both ends (best of 5 rounds)\n");
for (const c of cases) {
  console.log(c.name);
  const checks = checksFor(c.method);
  const r: Record<string, number> = {};
  r.json = bench("JSON.stringify + JSON.parse, request and response", c.n, () => {
    const req = JSON.parse(JSON.stringify(c.req));
    sink = JSON.parse(JSON.stringify(c.handler(req)));
  });
  r.jsonBuf = bench("  + Buffer.from / toString (what the baseline does)", c.n, () => {
    const req = JSON.parse(Buffer.from(JSON.stringify(c.req)).toString("utf8"));
    sink = JSON.parse(Buffer.from(JSON.stringify(c.handler(req))).toString("utf8"));
  });
  r.codec = bench("warren encodeBody + decodeBody, no validation", c.n, () => {
    const d1 = decodeBody(encodeBody(c.req), CONTENT_TYPE, DEFAULT_MAX_MESSAGE_BYTES) as { value: unknown };
    const d2 = decodeBody(encodeBody(c.handler(d1.value)), CONTENT_TYPE, DEFAULT_MAX_MESSAGE_BYTES) as { value: unknown };
    sink = d2.value;
  });
  r.validate = bench("warren validation only (4 checks: req x2, res x2)", c.n, () => {
    const res = c.handler(c.req);
    sink = [checks.request(c.req), checks.request(c.req), checks.response(res), checks.response(res)];
  });
  r.full = bench("warren full body path (codec + 4 checks)", c.n, () => {
    if (checks.request(c.req) !== undefined) throw new Error("invalid");
    const wire1 = encodeBody(c.req);
    const d1 = decodeBody(wire1, CONTENT_TYPE, DEFAULT_MAX_MESSAGE_BYTES) as { ok: true; value: unknown };
    if (checks.request(d1.value) !== undefined) throw new Error("invalid");
    const res = c.handler(d1.value);
    if (checks.response(res) !== undefined) throw new Error("invalid");
    const d2 = decodeBody(encodeBody(res), CONTENT_TYPE, DEFAULT_MAX_MESSAGE_BYTES) as { ok: true; value: unknown };
    if (checks.response(d2.value) !== undefined) throw new Error("invalid");
    sink = d2.value;
  });
  console.log(`  => warren body path costs ${(r.full - r.jsonBuf).toFixed(0)} ns/call more than the baseline's JSON+Buffer (${(r.full / r.jsonBuf).toFixed(2)}x)\n`);
  results[c.name] = r;
}

// ------------------------------------------------------------ 2. full runtime path over a fake channel
async function timeCalls(label: string, n: number, call: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 20_000; i++) await call();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await call();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / n);
  }
  console.log(`  ${label.padEnd(58)} ${best.toFixed(0).padStart(7)} ns/call`);
  return best;
}

console.log("2. Whole call (client + server JS) over an in-memory fake channel, sequential, small payload\n");
// baseline, same shape as bench/lib/impls.ts
{
  const ch = new FakeChannel();
  const pending = new Map<string, (v: unknown) => void>();
  await ch.consume("amq.rabbitmq.reply-to", (msg: any) => {
    const id = msg.properties.correlationId as string;
    const resolve = pending.get(id)!;
    pending.delete(id);
    resolve(JSON.parse(msg.content.toString("utf8")));
  });
  const sch = new FakeChannel();
  await sch.consume("q.base", (msg: any) => {
    const r = JSON.parse(msg.content.toString("utf8"));
    sch.publish("", msg.properties.replyTo, Buffer.from(JSON.stringify({ sum: r.a + r.b })), { correlationId: msg.properties.correlationId });
    sch.ack();
  });
  let next = 0;
  const call = (body: unknown) =>
    new Promise<unknown>((resolve) => {
      const id = String(++next);
      pending.set(id, resolve);
      ch.publish("", "q.base", Buffer.from(JSON.stringify(body)), { correlationId: id, replyTo: "amq.rabbitmq.reply-to" });
    });
  results.loopBaseline = { ns: await timeCalls("hand-written baseline", 100_000, async () => void (sink = await call({ a: 1, b: 2 }))) };
}
{
  const server = new RpcServer(fakeConnection, { prefetch: 64, logger: console });
  await serveCalculator(
    server,
    benchCalculator,
    { queue: "q.warren" },
  );
  const transport = new RpcClient(fakeConnection, { queues: { Calculator: "q.warren" } });
  await transport.ready();
  const calc = new CalculatorClient(transport);
  results.loopWarren = { ns: await timeCalls("warren (generated client + server, full validation)", 100_000, async () => void (sink = await calc.add({ a: 1, b: 2 }))) };
  await transport.close();
}
console.log(
  `  => warren's JS costs ${(results.loopWarren!.ns! - results.loopBaseline!.ns!).toFixed(0)} ns/call more than the baseline's (${(results.loopWarren!.ns! / results.loopBaseline!.ns!).toFixed(2)}x), amqplib and broker excluded\n`,
);
void sink;

// ------------------------------------------------------------ 3. pieces of warren's per-call JS
console.log("3. Pieces of warren's per-call JS (client side unless noted)\n");
{
  const { v4 } = await import("uuid");
  let n = 0;
  bench("uuid v4 correlation id", 1_000_000, () => void (sink = v4()));
  bench("counter correlation id (String(++n))", 1_000_000, () => void (sink = String(++n)));
  bench("setTimeout + clearTimeout (per-call timer)", 200_000, () => clearTimeout(setTimeout(() => {}, 5000)));
  bench("publish options object (expiration, timestamp, headers spread)", 1_000_000, () => {
    const deadline = Date.now() + 5000;
    sink = {
      correlationId: "x",
      replyTo: "amq.rabbitmq.reply-to",
      type: "add",
      contentType: CONTENT_TYPE,
      expiration: String(Math.max(1, deadline - Date.now())),
      timestamp: Math.floor(Date.now() / 1000),
      headers: { ...(undefined as Record<string, string> | undefined), "x-warren-deadline": deadline, "x-warren-protocol": 1 },
      mandatory: true,
    };
  });
}
{
  // Encoding one request into the bytes a socket gets (amqplib's connection object without a socket).
  const { channel } = directChannel(1, false);
  const body = Buffer.from('{"a":1,"b":2}');
  let n = 0;
  const props = () => {
    const deadline = Date.now() + 30_000;
    return {
      contentType: CONTENT_TYPE,
      correlationId: `8f14e45f-ceea-4672-9b1c-2f0a6c1d3e21.${(++n).toString(36)}`,
      replyTo: "amq.rabbitmq.reply-to",
      type: "add",
      expiration: "30000",
      timestamp: Math.floor(deadline / 1000),
      headers: { "x-warren-deadline": deadline },
    };
  };
  bench("encode a request: amqplib channel.publish", 300_000, () => void channel.publish("", "q", body, { ...props(), mandatory: true }));
  bench("encode a request: warren publishMessage (same bytes)", 300_000, () => void publishMessage(channel, "", "q", body, props(), true));
  bench("encode the baseline's request: channel.publish", 300_000, () => void channel.publish("", "q", body, { correlationId: String(++n), replyTo: "amq.rabbitmq.reply-to" }));
}

// ------------------------------------------------------------ 4, 5. event publish; the RPC client's consumer check
{
  const { microEventPublish, microPresence } = await import("./lib/micro-extra.js");
  await microEventPublish();
  await microPresence();
}
