/**
 * The conformance suite: written once, run on the in-memory test kit (suite.memory.test.ts)
 * and on RabbitMQ (suite.rabbitmq.test.ts). Every case must have the same outcome on both;
 * a difference is a failing test on one of them. Faults only the kit can inject are tested in
 * faults.memory.test.ts instead.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Calculator, CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { FibonacciClient, serveFibonacci } from "../../generated/fibonacci/index.js";
import { OrdersPublisher, OrdersSubscriber, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { PointsClient, servePoints } from "../../generated/points/index.js";
import type { Delivery, WireChannel } from "../../src/amqp/channel-source.js";
import {
  ATTEMPT_HEADER,
  CONTENT_TYPE,
  CONTRACT_VERSION_HEADER,
  DEAD_REASON_HEADER,
  DEADLINE_HEADER,
  DIRECT_REPLY_TO,
  ERROR_TYPE,
  RESULT_TYPE,
  RpcError,
  ValidationError,
  isDeclaredError,
  type EventContext,
  type HandlerContext,
} from "../../src/index.js";
import type { Env, EnvFactory } from "./env.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";
import { rejection } from "../helpers/outcome.js";

const handlers: CalculatorHandlers = calculatorHandlers;

const order = (orderId: string, region: OrderPlacedEvent["region"] = "eu"): OrderPlacedEvent => ({ orderId, region, items: [{ sku: "tea", quantity: 1 }] });
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";


/** Resolves once `check` holds, polling; fails naming `what` after `ms`. */
async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A promise a test resolves by hand; released at the end of the test at the latest. */
function gate(env: Env): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  env.defer(open);
  return { wait, open };
}

/** A hand-made caller through the seam: publishes raw requests with direct reply-to and collects the replies. */
async function rawCaller(env: Env): Promise<{ send(queue: string, body: string, props?: Record<string, unknown>): void; replies: Delivery[] }> {
  const ch = await (await env.source()).open();
  const replies: Delivery[] = [];
  await ch.consume(DIRECT_REPLY_TO, (msg) => msg && replies.push(msg), { noAck: true });
  return {
    replies,
    send: (queue, body, props = {}) =>
      void ch.publish("", queue, Buffer.from(body), { replyTo: DIRECT_REPLY_TO, correlationId: "raw-1", contentType: CONTENT_TYPE, headers: { [DEADLINE_HEADER]: Date.now() + 5000 }, ...props }),
  };
}

/** A hand-made server through the seam: consumes `queue` and answers every request with `reply`. */
async function rawServer(env: Env, queue: string, reply: { type: string; body: string }): Promise<void> {
  const ch: WireChannel = await (await env.source()).open();
  await ch.declareQueue(queue, { durable: true });
  await ch.consume(queue, (msg) => {
    if (msg === null) return;
    ch.publish("", msg.properties.replyTo as string, Buffer.from(reply.body), { correlationId: msg.properties.correlationId as string, contentType: CONTENT_TYPE, type: reply.type });
  }, { noAck: true });
}

/** Consumes `queue` raw (no ack) and collects what arrives. */
async function rawConsumer(env: Env, queue: string): Promise<Delivery[]> {
  const ch = await (await env.source()).open();
  const got: Delivery[] = [];
  await ch.consume(queue, (msg) => msg && got.push(msg), { noAck: true });
  return got;
}

