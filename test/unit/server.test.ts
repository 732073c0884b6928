/** src/rpc/server.ts over the in-memory broker: admission, replies and their errors, validation, ack batching, the handler context. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Delivery, MessageProperties } from "../../src/amqp/channel-source.js";
import { CONTENT_TYPE, DEADLINE_HEADER, DIRECT_REPLY_TO, ERROR_TYPE, RESULT_TYPE } from "../../src/core/protocol.js";
import { defineService, method } from "../../src/core/descriptor.js";
import { RpcError, ValidationError } from "../../src/core/errors.js";
import { formatLogLine } from "../../src/core/logging.js";
import type { HandlerContext } from "../../src/rpc/handler.js";
import { RpcClient } from "../../src/rpc/client.js";
import { RpcServer } from "../../src/rpc/server.js";
import { Calculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { FakeBroker, type FakeConnection } from "../helpers/fake-channel-source.js";

/** A hand-written caller: publishes raw requests with direct reply-to and collects the replies. */
async function rawCaller(conn: FakeConnection) {
  const ch = await conn.open();
  const replies: Delivery[] = [];
  await ch.consume(DIRECT_REPLY_TO, (m) => replies.push(m!), { noAck: true });
  let n = 0;
  return {
    replies,
    /** The replies as `{ correlationId, type, body }`. */
    get received() {
      return replies.map((r) => ({ correlationId: r.properties.correlationId, type: r.properties.type, body: JSON.parse(r.content.toString()) as unknown }));
    },
    /** Sends a request for `add` unless `props` say otherwise; `content` is JSON-encoded unless it is a Buffer. */
    send(content: unknown, props: MessageProperties = {}, queue = "rpc.Calculator") {
      const buffer = Buffer.isBuffer(content) ? content : Buffer.from(JSON.stringify(content));
      ch.publish("", queue, buffer, { contentType: CONTENT_TYPE, correlationId: `c${++n}`, replyTo: DIRECT_REPLY_TO, type: "add", headers: { [DEADLINE_HEADER]: Date.now() + 5000 }, ...props });
    },
  };
}

let broker: FakeBroker;
let serverConn: FakeConnection;
let server: RpcServer;
let caller: Awaited<ReturnType<typeof rawCaller>>;
/** What `add` does for each request; replaced by tests. */
let addImpl: CalculatorHandlers["add"];
let seen: { request: unknown; ctx: HandlerContext<any> }[];
const handlers: CalculatorHandlers = {
  add: (req, ctx) => (seen.push({ request: req, ctx }), addImpl(req, ctx)),
  divide({ dividend, divisor }, ctx) {
    if (divisor === 0) throw ctx.error("division_by_zero", { dividend: dividend === 13 ? ("thirteen" as never) : dividend });
    return { quotient: dividend / divisor };
  },
  summarize: () => {
    throw new RpcError("unimplemented", "not yet");
  },
  centroid: () => {
    throw new Error("database password is hunter2");
  },
};
const settle = () => broker.settle();
const queue = () => broker.queue("rpc.Calculator")!;

beforeEach(async () => {
  broker = new FakeBroker();
  serverConn = broker.connect();
  server = new RpcServer(serverConn, { prefetch: 16 });
  seen = [];
  addImpl = ({ a, b }) => ({ sum: a + b });
  await server.register(Calculator, handlers);
  caller = await rawCaller(broker.connect());
});
afterEach(() => vi.useRealTimers());

