/**
 * Reproductions of four fault holes. Each test asserts the correct behaviour
 * and fails against the runtime as it was when this file was written (commit
 * 5f3de9c); see the comment above each `describe` for the hole and where it was
 * in the runtime (paths as of that commit, before src/ was split into folders).
 */
import amqp from "amqplib";
import { describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { calculatorHandlers } from "../../examples/services/calculator.js";
import { RpcError, connect, defineService, event, isRpcError, method, type Connection } from "../../src/index.js";
import { deleteAfter, deleteExchangeAfter, onTeardown, openConnection, recordingLogger, sleep, uniqueName } from "../helpers/broker.js";
import { CONFIRM_SELECT_OK, startFrameProxy, type FrameProxy } from "../helpers/frame-proxy.js";

const BROKER_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
/** Reconnect at once: these tests wait for reconnections. */
const FAST_RECONNECT = { initialDelayMs: 20, maxDelayMs: 200 };

/** Retries `fn` until it resolves or `withinMs` passes; then fails with its last error. */
async function eventually<T>(what: string, withinMs: number, fn: () => Promise<T>): Promise<T> {
  const until = Date.now() + withinMs;
  let last: unknown;
  for (let tries = 1; ; tries++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
    }
    if (Date.now() >= until) {
      const detail = last instanceof Error ? `${(last as { code?: unknown }).code ?? last.name}: ${last.message}` : String(last);
      throw new Error(`${what}: still failing after ${withinMs} ms (${tries} tries); last failure: ${detail}`, { cause: last });
    }
    await sleep(100);
  }
}

/** Rejects after `ms` with `what`, for a promise that must settle (so a broken setup says so instead of timing out the test). */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  return Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`${what} (not within ${ms} ms)`)))]);
}

/** The number of consumers on `queue`, asked on a fresh channel of `conn` (a direct connection). */
async function consumersOf(conn: Connection, queue: string): Promise<number> {
  const ch = await conn.channel();
  try {
    return (await ch.checkQueue(queue)).consumerCount;
  } finally {
    await ch.close().catch(() => {});
  }
}

/** Resolves on the next `name` event of `conn`. */
const next = (conn: Connection, name: string) => new Promise<void>((resolve) => conn.once(name, () => resolve()));

/** Starts a frame proxy that is closed after the test. */
async function proxy(): Promise<FrameProxy> {
  const p = await startFrameProxy();
  onTeardown(() => p.close());
  return p;
}

/** Counts how many times `needle` occurs in `text`. */
const occurrences = (text: string, needle: string) => text.split(needle).length - 1;

