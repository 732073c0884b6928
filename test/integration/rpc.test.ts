import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { ConsumeMessage } from "amqplib";
import { describe, expect, expectTypeOf, it } from "vitest";
import { Calculator, CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { FibonacciClient, serveFibonacci } from "../../generated/fibonacci/index.js";
import {
  DIRECT_REPLY_TO,
  RESULT_TYPE,
  ValidationError,
  defineService,
  isDeclaredError,
  method,
  type ClientOptions,
  type Connection,
  type HandlerContext,
  type ServerOptions,
} from "../../src/index.js";
import { rejection } from "../helpers/outcome.js";
import { deleteAfter, onTeardown, openConnection, recordingLogger, sleep, uniqueName, until } from "../helpers/broker.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";

const handlers: CalculatorHandlers = calculatorHandlers;

interface Setup {
  conn: Connection;
  queue: string;
  calc: CalculatorClient;
  client: Awaited<ReturnType<Connection["client"]>>;
  logs: string[];
}

async function setup(
  overrides: Partial<CalculatorHandlers> = {},
  serverOptions: ServerOptions = {},
  clientOptions: ClientOptions = {},
): Promise<Setup> {
  const logger = recordingLogger();
  const conn = await openConnection(uniqueName("conn"), logger);
  const queue = deleteAfter(uniqueName("calc"));
  const server = conn.server(serverOptions);
  await serveCalculator(server, { ...handlers, ...overrides }, { queue });
  onTeardown(() => server.close());
  const client = await conn.client({ ...clientOptions, queues: { Calculator: queue } });
  onTeardown(() => client.close());
  return { conn, queue, calc: new CalculatorClient(client), client, logs: logger.lines };
}

/** Publishes a raw request and resolves with the reply (type and decoded body). */
async function rawCall(
  conn: Connection,
  queue: string,
  content: Buffer,
  props: Record<string, unknown>,
): Promise<{ type: string | undefined; body: any; correlationId: string | undefined }> {
  const ch = await conn.channel();
  onTeardown(() => ch.close());
  let received!: (msg: ConsumeMessage) => void;
  const reply = new Promise<ConsumeMessage>((resolve) => (received = resolve));
  // Resolves on consume-ok: the direct reply-to consumer exists before the request goes out.
  await ch.consume(DIRECT_REPLY_TO, (msg) => msg && received(msg), { noAck: true });
  ch.publish("", queue, content, { replyTo: DIRECT_REPLY_TO, correlationId: "raw-1", ...props });
  let timer: NodeJS.Timeout | undefined;
  const msg = await Promise.race([
    reply,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply from ${queue} within 5 s`)), 5000))),
  ]).finally(() => clearTimeout(timer));
  return { type: msg.properties.type, body: JSON.parse(msg.content.toString()), correlationId: msg.properties.correlationId };
}


describe("round trip through generated stubs", () => {
  it("returns the validated result", async () => {
    const { calc } = await setup();
    await expect(calc.add({ a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
    await expect(calc.centroid({ points: [{ x: 0, y: 0 }, { x: 2, y: 4 }] })).resolves.toEqual({ x: 1, y: 2 });
    const many = await Promise.all(Array.from({ length: 100 }, (_, i) => calc.add({ a: i, b: i })));
    expect(many.map((r) => r.sum)).toEqual(Array.from({ length: 100 }, (_, i) => 2 * i));
  });

  it("works with an exclusive callback queue instead of direct reply-to", async () => {
    const { calc, conn } = await setup({}, {}, { replyQueue: "exclusive" });
    await expect(calc.divide({ dividend: 9, divisor: 3 })).resolves.toEqual({ quotient: 3 });
    // What the request asked for, seen on the wire: a plain amqplib consumer stands in for the server and
    // answers to the request's reply_to. Direct reply-to would have passed the round trip above just as well.
    const queue = deleteAfter(uniqueName("raw-calc"));
    const ch = await conn.channel();
    onTeardown(() => ch.close());
    await ch.assertQueue(queue);
    const replyTos: unknown[] = [];
    await ch.consume(queue, (msg) => {
      if (msg === null) return;
      replyTos.push(msg.properties.replyTo);
      ch.publish("", String(msg.properties.replyTo), Buffer.from(JSON.stringify({ quotient: 4 })), {
        correlationId: msg.properties.correlationId,
        type: RESULT_TYPE,
        contentType: "application/json",
      });
      ch.ack(msg);
    });
    const client = await conn.client({ replyQueue: "exclusive", queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).divide({ dividend: 8, divisor: 2 }, { timeoutMs: 5000 })).resolves.toEqual({ quotient: 4 });
    expect(replyTos).toHaveLength(1);
    expect(replyTos[0]).toMatch(/^amq\.gen-/); // a server-named queue of the client's own
  });

  it("delivers a declared error the caller can switch on, with typed data", async () => {
    const { calc } = await setup();
    const err = await rejection(calc.divide({ dividend: 7, divisor: 0 }));
    expect(isDeclaredError(Calculator.methods.divide, err)).toBe(true);
    if (!isDeclaredError(Calculator.methods.divide, err)) return;
    expectTypeOf(err.code).toEqualTypeOf<"division_by_zero">();
    switch (err.code) {
      case "division_by_zero":
        expectTypeOf(err.data).toEqualTypeOf<{ dividend: number }>();
        expect(err.data).toEqual({ dividend: 7 });
        break;
      default:
        throw new Error(`unexpected code ${String(err.code)}`); // the switch must not skip the data check
    }
    const overflow = await rejection(calc.add({ a: Number.MAX_VALUE, b: Number.MAX_VALUE }));
    expect(overflow.code).toBe("overflow");
  });

  it("gives handlers their context", async () => {
    let seen: HandlerContext<never> | undefined;
    // Read in the handler: an "abort" listener added to a signal that is already aborted never runs.
    let abortedInHandler: boolean | undefined;
    let aborted = false;
    const { calc } = await setup({
      summarize: async ({ statistic, values }, ctx) => {
        seen = ctx as HandlerContext<never>;
        abortedInHandler = ctx.signal.aborted;
        ctx.signal.addEventListener("abort", () => (aborted = true));
        return { statistic, value: values[0]!, count: values.length, label: null };
      },
    });
    const before = Date.now();
    await calc.summarize({ values: [5], statistic: "min" }, { timeoutMs: 2000, headers: { traceparent: "00-abc-def-01" } });
    expect(seen?.method).toBe("summarize");
    expect(seen?.service).toBe("Calculator");
    expect(seen?.correlationId).toMatch(/^[0-9a-f-]{36}\.[0-9a-z]+$/);
    expect(seen?.headers.traceparent).toBe("00-abc-def-01");
    expect(seen?.redelivered).toBe(false);
    expect(seen?.deadline).toBeGreaterThanOrEqual(before + 2000);
    expect(abortedInHandler).toBe(false); // 2 s of budget left: the signal must not have fired yet
    expect(aborted).toBe(false);
  });
});

describe("validation at both ends", () => {
  it("refuses an invalid request before publishing anything", async () => {
    const { calc, conn, queue } = await setup();
    const ch = await conn.channel();
    onTeardown(() => ch.close());
    const bare = deleteAfter(uniqueName("bare"));
    await ch.assertQueue(bare);
    const client = await conn.client({ queues: { Calculator: bare }, waitForServer: true });
    onTeardown(() => client.close());
    const bareCalc = new CalculatorClient(client);
    const err = await rejection(bareCalc.add({ a: 1, b: "2" } as never));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.code).toBe("invalid_request");
    expect((err as ValidationError).side).toBe("client");
    expect((err as ValidationError).issues).toEqual([{ path: "/b", message: "must be number" }]);
    // A valid call through the same client goes out after the refused one, on the same channel: once it is
    // in the queue, anything published before it is there too. So exactly one message means the refused
    // request was never sent (and a count of 0 cannot pass by looking too early).
    const valid = bareCalc.add({ a: 1, b: 2 }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    await until(async () => (await ch.checkQueue(bare)).messageCount > 0, "the valid request in the queue");
    expect((await ch.checkQueue(bare)).messageCount).toBe(1);
    await client.close();
    expect(await valid).toMatchObject({ code: "canceled" });
    const extra = await rejection(calc.add({ a: 1, b: 2, c: 3 } as never));
    expect((extra as ValidationError).issues).toEqual([{ path: "/c", message: "is not allowed" }]);
    void queue;
  });

  it("the server refuses an invalid request with the failing paths", async () => {
    const { conn, queue } = await setup();
    const reply = await rawCall(conn, queue, Buffer.from(JSON.stringify({ a: "x" })), { type: "add", contentType: "application/json" });
    expect(reply.type).toBe("error");
    expect(reply.correlationId).toBe("raw-1");
    expect(reply.body.code).toBe("invalid_request");
    expect(reply.body.data.issues).toEqual(
      expect.arrayContaining([
        { path: "/a", message: "must be number" },
        { path: "/b", message: "is required" },
      ]),
    );
  });

  it("a handler returning the wrong shape yields invalid_response, logged on the server", async () => {
    const { calc, logs } = await setup({ add: () => ({ total: 3 }) as never });
    const err = await rejection(calc.add({ a: 1, b: 2 }));
    expect(err.code).toBe("invalid_response");
    expect((err as ValidationError).side).toBe("server");
    expect(logs.join("\n")).toContain("Calculator.add: handler returned an invalid response");
  });

  it("a declared error with data of the wrong shape becomes invalid_response", async () => {
    const { calc } = await setup({ divide: (_r, ctx) => { throw ctx.error("division_by_zero", { dividend: "no" } as never); } });
    const err = await rejection(calc.divide({ dividend: 1, divisor: 0 }));
    expect(err.code).toBe("invalid_response");
  });
});

describe("server error handling", () => {
  it("maps an unexpected exception to internal without leaking its text", async () => {
    const { calc, logs } = await setup({ add: () => { throw new Error("secret database password"); } });
    const err = await rejection(calc.add({ a: 1, b: 2 }));
    expect(err.code).toBe("internal");
    expect(err.message).not.toContain("secret");
    expect(JSON.stringify(err.data ?? null)).not.toContain("secret");
    expect(logs.join("\n")).toContain("secret database password");
  });

  it("answers internal, not the code, when a call the handler made failed (no_server), and logs one line saying so, without a stack", async () => {
    let nested!: CalculatorClient;
    const { conn, calc, logs } = await setup({ add: (req) => nested.add(req) });
    const inner = await conn.client({ queues: { Calculator: uniqueName("nobody") } });
    onTeardown(() => inner.close());
    nested = new CalculatorClient(inner);
    const err = await rejection(calc.add({ a: 1, b: 2 }));
    expect(err.code).toBe("internal");
    expect(logs).toEqual([expect.stringMatching(/: a call or publish the handler made failed \(no_server: .+\); answering internal \(correlation_id [^)]+\)$/)]);
  });

  it("answers internal, not invalid_request, when the request of a call the handler made is invalid: the caller's own request was fine", async () => {
    let nested!: CalculatorClient;
    const { conn, calc, logs } = await setup({ divide: () => nested.add({ a: "one" as never, b: 2 }).then((r) => ({ quotient: r.sum })) });
    nested = new CalculatorClient(await conn.client());
    const err = await rejection(calc.divide({ dividend: 1, divisor: 1 }));
    expect(err.code).toBe("internal");
    expect(logs).toEqual([expect.stringMatching(/Calculator\.divide: a call or publish the handler made failed \(invalid_request: Calculator\.add: .+\); answering internal \(correlation_id [^)]+\)$/)]);
  });

  it("exposes the internal message only when enabled", async () => {
    const { calc } = await setup({ add: () => { throw new Error("visible detail"); } }, { exposeInternalErrors: true });
    const err = await rejection(calc.add({ a: 1, b: 2 }));
    expect(err.code).toBe("internal");
    expect(JSON.stringify(err.data)).toContain("visible detail");
  });

  it("answers bad_message and unknown_method to malformed raw requests, and the same server goes on serving", async () => {
    const { conn, queue, calc } = await setup();
    const ch = await conn.channel();
    onTeardown(() => ch.close());
    // One server on the queue: every answer below, the good ones after the bad messages included, comes from it.
    expect((await ch.checkQueue(queue)).consumerCount).toBe(1);
    await expect(calc.add({ a: 1, b: 1 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 2 });
    const notJson = await rawCall(conn, queue, Buffer.from("{nope"), { type: "add", contentType: "application/json" });
    expect(notJson.body.code).toBe("bad_message");
    const wrongType = await rawCall(conn, queue, Buffer.from("{}"), { type: "add", contentType: "text/plain" });
    expect(wrongType.body.code).toBe("bad_message");
    await expect(calc.add({ a: 2, b: 1 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 3 });
    const unknown = await rawCall(conn, queue, Buffer.from("{}"), { type: "multiply", contentType: "application/json" });
    expect(unknown.body.code).toBe("unknown_method");
    // Still serving: the same registration, still the queue's only consumer, answers calls made after the bad messages.
    expect((await ch.checkQueue(queue)).consumerCount).toBe(1);
    await expect(calc.add({ a: 2, b: 2 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 4 });
    await expect(Promise.all(Array.from({ length: 20 }, (_, i) => calc.add({ a: i, b: 0 }, { timeoutMs: 2000 })))).resolves.toHaveLength(20);
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
  });

  it("acks and drops requests without reply_to or past their deadline, without running the handler", async () => {
    let runs = 0;
    const { conn, queue, calc, logs } = await setup({ add: ({ a, b }) => { runs++; return { sum: a + b }; } });
    const ch = await conn.confirmChannel();
    onTeardown(() => ch.close());
    const body = Buffer.from(JSON.stringify({ a: 1, b: 2 }));
    ch.publish("", queue, body, { type: "add", contentType: "application/json", correlationId: "x" });
    ch.publish("", queue, body, {
      type: "add", contentType: "application/json", correlationId: "y", replyTo: "nowhere",
      headers: { "x-warren-deadline": Date.now() - 1000 },
    });
    // Both are in the queue before the call below is made; the queue's only consumer gets them first, in
    // order, and (the handler being synchronous) has run or dropped them by the time it answers the call.
    await ch.waitForConfirms();
    await expect(calc.add({ a: 1, b: 1 })).resolves.toEqual({ sum: 2 });
    expect(runs).toBe(1);
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
    expect(logs.join("\n")).toContain("without reply_to");
  });
});

describe("trace context", () => {
  const TP1 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const TP2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

  it("a handler's calls carry the traceparent and tracestate of the request it handles, each request its own", async () => {
    const conn = await openConnection();
    const front = deleteAfter(uniqueName("front"));
    const back = deleteAfter(uniqueName("back"));
    const seen: { a: number; traceparent: unknown; tracestate: unknown }[] = [];
    const server = conn.server();
    onTeardown(() => server.close());
    const inner = await conn.client({ queues: { Calculator: back } });
    onTeardown(() => inner.close());
    const backCalc = new CalculatorClient(inner);
    // The front service answers by calling the back one, after an await (the context must survive it).
    await serveCalculator(server, { ...handlers, add: async (req) => { await sleep(5); return backCalc.add(req); } }, { queue: front });
    await serveCalculator(server, { ...handlers, add: ({ a, b }, ctx) => { seen.push({ a, traceparent: ctx.headers.traceparent, tracestate: ctx.headers.tracestate }); return { sum: a + b }; } }, { queue: back });
    const outer = await conn.client({ queues: { Calculator: front } });
    onTeardown(() => outer.close());
    const calc = new CalculatorClient(outer);
    await Promise.all([
      calc.add({ a: 1, b: 0 }, { headers: { traceparent: TP1, tracestate: "vendor=one" } }),
      calc.add({ a: 2, b: 0 }, { headers: { traceparent: TP2 } }),
      calc.add({ a: 3, b: 0 }),
      calc.add({ a: 4, b: 0 }, { headers: { traceparent: "not-a-traceparent" } }),
    ]);
    expect(seen.sort((x, y) => x.a - y.a)).toEqual([
      { a: 1, traceparent: TP1, tracestate: "vendor=one" },
      { a: 2, traceparent: TP2, tracestate: undefined },
      { a: 3, traceparent: undefined, tracestate: undefined },
      { a: 4, traceparent: undefined, tracestate: undefined },
    ]);
  });

  it("a call's own traceparent wins over the handler's", async () => {
    const conn = await openConnection();
    const front = deleteAfter(uniqueName("front"));
    const back = deleteAfter(uniqueName("back"));
    const seen: unknown[] = [];
    const server = conn.server();
    onTeardown(() => server.close());
    const inner = await conn.client({ queues: { Calculator: back } });
    onTeardown(() => inner.close());
    const backCalc = new CalculatorClient(inner);
    await serveCalculator(server, { ...handlers, add: (req) => backCalc.add(req, { headers: { traceparent: TP2 } }) }, { queue: front });
    await serveCalculator(server, { ...handlers, add: ({ a, b }, ctx) => { seen.push(ctx.headers.traceparent); return { sum: a + b }; } }, { queue: back });
    const outer = await conn.client({ queues: { Calculator: front } });
    onTeardown(() => outer.close());
    await new CalculatorClient(outer).add({ a: 1, b: 1 }, { headers: { traceparent: TP1 } });
    expect(seen).toEqual([TP2]);
  });
});

describe("every caller outcome", () => {
  it("times out after the per-call budget and ignores the late reply", async () => {
    let lateReplySent!: () => void;
    const lateReply = new Promise<void>((r) => (lateReplySent = r));
    const { calc, client } = await setup({
      add: async ({ a, b }) => {
        if (a === 1) {
          await sleep(400); // well past the caller's 100 ms
          lateReplySent();
        } else {
          await lateReply; // answers only after the late reply has gone out on the same channel
          await sleep(20);
        }
        return { sum: a + b };
      },
    });
    const err = await rejection(calc.add({ a: 1, b: 2 }, { timeoutMs: 100 }));
    expect(err.code).toBe("timeout");
    expect(err.message).toContain("no reply within 100 ms");
    expect(client.pendingCount).toBe(0);
    // Made while the timed-out call's handler still runs: the late reply ({ sum: 3 }) reaches the client while
    // this call waits for its own, which comes after it. Only its correlation id tells the two apart.
    await expect(calc.add({ a: 2, b: 2 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 4 });
    expect(client.pendingCount).toBe(0);
  });

  it("falls back to the client's default timeout when neither call nor contract sets one", async () => {
    const { calc } = await setup({ divide: async () => { await sleep(1000); return { quotient: 1 }; } }, {}, { timeoutMs: 150 });
    const started = Date.now();
    const err = await rejection(calc.divide({ dividend: 1, divisor: 1 }));
    expect(err.code).toBe("timeout");
    expect(err.message).toContain("no reply within 150 ms");
    // At the client's 150 ms, well before the handler's 1 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(800);
  });

  it("cancels through an AbortSignal", async () => {
    const { calc, client } = await setup({ add: async ({ a, b }) => { await sleep(300); return { sum: a + b }; } });
    const controller = new AbortController();
    const call = calc.add({ a: 1, b: 2 }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    expect((await rejection(call)).code).toBe("canceled");
    expect(client.pendingCount).toBe(0);
    expect((await rejection(calc.add({ a: 1, b: 2 }, { signal: AbortSignal.abort() }))).code).toBe("canceled");
  });

  it("fails fast with no_server when no queue exists, long before the timeout", async () => {
    const conn = await openConnection();
    const client = await conn.client({ queues: { Calculator: uniqueName("missing") } });
    onTeardown(() => client.close());
    const started = Date.now();
    const err = await rejection(new CalculatorClient(client).add({ a: 1, b: 2 }, { timeoutMs: 20_000 }));
    expect(err.code).toBe("no_server");
    // no_server is the broker handing the unroutable request back (mandatory flag): one round trip, a few
    // milliseconds. 2 s is a tenth of the 20 s timeout, so an answer that waited for the deadline, or for any
    // good part of it, fails here; a bound at the timeout itself could never fail, the timeout ends the call then.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(client.pendingCount).toBe(0);
  });

  it("client.close() rejects pending calls with canceled", async () => {
    let started = 0;
    const { calc, client } = await setup({ add: async ({ a, b }) => { started++; await sleep(500); return { sum: a + b }; } });
    const call = rejection(calc.add({ a: 1, b: 2 }));
    await until(() => started === 1, "the call to reach its handler"); // in flight: published, no reply yet
    expect(client.pendingCount).toBe(1);
    await client.close();
    const err = await call;
    expect(err.code).toBe("canceled");
    expect(err.message).toContain("client was closed");
    expect((await rejection(calc.add({ a: 1, b: 2 }))).code).toBe("canceled");
  });
});

describe("serving", () => {
  it("server.close() lets in-flight handlers finish and reply", async () => {
    const conn = await openConnection();
    const queue = deleteAfter(uniqueName("graceful"));
    const server = conn.server();
    let started = 0;
    let finished = 0;
    // Both handlers wait on one gate, opened after close() has begun: they finish in the same
    // turn of the event loop, so their acks are batched right as the registration closes.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    await serveCalculator(server, { ...handlers, add: async ({ a, b }) => { started++; await gate; finished++; return { sum: a + b }; } }, { queue });
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    const calls = Promise.all([calc.add({ a: 1, b: 1 }, { timeoutMs: 10_000 }), calc.add({ a: 2, b: 2 }, { timeoutMs: 10_000 })]);
    await until(() => started === 2, "both calls in their handlers");
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await sleep(100); // time enough for a close() that does not wait for its handlers to finish
    expect(finished).toBe(0);
    expect(closed).toBe(false); // close() is still waiting for the two handlers
    open();
    await closing;
    expect(finished).toBe(2);
    await expect(calls).resolves.toEqual([{ sum: 2 }, { sum: 4 }]);
    // Both were acked before the channel closed: nothing went back to the queue for another server to run again.
    const ch = await conn.channel();
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
    await ch.close();
  });

  it("acks every request exactly once when sync and async handlers finish out of order (batched acks)", async () => {
    const logger = recordingLogger();
    const conn = await openConnection(uniqueName("conn"), logger);
    const queue = deleteAfter(uniqueName("acks"));
    const server = conn.server({ prefetch: 32 });
    // Most answered synchronously (runs of them share one multiple ack); every 5th after a random delay,
    // so completions overtake each other and some acks go out on their own.
    const add: CalculatorHandlers["add"] = ({ a, b }) => (a % 5 !== 4 ? { sum: a + b } : sleep(Math.random() * 15).then(() => ({ sum: a + b })));
    await serveCalculator(server, { ...handlers, add }, { queue });
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    const results = await Promise.all(Array.from({ length: 600 }, (_, i) => calc.add({ a: i, b: 1 })));
    expect(results.map((r) => r.sum)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    await server.close();
    // A missing ack would put its request back in the queue when the channel closed;
    // a double ack would have made the broker close the channel (logged as a resume).
    const ch = await conn.channel();
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
    await ch.close();
    expect(logger.lines.filter((l) => l.includes("closed"))).toEqual([]);
  });

  it("keeps publish order on a congested socket: large and small requests, sent over many turns, arrive in call order", async () => {
    // Requests go straight to the socket while nothing of their channel waits in amqplib's queue, and
    // through that queue once the socket is full; a frame that overtook a queued one would reorder
    // requests, or split a large message's frames (the broker then closes the connection).
    const Sink = defineService({
      name: "Sink",
      version: "1.0.0",
      queue: "rpc.Sink",
      methods: {
        put: method<{ seq: number; pad: string }, { seq: number }>({
          name: "put",
          request: {
            type: "object",
            required: ["seq", "pad"],
            additionalProperties: false,
            properties: { seq: { type: "integer" }, pad: { type: "string" } },
          },
          response: { type: "object", required: ["seq"], additionalProperties: false, properties: { seq: { type: "integer" } } },
        }),
      },
    });
    const conn = await openConnection();
    const queue = deleteAfter(uniqueName("sink"));
    const arrived: number[] = [];
    const server = conn.server({ prefetch: 1000 });
    onTeardown(() => server.close());
    await server.register(Sink, { put: ({ seq }) => (arrived.push(seq), { seq }) }, { queue });
    const client = await conn.client({ queues: { Sink: queue } });
    onTeardown(() => client.close());
    const large = "x".repeat(200_000);
    const calls: Promise<{ seq: number }>[] = [];
    for (let turn = 0; turn < 40; turn++) {
      for (let i = 0; i < 10; i++) {
        const seq = turn * 10 + i;
        calls.push(client.call(Sink.methods.put, { seq, pad: seq % 2 === 0 ? large : "" }, { timeoutMs: 60_000 }));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const replies = await Promise.all(calls);
    const order = Array.from({ length: 400 }, (_, i) => i);
    expect(replies.map((r) => r.seq)).toEqual(order);
    expect(arrived).toEqual(order);
  });

  it("serves from a quorum queue when asked, and a server asking for another type gets an error naming both", async () => {
    const conn = await openConnection();
    const queue = deleteAfter(uniqueName("calc-quorum"));
    const server = conn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, handlers, { queue, queueType: "quorum" });
    const { stdout } = await promisify(execFile)("rabbitmqctl", ["list_queues", "name", "type", "--quiet", "--no-table-headers"]);
    expect(stdout.split("\n").find((line) => line.startsWith(`${queue}\t`))).toBe(`${queue}\tquorum`);
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).add({ a: 2, b: 3 })).resolves.toEqual({ sum: 5 });
    const classic = conn.server();
    onTeardown(() => classic.close());
    await expect(serveCalculator(classic, handlers, { queue })).rejects.toThrow(
      `warren: Calculator: queue "${queue}" exists with other arguments than a classic queue (inequivalent arg 'x-queue-type' for queue '${queue}' in vhost '/': received none but current is the value 'quorum' of type 'longstr'); use the queueType it was declared with, or delete the queue`,
    );
    // The quorum server was not disturbed by the refused one.
    await expect(new CalculatorClient(client).add({ a: 4, b: 5 })).resolves.toEqual({ sum: 9 });
  });

  it("refuses an unknown queueType before touching the broker", async () => {
    const conn = await openConnection();
    await expect(serveCalculator(conn.server(), handlers, { queue: uniqueName("never"), queueType: "stream" as "quorum" })).rejects.toThrow(
      'warren: Calculator: queueType must be "classic" or "quorum", got "stream"',
    );
  });

  it("honours the prefetch: never more concurrent handlers than allowed", async () => {
    let active = 0;
    let peak = 0;
    const { calc } = await setup(
      { add: async ({ a, b }) => { active++; peak = Math.max(peak, active); await sleep(20); active--; return { sum: a + b }; } },
      { prefetch: 3 },
    );
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => calc.add({ a: i, b: 1 })));
    expect(results.map((r) => r.sum)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(peak).toBe(3);
  });

  it("serves the Fibonacci example with bounds-checked input", async () => {
    const conn = await openConnection();
    const queue = deleteAfter(uniqueName("fib"));
    const server = conn.server();
    onTeardown(() => server.close());
    await serveFibonacci(server, { fib: ({ n }) => { let [x, y] = [0, 1]; for (let i = 0; i < n; i++) [x, y] = [y, x + y]; return { value: x }; } }, { queue });
    const client = await conn.client({ queues: { Fibonacci: queue } });
    onTeardown(() => client.close());
    const fib = new FibonacciClient(client);
    await expect(fib.fib({ n: 30 })).resolves.toEqual({ value: 832040 });
    expect((await rejection(fib.fib({ n: 1000 }))).code).toBe("invalid_request");
  });
});