describe("admission", () => {
  it("answers a valid request and acks it", async () => {
    caller.send({ a: 1, b: 2 });
    await settle();
    expect(caller.received).toEqual([{ correlationId: "c1", type: RESULT_TYPE, body: { sum: 3 } }]);
    expect(queue()).toMatchObject({ ready: 0, unacked: 0, consumers: 1 });
  });

  it("drops a request without reply_to unrun, acks it and logs why", async () => {
    caller.send({ a: 1, b: 2 }, { replyTo: undefined });
    await settle();
    expect(seen).toEqual([]);
    expect(queue()).toMatchObject({ ready: 0, unacked: 0 });
    expect(serverConn.lines).toEqual([expect.stringMatching(/dropped a request.*correlation_id c1.*reply_to/)]);
  });

  it("drops a request whose deadline has passed unrun, without a reply, and acks it", async () => {
    caller.send({ a: 1, b: 2 }, { headers: { [DEADLINE_HEADER]: Date.now() - 1 } });
    await settle();
    expect([seen, caller.replies]).toEqual([[], []]);
    expect(queue()).toMatchObject({ ready: 0, unacked: 0 });
  });

  it("replies bad_message to a body that is not JSON, has the wrong content type, or a bad deadline header, and to a missing correlation id", async () => {
    caller.send(Buffer.from("{not json"));
    caller.send({ a: 1, b: 2 }, { contentType: "text/plain" });
    caller.send({ a: 1, b: 2 }, { headers: { [DEADLINE_HEADER]: "soon" } });
    caller.send({ a: 1, b: 2 }, { correlationId: undefined });
    await settle();
    const r = caller.received;
    expect(r.map((x) => [x.correlationId, x.type, (x.body as RpcError).code])).toEqual([
      ["c1", ERROR_TYPE, "bad_message"],
      ["c2", ERROR_TYPE, "bad_message"],
      ["c3", ERROR_TYPE, "bad_message"],
      [undefined, ERROR_TYPE, "bad_message"],
    ]);
    expect((r[0]!.body as RpcError).message).toContain("body is not JSON");
    expect((r[3]!.body as RpcError).message).toContain("no correlation_id");
    expect(seen).toEqual([]);
    expect(queue()).toMatchObject({ ready: 0, unacked: 0 });
  });

  it("serves a request another client sent as application/json; charset=utf-8", async () => {
    caller.send({ a: 1, b: 2 }, { contentType: "application/json; charset=utf-8" });
    await settle();
    expect(caller.received).toEqual([{ correlationId: "c1", type: RESULT_TYPE, body: { sum: 3 } }]);
  });

  it("replies unknown_method to a method the service does not have", async () => {
    caller.send({}, { type: "subtract" });
    caller.send({}, { type: undefined });
    await settle();
    expect(caller.received.map((x) => x.body)).toEqual([
      { code: "unknown_method", message: expect.stringContaining('Calculator has no method "subtract"') },
      { code: "unknown_method", message: expect.stringContaining("Calculator has no method null") },
    ]);
  });
});

describe("validation on the server", () => {
  it("replies invalid_request with the issues, without running the handler", async () => {
    caller.send({ a: "1", c: 3 });
    await settle();
    const body = caller.received[0]!.body as { code: string; data: { issues: { path: string; message: string }[] } };
    expect(body.code).toBe("invalid_request");
    // /c is not the contract's: a receiver drops it rather than counting it against the request.
    expect(body.data.issues).toEqual([
      { path: "/b", message: "is required" },
      { path: "/a", message: "must be number" },
    ]);
    expect(seen).toEqual([]);
  });

  it("drops properties its contract does not know (a newer caller's) and runs the handler without them", async () => {
    caller.send({ a: 1, b: 2, c: 3, nested: { x: 1 } });
    await settle();
    expect(caller.received).toEqual([{ correlationId: "c1", type: RESULT_TYPE, body: { sum: 3 } }]);
    expect(seen.map((s) => s.request)).toEqual([{ a: 1, b: 2 }]);
  });

  it("refuses unknown properties when the contract says unknownProperties: reject", async () => {
    const Strict = defineService({ ...Calculator, name: "StrictCalculator", queue: "rpc.StrictCalculator", unknownProperties: "reject", methods: { add: method(Calculator.methods.add) } });
    await server.register(Strict, { add: handlers.add });
    caller.send({ a: 1, b: 2, c: 3 }, {}, "rpc.StrictCalculator");
    await settle();
    expect(caller.received[0]!.body).toMatchObject({ code: "invalid_request", data: { issues: [{ path: "/c", message: "is not allowed" }] } });
    expect(seen).toEqual([]);
  });

  it("replies invalid_response when a handler returns a value that breaks the contract, sync or async, and logs it", async () => {
    addImpl = ({ a }) => (a === 1 ? ({ sum: "one" } as never) : (Promise.resolve({ total: 2 }) as never));
    caller.send({ a: 1, b: 0 });
    caller.send({ a: 2, b: 0 });
    await settle();
    expect(caller.received.map((r) => r.body)).toEqual([
      expect.objectContaining({ code: "invalid_response", data: { issues: [{ path: "/sum", message: "must be number" }] } }),
      expect.objectContaining({ code: "invalid_response", data: { issues: [{ path: "/sum", message: "is required" }, { path: "/total", message: "is not allowed" }] } }),
    ]);
    expect(serverConn.lines.filter((l) => l.includes("handler returned an invalid response"))).toHaveLength(2);
  });

  it("checks a contract at both ends: a caller with an older, looser contract gets the server's invalid_request with its issues", async () => {
    const Looser = defineService({
      name: "Calculator",
      version: "1.0.0",
      queue: "rpc.Calculator",
      methods: { add: method<{ a: number; b?: number }, { sum: number }>({ name: "add", request: { type: "object" }, response: true }) },
    });
    const client = new RpcClient(broker.connect(), { timeoutMs: 1000 });
    const err = await client.call(Looser.methods.add, { a: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ code: "invalid_request", side: "server", issues: [{ path: "/b", message: "is required" }] });
    // ...and the full contract refuses the same request on the client, before sending.
    await expect(client.call(Calculator.methods.add, { a: 1 } as never)).rejects.toMatchObject({ code: "invalid_request", side: "client" });
  });
});