/** Defines the suite for the environments `factory` makes. */
export function conformanceSuite(factory: EnvFactory): void {
  let env: Env;
  beforeEach(async () => {
    env = await factory();
  });
  afterEach(async () => {
    await env.close();
  });

  async function calculator(overrides: Partial<CalculatorHandlers> = {}) {
    await serveCalculator(env.server(), { ...handlers, ...overrides }, env.at("Calculator"));
    const client = await env.client();
    return { calc: new CalculatorClient(client), client };
  }

  describe("calls", () => {
    it("returns the validated result through the generated stubs", async () => {
      const { calc } = await calculator();
      expect(await calc.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
      expect(await calc.centroid({ points: [{ x: 0, y: 0 }, { x: 2, y: 4 }] })).toEqual({ x: 1, y: 2 });
      const many = await Promise.all(Array.from({ length: 20 }, (_, i) => calc.add({ a: i, b: i })));
      expect(many.map((r) => r.sum)).toEqual(Array.from({ length: 20 }, (_, i) => 2 * i));
    });

    it("gives the handler its context: service, method, correlation id, headers, deadline, redelivered", async () => {
      const seen: HandlerContext<any>[] = [];
      const { calc } = await calculator({ add: ({ a, b }, ctx) => (seen.push(ctx), { sum: a + b }) });
      const before = Date.now();
      await calc.add({ a: 1, b: 1 }, { timeoutMs: 3000, headers: { tenant: "t-1" } });
      const ctx = seen[0]!;
      expect({ service: ctx.service, method: ctx.method, redelivered: ctx.redelivered, tenant: ctx.headers.tenant }).toEqual({ service: "Calculator", method: "add", redelivered: false, tenant: "t-1" });
      expect(ctx.correlationId).toMatch(/^[0-9a-f-]{36}\.[0-9a-z]+$/);
      expect(ctx.deadline).toBeGreaterThanOrEqual(before + 3000);
      expect(ctx.deadline).toBeLessThanOrEqual(Date.now() + 3000);
      expect(ctx.signal.aborted).toBe(false);
    });

    it("carries a request's traceparent on to the calls its handler makes", async () => {
      const traced: unknown[] = [];
      await serveFibonacci(env.server(), { fib: ({ n }, ctx) => (traced.push(ctx.headers.traceparent), { value: n }) }, env.at("Fibonacci"));
      const fib = new FibonacciClient(await env.client());
      const { calc } = await calculator({ add: async ({ a, b }) => ({ sum: (await fib.fib({ n: a })).value + b }) });
      expect(await calc.add({ a: 5, b: 1 }, { headers: { traceparent: TRACEPARENT } })).toEqual({ sum: 6 });
      expect(await calc.add({ a: 7, b: 1 })).toEqual({ sum: 8 });
      expect(traced).toEqual([TRACEPARENT, undefined]);
    });

    it("delivers a declared error with its typed data", async () => {
      const { calc } = await calculator();
      const err = await rejection(calc.divide({ dividend: 7, divisor: 0 }));
      expect(isDeclaredError(Calculator.methods.divide, err)).toBe(true);
      expect({ code: err.code, data: err.data, service: err.service, method: err.method }).toEqual({ code: "division_by_zero", data: { dividend: 7 }, service: "Calculator", method: "divide" });
      expect((await rejection(calc.add({ a: Number.MAX_VALUE, b: Number.MAX_VALUE }))).code).toBe("overflow");
    });

    it("maps an unexpected handler failure to internal, without its text", async () => {
      const { calc } = await calculator({ add: () => { throw new Error("secret detail"); } });
      const err = await rejection(calc.add({ a: 1, b: 1 }));
      expect(err.code).toBe("internal");
      expect(err.message).not.toContain("secret");
      expect(isDeclaredError(Calculator.methods.add, err)).toBe(false);
    });

    it("answers unknown_method when the server's contract lacks the method", async () => {
      // Fibonacci served on Calculator's queue: a server with an older contract, in effect.
      await serveFibonacci(env.server(), { fib: ({ n }) => ({ value: n }) }, env.at("Calculator"));
      const calc = new CalculatorClient(await env.client());
      const err = await rejection(calc.add({ a: 1, b: 1 }));
      expect([err.code, err.service, err.method]).toEqual(["unknown_method", "Calculator", "add"]);
    });

    it("passes on unimplemented from a handler that is not written yet", async () => {
      const { calc } = await calculator({ centroid: () => { throw new RpcError("unimplemented", "later"); } });
      expect((await rejection(calc.centroid({ points: [{ x: 1, y: 1 }] }))).code).toBe("unimplemented");
    });

    it("answers a raw request that is not JSON with bad_message, and one from another contract line with incompatible_version", async () => {
      let runs = 0;
      await serveCalculator(env.server(), { ...handlers, add: ({ a, b }) => (runs++, { sum: a + b }) }, env.at("Calculator"));
      const raw = await rawCaller(env);
      raw.send(env.at("Calculator").queue, "{not json", { type: "add" });
      raw.send(env.at("Calculator").queue, JSON.stringify({ a: 1, b: 2 }), { type: "add", headers: { [DEADLINE_HEADER]: Date.now() + 5000, [CONTRACT_VERSION_HEADER]: "2.0.0" } });
      await until(() => raw.replies.length === 2, "two replies");
      const codes = raw.replies.map((r) => [r.properties.type, (JSON.parse(r.content.toString()) as { code: string }).code]);
      expect(codes.sort()).toEqual([[ERROR_TYPE, "bad_message"], [ERROR_TYPE, "incompatible_version"]]);
      expect(runs).toBe(0);
    });

    it("fails with no_server when no queue exists for the service, and runs nothing", async () => {
      const fib = new FibonacciClient(await env.client()); // nobody serves Fibonacci in this test
      const err = await rejection(fib.fib({ n: 3 }, { timeoutMs: 4000 }));
      expect(err.code).toBe("no_server");
    });
  });

  describe("validation at both ends", () => {
    it("the caller refuses an invalid request before sending it (invalid_request, side client)", async () => {
      let runs = 0;
      const { calc, client } = await calculator({ add: ({ a, b }) => (runs++, { sum: a + b }) });
      const err = await rejection(calc.add({ a: "1" as unknown as number, b: 2 }));
      expect(err).toBeInstanceOf(ValidationError);
      expect([err.code, (err as ValidationError).side, (err as ValidationError).issues.map((i) => i.path)]).toEqual(["invalid_request", "client", ["/a"]]);
      expect((await rejection(calc.add({ a: 1, b: 2 }, { timeoutMs: 0 }))).code).toBe("invalid_request");
      expect(await calc.add({ a: 1, b: 2 })).toEqual({ sum: 3 }); // a later call reaches the handler: the refused ones did not
      expect([runs, client.pendingCount]).toEqual([1, 0]);
    });

    it("the server refuses an invalid request (invalid_request with the failing paths)", async () => {
      let runs = 0;
      await serveCalculator(env.server(), { ...handlers, add: ({ a, b }) => (runs++, { sum: a + b }) }, env.at("Calculator"));
      const raw = await rawCaller(env);
      raw.send(env.at("Calculator").queue, JSON.stringify({ a: "one", b: 2 }), { type: "add" });
      await until(() => raw.replies.length === 1, "the reply");
      const reply = raw.replies[0]!;
      const body = JSON.parse(reply.content.toString()) as { code: string; data: { issues: { path: string }[] } };
      expect([reply.properties.type, reply.properties.correlationId, body.code, body.data.issues.map((i) => i.path)]).toEqual([ERROR_TYPE, "raw-1", "invalid_request", ["/a"]]);
      expect(runs).toBe(0);
    });

    it("the server refuses a handler's invalid result (invalid_response, side server)", async () => {
      const { calc } = await calculator({ add: () => ({ sum: "three" }) as unknown as { sum: number } });
      const err = await rejection(calc.add({ a: 1, b: 2 }));
      expect([err.code, (err as ValidationError).side, (err as ValidationError).issues.map((i) => i.path)]).toEqual(["invalid_response", "server", ["/sum"]]);
    });

    it("the server refuses a declared error whose data breaks the contract (invalid_response)", async () => {
      const { calc } = await calculator({ divide: (_req, ctx) => { throw ctx.error("division_by_zero", { dividend: "x" } as unknown as { dividend: number }); } });
      expect((await rejection(calc.divide({ dividend: 1, divisor: 0 }))).code).toBe("invalid_response");
    });

    it("the caller refuses a reply that breaks the contract or cannot be read (invalid_response, side client)", async () => {
      await rawServer(env, env.at("Calculator").queue, { type: RESULT_TYPE, body: JSON.stringify({ sum: "three" }) });
      await rawServer(env, env.at("Fibonacci").queue, { type: RESULT_TYPE, body: "{not json" });
      const calc = new CalculatorClient(await env.client());
      const err = await rejection(calc.add({ a: 1, b: 2 }));
      expect([err.code, (err as ValidationError).side, (err as ValidationError).issues.map((i) => i.path)]).toEqual(["invalid_response", "client", ["/sum"]]);
      const fib = new FibonacciClient(await env.client());
      expect((await rejection(fib.fib({ n: 1 }))).code).toBe("invalid_response");
    });

    it("the caller refuses an error reply without a code, or a reply of an unknown type (invalid_response)", async () => {
      await rawServer(env, env.at("Calculator").queue, { type: ERROR_TYPE, body: JSON.stringify({ message: "no code" }) });
      await rawServer(env, env.at("Fibonacci").queue, { type: "surprise", body: JSON.stringify({ value: 1 }) });
      const calc = new CalculatorClient(await env.client());
      expect((await rejection(calc.add({ a: 1, b: 2 }))).code).toBe("invalid_response");
      const fib = new FibonacciClient(await env.client());
      expect((await rejection(fib.fib({ n: 1 }))).code).toBe("invalid_response");
    });
  });

  describe("deadlines and cancel", () => {
    it("times out at the deadline; the handler saw the deadline and its signal fired; the late reply is ignored", async () => {
      const seen: { deadline: number | undefined; aborted: boolean; reason: unknown }[] = [];
      const { calc, client } = await calculator({
        add: async ({ a, b }, ctx) => {
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          seen.push({ deadline: ctx.deadline, aborted: ctx.signal.aborted, reason: (ctx.signal.reason as RpcError).code });
          // The signal and the caller's timer fire at the same deadline: answer clearly after it, not in a race with it.
          await new Promise((resolve) => setTimeout(resolve, 50));
          return { sum: a + b };
        },
      });
      const before = Date.now();
      const err = await rejection(calc.add({ a: 1, b: 2 }, { timeoutMs: 150 }));
      expect([err.code, client.pendingCount]).toEqual(["timeout", 0]);
      await until(() => seen.length === 1, "the handler to see its signal fire");
      expect(seen[0]).toMatchObject({ aborted: true, reason: "timeout" });
      expect(seen[0]!.deadline).toBeGreaterThanOrEqual(before + 150);
    });

    it("cancels a call through its AbortSignal, and every pending call when the client closes", async () => {
      const started = { n: 0 };
      const g = gate(env);
      const { calc, client } = await calculator({ add: async ({ a, b }) => (started.n++, await g.wait, { sum: a + b }) });
      const controller = new AbortController();
      const aborted = rejection(calc.add({ a: 1, b: 1 }, { signal: controller.signal }));
      const pending = rejection(calc.add({ a: 2, b: 2 }));
      await until(() => started.n === 2, "both calls in their handlers");
      controller.abort();
      expect((await aborted).code).toBe("canceled");
      expect(client.pendingCount).toBe(1);
      await client.close();
      expect((await pending).code).toBe("canceled");
      expect((await rejection(calc.add({ a: 3, b: 3 }))).code).toBe("canceled");
    });
  });

  describe("lost connections and retries", () => {
    it("fails a non-idempotent call in flight with connection_lost, then serves new calls", async () => {
      const started = { n: 0 };
      const g = gate(env);
      await servePoints(env.server(), { addPoint: async ({ x, y }) => { if (x !== 7) { started.n++; await g.wait; } return { count: 1, centroid: { x, y } }; } }, env.at("Points"));
      const client = await env.client();
      const points = new PointsClient(client);
      const inFlight = rejection(points.addPoint({ x: 1, y: 0 }, { timeoutMs: 10_000 }));
      await until(() => started.n === 1, "the call in its handler");
      await env.disconnect(client);
      expect((await inFlight).code).toBe("connection_lost");
      expect(await points.addPoint({ x: 7, y: 8 }, { timeoutMs: 10_000 })).toEqual({ count: 1, centroid: { x: 7, y: 8 } });
      expect(started.n).toBe(1); // not retried: add_point is not idempotent
    });

    it("retries an idempotent call after connection_lost, within its deadline", async () => {
      let runs = 0;
      const g = gate(env);
      // The first run never answers while the test runs: the caller's answer can only come from the retry.
      const { calc, client } = await calculator({ add: async ({ a, b }) => { if (++runs === 1) await g.wait; return { sum: a + b }; } });
      const call = calc.add({ a: 20, b: 22 }, { timeoutMs: 10_000 });
      await until(() => runs === 1, "the first attempt in its handler");
      await env.disconnect(client);
      expect(await call).toEqual({ sum: 42 });
      expect(runs).toBe(2);
    });
    it("a server whose connection is lost mid-handler gets the request again, redelivered, takes it over rather than run it twice, and the caller gets the reply", async () => {
      const runs: boolean[] = [];
      const g = gate(env);
      const server = env.server();
      await serveCalculator(server, { ...handlers, add: async ({ a, b }, ctx) => { runs.push(ctx.redelivered); await g.wait; return { sum: a + b }; } }, env.at("Calculator"));
      const calc = new CalculatorClient(await env.client());
      const call = calc.add({ a: 1, b: 2 }, { timeoutMs: 10_000 });
      await until(() => runs.length === 1, "the first run in its handler");
      await env.disconnect(server);
      // The broker redelivers the request once the connection is back; the handler still running in this process answers it.
      await until(() => server.health().ok, "the server consuming again");
      await new Promise((r) => setTimeout(r, 200)); // the redelivered copy arrives meanwhile
      g.open();
      expect(await call).toEqual({ sum: 3 });
      expect(runs).toEqual([false]);
    });
  });

  describe("events", () => {
    it("a group gets each event once, shared among its members; every group gets every event", async () => {
      const got: string[] = [];
      const sub = (bus: ReturnType<Env["events"]>, who: string, group: string) =>
        new OrdersSubscriber(bus).onOrderPlaced((o) => void got.push(`${who}:${o.orderId}`), { group });
      await sub(env.events(), "billing-1", "billing");
      await sub(env.events(), "billing-2", "billing");
      await sub(env.events(), "shipping", "shipping");
      const publisher = new OrdersPublisher(env.events());
      for (let i = 0; i < 6; i++) await publisher.publishOrderPlaced(order(`o-${i}`));
      await until(() => got.length === 12, "12 deliveries");
      const billing = got.filter((g) => g.startsWith("billing")).map((g) => g.split(":")[1]).sort();
      const shipping = got.filter((g) => g.startsWith("shipping")).map((g) => g.split(":")[1]).sort();
      const ids = Array.from({ length: 6 }, (_, i) => `o-${i}`);
      expect([billing, shipping]).toEqual([ids, ids]);
      expect(got.some((g) => g.startsWith("billing-1:"))).toBe(true);
      expect(got.some((g) => g.startsWith("billing-2:"))).toBe(true);
    });

    it("every broadcast subscriber gets every event its binding matches", async () => {
      const got: string[] = [];
      const ctxs: EventContext[] = [];
      await new OrdersSubscriber(env.events()).onOrderPlaced((o, ctx) => void (got.push(`all:${o.orderId}`), ctxs.push(ctx)));
      await new OrdersSubscriber(env.events()).onOrderPlaced((o) => void got.push(`all-2:${o.orderId}`));
      await new OrdersSubscriber(env.events()).onOrderPlaced((o) => void got.push(`eu:${o.orderId}`), { bindingKey: "orders.eu.*" });
      const publisher = new OrdersPublisher(env.events());
      await publisher.publishOrderPlaced(order("o-1", "eu"), { messageId: "m-1", headers: { tenant: "t-1" } });
      await publisher.publishOrderPlaced(order("o-2", "us"));
      await until(() => got.length === 5, "5 deliveries");
      expect(got.sort()).toEqual(["all-2:o-1", "all-2:o-2", "all:o-1", "all:o-2", "eu:o-1"]);
      expect(ctxs.find((c) => c.messageId === "m-1")).toMatchObject({ service: "Orders", event: "order_placed", routingKey: "orders.eu.placed", attempt: 1, redelivered: false, headers: { tenant: "t-1" } });
    });

    it("refuses an invalid payload before publishing (invalid_event)", async () => {
      const got: unknown[] = [];
      await new OrdersSubscriber(env.events()).onOrderPlaced((o) => void got.push(o), { group: "audit" });
      const publisher = new OrdersPublisher(env.events());
      const err = await rejection(publisher.publishOrderPlaced({ orderId: "o-1", region: "mars", items: [] } as unknown as OrderPlacedEvent));
      expect(err.code).toBe("invalid_event");
      await publisher.publishOrderPlaced(order("o-2"));
      await until(() => got.length === 1, "the valid event");
      expect(got).toEqual([order("o-2")]);
    });

    it("fails with setup_failed when the exchange exists as another kind than the contract's", async () => {
      const exchange = `${env.at("Orders").queue}.exchange`;
      const ch = await (await env.source()).open();
      await ch.declareExchange(exchange, "fanout", { durable: false }); // the contract says topic
      env.exchangeCreated(exchange);
      const publisher = new OrdersPublisher(env.events({ exchanges: { Orders: exchange } }));
      const err = await rejection(publisher.publishOrderPlaced(order("o-1")));
      expect(err.code).toBe("setup_failed");
      expect(err.message).toContain("fanout");
    });

    it("retries a failing handler, then dead-letters the event with the reason", async () => {
      const attempts: number[] = [];
      const sub = await new OrdersSubscriber(env.events()).onOrderPlaced((_o, ctx) => { attempts.push(ctx.attempt); throw new Error("cannot bill"); }, { group: "billing", maxAttempts: 3, retryDelayMs: 1 });
      const dead = await rawConsumer(env, sub.deadLetterQueue);
      await new OrdersPublisher(env.events()).publishOrderPlaced(order("o-1"));
      await until(() => dead.length === 1, "the dead letter");
      const headers = dead[0]!.properties.headers as Record<string, unknown>;
      expect([attempts, JSON.parse(dead[0]!.content.toString()), headers[DEAD_REASON_HEADER], headers[ATTEMPT_HEADER]]).toEqual([[1, 2, 3], order("o-1"), "handler_failed", 3]);
    });
  });
}