// ---------------------------------------------------------------------------------------------
// 1. KeptConsumer.start() (src/consumer.ts) and RpcClient#openReplyChannel (src/client.ts) add
//    their channel "close" listener only after `await channel.consume(...)`. When consume-ok and
//    a connection.close arrive in one socket read, amqplib emits the channel's "close" before
//    that listener exists: the consumer is dead and nothing ever notices.
// ---------------------------------------------------------------------------------------------
describe("a connection close that arrives with consume-ok", () => {
  it("a server whose resumed consumer's consume-ok came with the close consumes again after reconnecting", async () => {
    const p = await proxy();
    const logger = recordingLogger();
    const conn = await connect(p.url, { name: uniqueName("server-conn"), logger, reconnect: FAST_RECONNECT });
    onTeardown(() => conn.close());
    const connected: number[] = [];
    conn.on("connected", () => connected.push(Date.now()));
    const queue = deleteAfter(uniqueName("calc"));
    const server = conn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });

    const direct = await openConnection();
    const client = await direct.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    await expect(calc.add({ a: 1, b: 2 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 3 });

    // Drop the server's connection; its consumer resumes on the reconnected one, and that
    // consume-ok is the one the proxy delivers together with a connection.close.
    const glued = p.armConsumeOkClose();
    expect(p.dropAll()).toBe(1);
    const g = await within(10_000, "the proxy never saw the resumed consumer's consume-ok", glued);
    expect(g.frames).toBeGreaterThanOrEqual(2);

    // The connection comes back (twice: after the drop and after the glued close); the consumer must too.
    await eventually("the server's queue has its consumer back and serves a call", 8000, async () => {
      expect(connected.length, "reconnections").toBeGreaterThanOrEqual(2);
      expect(await consumersOf(direct, queue), `consumers on ${queue}`).toBe(1);
      expect(await calc.add({ a: 2, b: 3 }, { timeoutMs: 1000 })).toEqual({ sum: 5 });
    });
  });

  it("a server whose first consume-ok comes with the close either fails register() or consumes after reconnecting", async () => {
    const p = await proxy();
    const conn = await connect(p.url, { name: uniqueName("server-conn"), logger: recordingLogger(), reconnect: FAST_RECONNECT });
    onTeardown(() => conn.close());
    const queue = deleteAfter(uniqueName("calc"));
    const server = conn.server();
    onTeardown(() => server.close());
    const glued = p.armConsumeOkClose();
    const outcome = await serveCalculator(server, calculatorHandlers, { queue }).then(
      () => "registered" as const,
      (err: unknown) => err,
    );
    await within(5000, "the proxy never saw the consume-ok", glued);
    if (outcome !== "registered") {
      // Refusing the registration is a correct outcome: the caller knows it is not serving.
      expect(outcome).toBeInstanceOf(Error);
      return;
    }
    // Resolving it is correct only if the service is really served once the connection is back.
    const direct = await openConnection();
    const client = await direct.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    await eventually("register() resolved, so the queue must have its consumer after the reconnection", 8000, async () => {
      expect(await consumersOf(direct, queue), `consumers on ${queue}`).toBe(1);
      expect(await calc.add({ a: 2, b: 3 }, { timeoutMs: 1000 })).toEqual({ sum: 5 });
    });
  });

  it("a client whose reply consumer's consume-ok came with the close serves later calls after reconnecting", async () => {
    const p = await proxy();
    // The server is on a direct connection: the only consume through the proxy is the client's reply consumer.
    const serverConn = await openConnection();
    const queue = deleteAfter(uniqueName("calc"));
    const server = serverConn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });

    const conn = await connect(p.url, { name: uniqueName("client-conn"), logger: recordingLogger(), reconnect: FAST_RECONNECT });
    onTeardown(() => conn.close());
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    await expect(calc.add({ a: 1, b: 2 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 3 });

    // Drop the connection: the reply channel closes; the next call opens a new one on the
    // reconnected connection, and its consume-ok comes together with a connection.close.
    const glued = p.armConsumeOkClose();
    const disconnected = next(conn, "disconnected");
    expect(p.dropAll()).toBe(1);
    await within(5000, "the client's connection did not notice the drop", disconnected);

    await eventually("a call through the same client succeeds after the reconnection", 8000, async () => {
      expect(await calc.add({ a: 2, b: 3 }, { timeoutMs: 1000 })).toEqual({ sum: 5 });
    });
    // The fault really happened (the first call after the drop opened the reply consumer that got it).
    expect(p.glueCount).toBe(1);
    await glued;
    expect(client.pendingCount).toBe(0);
  });
});