describe("contract versions", () => {
  const at = (version: string) =>
    defineService({ ...Calculator, version, methods: { add: method(Calculator.methods.add) } }).methods.add;

  it("serves callers on the same compatibility line (1.x with 1.0.0) and callers that send no version", async () => {
    const client = new RpcClient(broker.connect(), { timeoutMs: 1000 });
    await expect(client.call(at("1.7.2"), { a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
    caller.send({ a: 2, b: 2 });
    await settle();
    expect(caller.received.map((r) => r.body)).toEqual([{ sum: 4 }]);
    expect(seen).toHaveLength(2);
  });

  it("refuses a caller on another compatibility line with incompatible_version naming both versions, unrun, and logs it once", async () => {
    const warnings: string[] = [];
    const logged = new RpcServer(broker.connect(), { logger: { warn: (fields, message) => warnings.push(formatLogLine(fields, message)), error: () => {} } });
    await logged.register({ ...Calculator, queue: "rpc.Calculator2" } as typeof Calculator, handlers);
    const client = new RpcClient(broker.connect(), { timeoutMs: 1000, queues: { Calculator: "rpc.Calculator2" } });
    for (let i = 0; i < 3; i++) {
      const err = await client.call(at("2.0.0"), { a: 1, b: 2 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect(err).toMatchObject({ code: "incompatible_version", message: expect.stringMatching(/Calculator 2\.0\.0 is incompatible with .*Calculator 1\.0\.0/) });
    }
    expect(seen).toEqual([]);
    expect(warnings).toEqual([expect.stringContaining("refusing requests: the sender's contract Calculator 2.0.0")]);
    // 0.x versions promise nothing across minors.
    const zero = new RpcServer(broker.connect());
    await zero.register({ ...defineService({ ...Calculator, version: "0.3.1", queue: "rpc.Calculator3", methods: { add: method(Calculator.methods.add) } }) }, { add: handlers.add });
    const zeroClient = new RpcClient(broker.connect(), { timeoutMs: 1000, queues: { Calculator: "rpc.Calculator3" } });
    await expect(zeroClient.call(at("0.3.9"), { a: 1, b: 1 })).resolves.toEqual({ sum: 2 });
    await expect(zeroClient.call(at("0.4.0"), { a: 1, b: 1 })).rejects.toMatchObject({ code: "incompatible_version" });
  });
});

describe("handler errors", () => {
  it("sends a declared error with its data; invalid data becomes invalid_response", async () => {
    caller.send({ dividend: 4, divisor: 0 }, { type: "divide" });
    caller.send({ dividend: 13, divisor: 0 }, { type: "divide" });
    await settle();
    expect(caller.received.map((r) => r.body)).toEqual([
      { code: "division_by_zero", message: expect.any(String), data: { dividend: 4 } },
      expect.objectContaining({ code: "invalid_response", message: expect.stringContaining('data of error "division_by_zero"') }),
    ]);
  });

  it("sends internal for a thrown Error, without its message or stack, and logs it; unimplemented passes through", async () => {
    caller.send({ points: [{ x: 0, y: 0 }] }, { type: "centroid" });
    caller.send({ values: [1], statistic: "mean" }, { type: "summarize" });
    await settle();
    const [internal, unimplemented] = caller.received.map((r) => r.body);
    expect(internal).toEqual({ code: "internal", message: expect.stringContaining("internal server error") });
    expect(JSON.stringify(caller.received)).not.toContain("hunter2");
    expect(serverConn.lines.join("\n")).toContain("hunter2");
    expect(unimplemented).toEqual({ code: "unimplemented", message: "not yet" });
  });

  it("sends internal, not the code, when a call the handler made failed (a caller would retry timeout); with exposeInternalErrors the cause names the call and its code", async () => {
    addImpl = () => { throw new RpcError("timeout", "Inventory.reserve: no reply within 500 ms"); };
    caller.send({ a: 1, b: 2 });
    await settle();
    expect(caller.received.map((r) => r.body)).toEqual([{ code: "internal", message: "internal server error" }]);
    expect(serverConn.lines).toEqual(["warren: Calculator.add: a call or publish the handler made failed (timeout: Inventory.reserve: no reply within 500 ms); answering internal (correlation_id c1)"]);
    const exposing = new RpcServer(broker.connect(), { exposeInternalErrors: true });
    await exposing.register({ ...Calculator, queue: "rpc.Calculator2" } as typeof Calculator, handlers);
    caller.send({ a: 1, b: 2 }, {}, "rpc.Calculator2");
    await settle();
    expect(caller.received[1]!.body).toEqual({ code: "internal", message: "internal server error", data: { cause: "a call or publish the handler made failed (timeout: Inventory.reserve: no reply within 500 ms)", stack: expect.any(String) } });
  });

  it("sends internal, not the refusal, when a call the handler made was refused (its own invalid_request, a peer's permission_denied), and logs it as that call's failure; its own refusals pass", async () => {
    const nested: RpcError[] = [
      new RpcError("invalid_request", "Inventory.reserve: request invalid: /sku: must be string", { service: "Inventory", method: "reserve" }),
      new RpcError("permission_denied", "Inventory.reserve: not yours", { service: "Inventory", method: "reserve" }),
      new RpcError("internal", "Inventory.reserve: internal server error", { service: "Inventory", method: "reserve" }),
      new RpcError("permission_denied", "not yours", { service: "Calculator", method: "add" }),
      new RpcError("permission_denied", "not yours either"),
    ];
    addImpl = ({ a }) => { throw nested[a]!; };
    for (let a = 0; a < nested.length; a++) caller.send({ a, b: 0 });
    await settle();
    expect(caller.received.map((r) => r.body)).toEqual([
      { code: "internal", message: "internal server error" },
      { code: "internal", message: "internal server error" },
      { code: "internal", message: "internal server error" },
      { code: "permission_denied", message: "not yours" },
      { code: "permission_denied", message: "not yours either" },
    ]);
    expect(serverConn.lines).toEqual([
      "warren: Calculator.add: a call or publish the handler made failed (invalid_request: Inventory.reserve: request invalid: /sku: must be string); answering internal (correlation_id c1)",
      "warren: Calculator.add: a call or publish the handler made failed (permission_denied: Inventory.reserve: not yours); answering internal (correlation_id c2)",
      "warren: Calculator.add: a call or publish the handler made failed (internal: Inventory.reserve: internal server error); answering internal (correlation_id c3)",
    ]);
  });

  it("sends internal for a rejected promise and for a thrown non-Error", async () => {
    addImpl = ({ a }) => (a === 1 ? Promise.reject(new Error("secret")) : ((): never => { throw "a string"; })());
    caller.send({ a: 1, b: 0 });
    caller.send({ a: 2, b: 0 });
    await settle();
    expect(caller.received.map((r) => (r.body as RpcError).code)).toEqual(["internal", "internal"]);
    expect(JSON.stringify(caller.received)).not.toContain("secret");
  });
});

describe("acknowledgements", () => {
  it("acks every delivery exactly once when sync and async handlers finish out of order", async () => {
    const pending: (() => void)[] = [];
    addImpl = ({ a, b }) => (a % 2 === 0 ? { sum: a + b } : new Promise((resolve) => pending.push(() => resolve({ sum: a + b }))));
    for (let a = 0; a < 10; a++) caller.send({ a, b: 0 });
    await settle();
    expect(caller.replies).toHaveLength(5);
    const [serverChannel] = broker.channels("rpc.Calculator");
    expect(serverChannel!.unacked).toBe(5); // the async ones
    // Finish the slow ones in reverse order, two of them in the same tick.
    pending[4]!();
    await settle();
    pending[3]!();
    pending[1]!();
    await settle();
    pending[2]!();
    pending[0]!();
    await settle();
    expect(caller.replies).toHaveLength(10);
    expect(serverChannel!.closed).toBe(false); // an ack of an unknown (or already acked) tag would have closed it
    expect(queue()).toMatchObject({ ready: 0, unacked: 0 });
    // Each tag 1..10 is covered by exactly one ack.
    const acked: number[] = [];
    for (const { tag, multiple } of serverChannel!.acks) {
      for (let t = multiple ? 1 : tag; t <= tag; t++) if (!acked.includes(t)) acked.push(t);
      if (!multiple) expect(acked.filter((t) => t === tag)).toHaveLength(1);
    }
    expect(acked.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(serverChannel!.acks.length).toBeLessThan(10); // batched
  });
});

describe("handler context", () => {
  it("carries method, correlation id, headers, deadline and redelivered", async () => {
    const deadline = Date.now() + 4000;
    caller.send({ a: 1, b: 2 }, { headers: { [DEADLINE_HEADER]: deadline, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tenant: "t1" } });
    await settle();
    const { ctx } = seen[0]!;
    expect(ctx).toMatchObject({ service: "Calculator", method: "add", correlationId: "c1", deadline, redelivered: false, headers: { tenant: "t1", [DEADLINE_HEADER]: deadline } });
  });

  it("aborts the handler's signal at the deadline", async () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
    let aborted: unknown;
    addImpl = (_req, ctx) =>
      new Promise((resolve) => {
        ctx.signal.addEventListener("abort", () => ((aborted = ctx.signal.reason), resolve({ sum: 0 })));
      });
    caller.send({ a: 1, b: 2 }, { headers: { [DEADLINE_HEADER]: 1_000_300 } });
    await settle();
    await vi.advanceTimersByTimeAsync(299);
    expect(aborted).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(aborted).toMatchObject({ code: "timeout", message: "Calculator.add: deadline passed" });
  });

  it("a handler that outlives its channel answers once: the redelivered copy is taken over, not run again (docs/FAILURES.md#long-handlers-and-consumer_timeout)", async () => {
    let release!: () => void;
    addImpl = (_req, ctx) => (ctx.redelivered ? { sum: 1 } : new Promise((resolve) => (release = () => resolve({ sum: 0 }))));
    caller.send({ a: 1, b: 2 });
    await settle();
    broker.channels("rpc.Calculator")[0]!.failByBroker();
    await settle();
    release();
    await settle();
    expect(seen.map((s) => s.ctx.redelivered)).toEqual([false]);
    expect(caller.received.map((r) => r.body)).toEqual([{ sum: 0 }]);
    expect(serverConn.lines.join("\n")).not.toContain("could not reply");
  });
});

describe("close", () => {
  it("stops consuming, lets in-flight handlers reply, then closes", async () => {
    let release!: () => void;
    addImpl = () => new Promise((resolve) => (release = () => resolve({ sum: 5 })));
    caller.send({ a: 1, b: 2 });
    await settle();
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await settle();
    expect([closed, queue().consumers]).toEqual([false, 0]);
    caller.send({ a: 3, b: 4 }); // stays in the queue
    release();
    await closing;
    expect(caller.received.map((r) => r.body)).toEqual([{ sum: 5 }]);
    expect(queue()).toMatchObject({ ready: 1, unacked: 0 });
    expect(serverConn.channels).toEqual([]);
  });
});