describe("a connection close that arrives with the last reply of channel setup (same hole, event publisher)", () => {
  // EventBus#publishChannel (src/events.ts) adds its "close" listener in a `.then` after
  // createConfirmChannel() resolves. A close that arrives with confirm.select-ok is emitted before
  // that: the bus keeps the dead channel as its publish channel and every later publish fails.
  it("an event bus whose confirm channel's select-ok came with the close publishes again after reconnecting", async () => {
    const p = await proxy();
    const exchange = deleteExchangeAfter(uniqueName("events"));
    const Pinger = defineService({
      name: "Pinger",
      version: "1.0.0",
      queue: "rpc.Pinger",
      methods: {},
      exchange: { name: exchange, type: "topic" },
      events: { ping: event<{ n: number }>({ name: "ping", routingKey: "pings.ping", payload: { type: "object" } }) },
    });
    const conn = await connect(p.url, { name: uniqueName("publisher-conn"), logger: recordingLogger(), reconnect: FAST_RECONNECT });
    onTeardown(() => conn.close());
    const bus = conn.events();
    onTeardown(() => bus.close());
    await bus.publish(Pinger.events.ping, { n: 1 });

    // Drop the connection: the next publish opens a new confirm channel, and its select-ok comes with a close.
    const glued = p.armCloseWith(CONFIRM_SELECT_OK);
    const disconnected = next(conn, "disconnected");
    expect(p.dropAll()).toBe(1);
    await within(5000, "the publisher's connection did not notice the drop", disconnected);

    await eventually("a publish on the same bus succeeds after the reconnection", 8000, () =>
      within(2000, "publish did not settle", bus.publish(Pinger.events.ping, { n: 2 })),
    );
    expect(p.glueCount).toBe(1);
    await glued;
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Values JSON.stringify cannot encode. On the server, encodeBody throws inside
//    ServiceRegistration#send (src/server.ts): no reply, no ack, the prefetch slot is gone for
//    good. On the caller, encodeBody in RpcClient#prepare (src/client.ts) throws a bare
//    TypeError / RangeError out of call().
// ---------------------------------------------------------------------------------------------

/** A contract whose request and response schemas accept anything JSON Schema can see. */
function anythingService(queue: string) {
  return defineService({
    name: "Anything",
    version: "1.0.0",
    queue,
    methods: {
      produce: method<{ kind: string }, unknown>({
        name: "produce",
        request: { type: "object", required: ["kind"], properties: { kind: { type: "string" } } },
        response: {},
        timeoutMs: 5000,
      }),
      echo: method<unknown, unknown>({ name: "echo", request: {}, response: {}, timeoutMs: 5000 }),
    },
  });
}

/** Values JSON.stringify throws on: a BigInt, a cycle, and nesting deeper than V8's stack. */
function unencodable(kind: string): unknown {
  if (kind.startsWith("bigint")) return { n: 10n };
  if (kind.startsWith("cycle")) {
    const o: Record<string, unknown> = { name: "loop" };
    o.self = o;
    return o;
  }
  if (kind.startsWith("deep")) {
    const root: Record<string, unknown> = {};
    let cur = root;
    for (let i = 0; i < 10_000; i++) {
      const child: Record<string, unknown> = {};
      cur.a = child;
      cur = child;
    }
    return root;
  }
  return { ok: kind };
}

describe("values that cannot be encoded as JSON", () => {
  it("a handler result that cannot be encoded gets an internal error reply, is logged, and does not use up the prefetch", async () => {
    const queue = deleteAfter(uniqueName("anything"));
    const Anything = anythingService(queue);
    const logger = recordingLogger();
    const serverConn = await openConnection(uniqueName("server-conn"), logger);
    const server = serverConn.server({ prefetch: 2, logger });
    onTeardown(() => server.close());
    await server.register(Anything, {
      produce: ({ kind }) => (kind.endsWith("-async") ? Promise.resolve(unencodable(kind)) : unencodable(kind)),
      echo: (request) => request,
    });
    const conn = await openConnection();
    const client = await conn.client({ queues: { Anything: queue } });
    onTeardown(() => client.close());

    const kinds = ["bigint", "cycle", "deep", "bigint-async", "cycle-async"];
    const outcomes: string[] = [];
    for (const kind of kinds) {
      const started = Date.now();
      const outcome = await client.call(Anything.methods.produce, { kind }, { timeoutMs: 1500 }).then(
        () => "resolved",
        (err: RpcError) => `${err.code}${Date.now() - started < 1000 ? "" : " (slow)"}`,
      );
      outcomes.push(`${kind}: ${outcome}`);
    }
    // Each is answered at once with `internal` (not left to time out) ...
    expect(outcomes).toEqual(kinds.map((k) => `${k}: internal`));
    // ... the log says which method and why, and does not claim a redelivery that never comes ...
    const lines = logger.lines.filter((l) => l.includes("Anything.produce") && /JSON|encod|serializ/i.test(l));
    expect(lines.length, logger.lines.join("\n")).toBeGreaterThanOrEqual(kinds.length);
    expect(logger.lines.join("\n")).not.toMatch(/will redeliver/);
    // ... and with prefetch 2, five such calls later the server still serves.
    await expect(client.call(Anything.methods.produce, { kind: "fine" }, { timeoutMs: 1500 })).resolves.toEqual({ ok: "fine" });
    expect(client.pendingCount).toBe(0);
  });

  it("a request that cannot be encoded rejects with invalid_request, not a bare TypeError or RangeError", async () => {
    const queue = deleteAfter(uniqueName("anything"));
    const Anything = anythingService(queue);
    const serverConn = await openConnection();
    const server = serverConn.server();
    onTeardown(() => server.close());
    await server.register(Anything, { produce: () => ({}), echo: (request) => request });
    const conn = await openConnection();
    const client = await conn.client({ queues: { Anything: queue } });
    onTeardown(() => client.close());

    const seen: string[] = [];
    for (const kind of ["bigint", "cycle", "deep"]) {
      const err = await client.call(Anything.methods.echo, unencodable(kind), { timeoutMs: 1500 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      seen.push(`${kind}: ${isRpcError(err) ? `RpcError ${err.code}` : `${(err as Error)?.constructor?.name} ${(err as Error)?.message?.split("\n")[0]}`}`);
    }
    expect(seen).toEqual(["bigint: RpcError invalid_request", "cycle: RpcError invalid_request", "deep: RpcError invalid_request"]);
    expect(client.pendingCount).toBe(0);
    // Nothing was sent, and the client still works.
    await expect(client.call(Anything.methods.echo, { fine: true }, { timeoutMs: 1500 })).resolves.toEqual({ fine: true });
  });
});

// ---------------------------------------------------------------------------------------------
// 3. A reply published to a malformed direct reply-to address (amq.rabbitmq.reply-to.a.b) makes
//    RabbitMQ 3.10 close the server's whole connection (541 INTERNAL_ERROR) before the ack is
//    processed: the request is redelivered, the server reconnects and runs it again, forever.
// ---------------------------------------------------------------------------------------------
describe("a crafted reply_to", () => {
  it("a request whose reply_to is a malformed direct reply-to address runs at most once and does not cost the server its connection", async () => {
    const queue = deleteAfter(uniqueName("calc"));
    const logger = recordingLogger();
    const conn = await connect(undefined, { name: uniqueName("server-conn"), logger, reconnect: FAST_RECONNECT });
    onTeardown(() => conn.close());
    const disconnects: string[] = [];
    conn.on("disconnected", (err?: Error) => disconnects.push(err?.message ?? "(no error)"));
    const server = conn.server();
    onTeardown(() => server.close());
    let runs = 0;
    await serveCalculator(
      server,
      {
        ...calculatorHandlers,
        add(request, ctx) {
          runs++;
          return calculatorHandlers.add(request, ctx);
        },
      },
      { queue },
    );

    const raw = await amqp.connect(BROKER_URL);
    onTeardown(() => raw.close());
    const ch = await raw.createChannel();
    ch.sendToQueue(queue, Buffer.from(JSON.stringify({ a: 1, b: 2 })), {
      replyTo: "amq.rabbitmq.reply-to.a.b",
      correlationId: "crafted-1",
      contentType: "application/json",
      type: "add",
    });
    await sleep(3000);
    expect(runs, `handler runs in 3 s; disconnects: ${disconnects.join(" | ")}`).toBeLessThanOrEqual(1);
    expect(disconnects).toEqual([]);

    // And the service still answers ordinary calls.
    const direct = await openConnection();
    const client = await direct.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).add({ a: 2, b: 3 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 5 });
  });
});

describe("a crafted reply_to that looks right", () => {
  /** A direct reply-to address in RabbitMQ's own format (base64 of a NEW_PID_EXT term, "." key) for the pid <node.7.7>. */
  function directReplyTo(node: string): string {
    const name = Buffer.from(node, "utf8");
    const term = Buffer.concat([Buffer.from([131, 88, 118, name.length >> 8, name.length & 0xff]), name, Buffer.alloc(12, 7)]);
    return `amq.rabbitmq.reply-to.${term.toString("base64")}.${Buffer.from("key").toString("base64")}`;
  }

  // RabbitMQ 3.10.8 also closes the connection (541) for a well-formed pid whose node hash names no
  // running node ("reply@1"), so no check of the address's shape can catch every poisonous reply_to.
  // What must hold regardless: the request is not run again and again.
  it("a request whose reply_to is a well-formed direct reply-to address of no running node stops being run", async () => {
    const queue = deleteAfter(uniqueName("calc"));
    const conn = await connect(undefined, { name: uniqueName("server-conn"), logger: recordingLogger(), reconnect: FAST_RECONNECT });
    onTeardown(() => conn.close());
    let disconnects = 0;
    conn.on("disconnected", () => disconnects++);
    const server = conn.server();
    onTeardown(() => server.close());
    const runs: number[] = [];
    await serveCalculator(
      server,
      {
        ...calculatorHandlers,
        add(request, ctx) {
          runs.push(Date.now());
          return calculatorHandlers.add(request, ctx);
        },
      },
      { queue },
    );

    const raw = await amqp.connect(BROKER_URL);
    onTeardown(() => raw.close());
    const ch = await raw.createChannel();
    const sent = Date.now();
    ch.sendToQueue(queue, Buffer.from(JSON.stringify({ a: 1, b: 2 })), {
      replyTo: directReplyTo("reply@1"),
      correlationId: "crafted-2",
      contentType: "application/json",
      type: "add",
    });
    await sleep(5000);
    const late = runs.filter((t) => t - sent > 3000).length;
    expect({ runs: runs.length, runsInTheLast2s: late }, `disconnects: ${disconnects}`).toEqual({ runs: expect.any(Number), runsInTheLast2s: 0 });
    expect(runs.length, `disconnects: ${disconnects}`).toBeLessThanOrEqual(3);

    const direct = await openConnection();
    const client = await direct.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).add({ a: 2, b: 3 }, { timeoutMs: 2000 })).resolves.toEqual({ sum: 5 });
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Error codes and messages.
//    (a) An event exchange that exists with another kind: the broker's 406 becomes
//        `connection_lost` in EventBus.publish (src/events.ts) and a bare amqplib Error from
//        EventSubscription#prepare (src/subscription.ts).
//    (b) RpcClient#errorFromReply (src/client.ts) prefixes `Service.method: ` to server messages
//        that already start with it.
// ---------------------------------------------------------------------------------------------

/** A contract whose events go to `exchange`, declared topic. */
function pingService(exchange: string) {
  return defineService({
    name: "Pinger",
    version: "1.0.0",
    queue: "rpc.Pinger",
    methods: {},
    exchange: { name: exchange, type: "topic" },
    events: {
      ping: event<{ n: number }>({
        name: "ping",
        routingKey: "pings.ping",
        payload: { type: "object", required: ["n"], properties: { n: { type: "number" } } },
      }),
    },
  });
}
/** An exchange that exists as fanout, a contract that declares it topic, and an event bus to try it with. */
async function busOnFanoutExchange() {
  const exchange = deleteExchangeAfter(uniqueName("events"));
  const setup = await openConnection();
  const ch = await setup.channel();
  await ch.assertExchange(exchange, "fanout", { durable: true });
  await ch.close();
  const conn = await openConnection();
  const bus = conn.events();
  onTeardown(() => bus.close());
  return { exchange, Pinger: pingService(exchange), bus };
}

describe("clear errors", () => {


  /** What a rejection looked like, for a readable failure. */
  const describeRejection = (err: unknown) =>
    isRpcError(err) ? { rpcError: true, code: err.code, message: err.message } : { rpcError: false, code: (err as { code?: unknown })?.code, message: (err as Error)?.message };

  /** `err` is the setup error of a fanout exchange the contract declares topic. */
  const expectKindMismatch = (err: unknown, exchange: string) => {
    const seen = describeRejection(err);
    expect(seen.rpcError, JSON.stringify(seen)).toBe(true);
    expect(seen.code, JSON.stringify(seen)).toBe("setup_failed");
    expect(seen.message).toContain(exchange);
    expect(seen.message).toContain("fanout");
    expect(seen.message).toContain("topic");
  };

  it("publishing an event whose exchange exists as another kind fails with a setup error naming the exchange and both kinds", async () => {
    const { exchange, Pinger, bus } = await busOnFanoutExchange();

    const err = await bus.publish(Pinger.events.ping, { n: 1 }).then(() => undefined, (e: unknown) => e);
    expectKindMismatch(err, exchange);
  });

  it("subscribing to an event whose exchange exists as another kind rejects with a setup error naming the exchange and both kinds", async () => {
    const { exchange, Pinger, bus } = await busOnFanoutExchange();
    deleteAfter(`${exchange}.ping.dead`); // a runtime that declares the dead-letter queue first must not leave it behind

    const err = await within(
      10_000,
      "subscribe() neither resolved nor rejected",
      bus.subscribe(Pinger.events.ping, () => {}).then(
        (s) => {
          onTeardown(() => s.close());
          return undefined;
        },
        (e: unknown) => e,
      ),
    );
    expectKindMismatch(err, exchange);
  });

  it("framework error messages name Service.method once", async () => {
    const queue = deleteAfter(uniqueName("faulty"));
    const methods = {
      boom: method<unknown, unknown>({ name: "boom", request: {}, response: {}, timeoutMs: 3000 }),
      big: method<unknown, unknown>({ name: "big", request: {}, response: {}, timeoutMs: 3000 }),
      todo: method<unknown, unknown>({ name: "todo", request: {}, response: {}, timeoutMs: 3000 }),
    };
    const ServerSide = defineService({ name: "Faulty", version: "1.0.0", queue, methods });
    // The caller's contract is newer: it has a method the server does not know.
    const CallerSide = defineService({
      name: "Faulty",
      version: "1.1.0",
      queue,
      methods: { ...methods, fresh: method<unknown, unknown>({ name: "fresh", request: {}, response: {}, timeoutMs: 3000 }) },
    });
    const serverConn = await openConnection();
    const server = serverConn.server({ maxMessageBytes: 100 });
    onTeardown(() => server.close());
    await server.register(ServerSide, {
      boom: () => {
        throw new Error("kaboom");
      },
      big: () => ({}),
      todo: () => {
        throw new RpcError("unimplemented", "not yet");
      },
    });
    const conn = await openConnection();
    const client = await conn.client({ queues: { Faulty: queue } });
    onTeardown(() => client.close());

    const cases = [
      { code: "internal", method: CallerSide.methods.boom, request: {} },
      { code: "unknown_method", method: CallerSide.methods.fresh, request: {} },
      { code: "bad_message", method: CallerSide.methods.big, request: { s: "x".repeat(500) } },
      { code: "unimplemented", method: CallerSide.methods.todo, request: {} },
    ];
    const messages: Record<string, string> = {};
    const counts: Record<string, number> = {};
    for (const c of cases) {
      const err = await client.call(c.method, c.request).then(() => undefined, (e: unknown) => e);
      expect(isRpcError(err) && err.code, `${c.code}: ${String(err)}`).toBe(c.code);
      const message = (err as RpcError).message;
      messages[c.code] = message;
      counts[c.code] = occurrences(message, `Faulty.${c.method.name}`);
    }
    expect(counts, JSON.stringify(messages, null, 2)).toEqual({ internal: 1, unknown_method: 1, bad_message: 1, unimplemented: 1 });
  });
});
