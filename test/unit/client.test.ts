/** src/rpc/client.ts over the in-memory broker: call table, retries, deadlines, no_server, client-side validation, flow control. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Delivery } from "../../src/amqp/channel-source.js";
import { CONTENT_TYPE, DEADLINE_HEADER, ERROR_TYPE, RESULT_TYPE } from "../../src/core/protocol.js";
import { RpcError, ValidationError } from "../../src/core/errors.js";
import { RpcClient } from "../../src/rpc/client.js";
import { Calculator } from "../../generated/calculator/index.js";
import { Orders } from "../../generated/orders/index.js";
import { MemoryChannel } from "../../src/testing/index.js";
import { FakeBroker, type FakeConnection } from "../helpers/fake-channel-source.js";

const add = Calculator.methods.add; // idempotent, timeoutMs 5000
const divide = Calculator.methods.divide;
const placeOrder = Orders.methods.placeOrder; // not idempotent

/** The settled state of a promise, readable at any time without awaiting it. */
function track<T>(p: Promise<T>): { state: "pending" | "fulfilled" | "rejected"; value?: T; error?: RpcError } {
  const t: ReturnType<typeof track<T>> = { state: "pending" };
  p.then(
    (value) => Object.assign(t, { state: "fulfilled", value }),
    (error: RpcError) => Object.assign(t, { state: "rejected", error }),
  );
  return t;
}

/** A hand-written server on its own connection: records requests (no-ack) and replies as told. */
async function rawServer(conn: FakeConnection, queue: string) {
  const ch = await conn.open();
  await ch.declareQueue(queue, { durable: true });
  const requests: Delivery[] = [];
  await ch.consume(queue, (m) => requests.push(m!), { noAck: true });
  return {
    requests,
    body: (i: number) => JSON.parse(requests[i]!.content.toString()) as Record<string, unknown>,
    reply(req: Delivery, type: string, body: unknown, correlationId = req.properties.correlationId as string | undefined) {
      ch.publish("", req.properties.replyTo as string, Buffer.from(JSON.stringify(body)), { contentType: CONTENT_TYPE, correlationId, type });
    },
  };
}

let broker: FakeBroker;
let clientConn: FakeConnection;
let client: RpcClient;
let server: Awaited<ReturnType<typeof rawServer>>;
const settle = () => broker.settle();
const publishedTo = (queue: string) => broker.published.filter((p) => p.routingKey === queue);

beforeEach(async () => {
  vi.useFakeTimers();
  broker = new FakeBroker();
  clientConn = broker.connect();
  client = new RpcClient(clientConn);
  server = await rawServer(broker.connect(), "rpc.Calculator");
});
afterEach(() => vi.useRealTimers());

describe("call table", () => {
  it("matches each reply to its call by correlation id, whatever the order replies arrive in", async () => {
    const calls = [1, 10, 100].map((n) => track(client.call(add, { a: n, b: 2 * n })));
    await settle();
    expect(server.requests).toHaveLength(3);
    for (let i = 2; i >= 0; i--) server.reply(server.requests[i]!, RESULT_TYPE, { sum: Number(server.body(i).a) + Number(server.body(i).b) });
    await settle();
    expect(calls.map((c) => c.value)).toEqual([{ sum: 3 }, { sum: 30 }, { sum: 300 }]);
    expect(client.pendingCount).toBe(0);
  });

  it("ignores a reply with an unknown correlation id, and one that arrives after its call timed out", async () => {
    const first = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 1000 }));
    await settle();
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: 99 }, "no-such-call");
    await settle();
    expect([first.state, client.pendingCount]).toEqual(["pending", 1]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(first.error?.code).toBe("timeout");
    const second = track(client.call(add, { a: 3, b: 4 }));
    await settle();
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: 3 }); // late: the timed-out call's id
    await settle();
    expect([first.error?.code, second.state, client.pendingCount]).toEqual(["timeout", "pending", 1]);
    server.reply(server.requests[1]!, RESULT_TYPE, { sum: 7 });
    await settle();
    expect(second.value).toEqual({ sum: 7 });
    expect(client.pendingCount).toBe(0);
  });

  it("empties the table after every outcome: result, declared error, invalid response, timeout, cancel, no_server, connection_lost", async () => {
    const outcomes: string[] = [];
    const run = async (p: Promise<unknown>, act: () => unknown) => {
      const t = track(p);
      await settle();
      await act();
      await settle();
      outcomes.push(t.state === "fulfilled" ? "ok" : (t.error?.code ?? t.state));
      expect(client.pendingCount).toBe(0);
    };
    const last = () => server.requests.at(-1)!;
    await run(client.call(add, { a: 1, b: 1 }), () => server.reply(last(), RESULT_TYPE, { sum: 2 }));
    await run(client.call(add, { a: 1, b: 1 }), () => server.reply(last(), ERROR_TYPE, { code: "overflow", message: "too big" }));
    await run(client.call(add, { a: 1, b: 1 }), () => server.reply(last(), RESULT_TYPE, { sum: "two" }));
    await run(client.call(add, { a: 1, b: 1 }, { timeoutMs: 10 }), () => vi.advanceTimersByTimeAsync(10));
    const abort = new AbortController();
    await run(client.call(add, { a: 1, b: 1 }, { signal: abort.signal }), () => abort.abort());
    await run(client.call(placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] }), () => {}); // no queue rpc.Orders yet
    await rawServer(broker.connect(), "rpc.Orders");
    await run(client.call(placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] }), () => clientConn.channels[0]!.failByBroker());
    expect(outcomes).toEqual(["ok", "overflow", "invalid_response", "timeout", "canceled", "no_server", "connection_lost"]);
    expect(client.pendingCount).toBe(0);
  });
});

describe("retries", () => {
  it("retries an idempotent call after connection_lost: new correlation id, same promise, the first call's deadline", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 1000 }));
    await settle();
    const firstReq = server.requests[0]!;
    await vi.advanceTimersByTimeAsync(100);
    clientConn.channels[0]!.failByBroker(); // the reply channel is gone
    await settle();
    expect(call.state).toBe("pending");
    await vi.advanceTimersByTimeAsync(50); // backoff of the second attempt: 25 * 2 ms
    await settle();
    expect(server.requests).toHaveLength(2);
    const [a, b] = server.requests.map((r) => r.properties);
    expect(b!.correlationId).not.toBe(a!.correlationId);
    expect((b!.headers as Record<string, unknown>)[DEADLINE_HEADER]).toBe((a!.headers as Record<string, unknown>)[DEADLINE_HEADER]);
    expect(Number(b!.expiration)).toBe(1000 - 150);
    server.reply(firstReq, RESULT_TYPE, { sum: 0 }); // the first attempt's reply is no longer awaited
    await settle();
    expect(call.state).toBe("pending");
    server.reply(server.requests[1]!, RESULT_TYPE, { sum: 3 });
    await settle();
    expect(call.value).toEqual({ sum: 3 });
  });

  it("a retried call still times out at the first attempt's deadline", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 1000 }));
    await settle();
    await vi.advanceTimersByTimeAsync(100);
    clientConn.channels[0]!.failByBroker();
    await vi.advanceTimersByTimeAsync(50);
    await settle();
    expect(server.requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(849);
    expect(call.state).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(call.error?.code).toBe("timeout");
    expect(client.pendingCount).toBe(0);
  });

  it("does not retry a method that is not idempotent", async () => {
    const orders = await rawServer(broker.connect(), "rpc.Orders");
    const call = track(client.call(placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] }));
    await settle();
    clientConn.channels[0]!.failByBroker();
    await settle();
    expect(call.error?.code).toBe("connection_lost");
    await vi.advanceTimersByTimeAsync(5000);
    await settle();
    expect(orders.requests).toHaveLength(1);
  });

  it("does not retry after no_server, so that answer stays fast", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 5000 }));
    broker.deleteQueue("rpc.Calculator");
    await settle();
    expect(call.error?.code).toBe("no_server");
    await vi.advanceTimersByTimeAsync(5000);
    await settle();
    expect(publishedTo("rpc.Calculator")).toHaveLength(1);
  });

  it("does not retry when the backoff would pass the deadline", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 1000 }));
    await settle();
    await vi.advanceTimersByTimeAsync(960);
    clientConn.channels[0]!.failByBroker();
    await settle();
    expect(call.error?.code).toBe("connection_lost");
    expect(client.pendingCount).toBe(0);
  });
});

describe("deadlines and cancellation", () => {
  // A call waiting out its retry backoff is out of the call table's pending calls; its AbortSignal and close()
  // must still reach it at once (they used to wait for the backoff timer, up to 1 s).
  it("rejects a call waiting for its retry as soon as its AbortSignal fires", async () => {
    const abort = new AbortController();
    const call = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 5000, signal: abort.signal }));
    await settle();
    clientConn.channels[0]!.failByBroker(); // connection_lost: retried after a 50 ms backoff
    await settle();
    abort.abort();
    await settle();
    expect(call.error?.code).toBe("canceled");
  });

  it("close() settles a call waiting for its retry before it resolves", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 5000 }));
    await settle();
    clientConn.channels[0]!.failByBroker();
    await settle();
    await client.close();
    await settle();
    expect(call.error?.code).toBe("canceled");
  });

  it("times out exactly at the deadline, naming the queue", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }, { timeoutMs: 300 }));
    await vi.advanceTimersByTimeAsync(299);
    expect(call.state).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(call.error).toMatchObject({ code: "timeout", message: 'Calculator.add: no reply within 300 ms (queue "rpc.Calculator")' });
  });

  it("sends the deadline as a header and as the message expiration", async () => {
    vi.setSystemTime(1_000_000);
    void client.call(add, { a: 1, b: 2 }).catch(() => {});
    await settle();
    const props = server.requests[0]!.properties;
    expect(props).toMatchObject({ expiration: "5000", type: "add", headers: { [DEADLINE_HEADER]: 1_005_000 } });
  });

  it("rejects with canceled when the AbortSignal fires, and ignores the late reply", async () => {
    const abort = new AbortController();
    const call = track(client.call(add, { a: 1, b: 2 }, { signal: abort.signal }));
    await settle();
    abort.abort(new Error("user left"));
    await settle();
    expect(call.error).toMatchObject({ code: "canceled", message: "Calculator.add: canceled by the caller: user left" });
    expect(client.pendingCount).toBe(0);
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: 3 });
    await settle();
    expect(call.state).toBe("rejected");
    // Already aborted: refused before anything is sent.
    await expect(client.call(add, { a: 1, b: 2 }, { signal: abort.signal })).rejects.toMatchObject({ code: "canceled" });
    expect(publishedTo("rpc.Calculator")).toHaveLength(1);
  });

  it("close() rejects pending calls with canceled, and later calls too", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }));
    await settle();
    await client.close();
    expect(call.error?.code).toBe("canceled");
    expect(client.pendingCount).toBe(0);
    await expect(client.call(add, { a: 1, b: 2 })).rejects.toMatchObject({ code: "canceled" });
    expect(clientConn.channels).toEqual([]);
  });
});

describe("reply queue", () => {
  it("with replyQueue exclusive, replies come through a server-named exclusive queue that goes with the client", async () => {
    const exclusive = new RpcClient(clientConn, { replyQueue: "exclusive" });
    const call = track(exclusive.call(add, { a: 1, b: 2 }));
    await settle();
    const replyTo = server.requests[0]!.properties.replyTo as string;
    expect(replyTo).toMatch(/^amq\.gen-/);
    expect(broker.queue(replyTo)!.options).toMatchObject({ exclusive: true, autoDelete: true });
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: 3 });
    await settle();
    expect(call.value).toEqual({ sum: 3 });
    await exclusive.close();
    expect(broker.queue(replyTo)).toBeUndefined();
  });

  it("reopens its reply channel for the next call after it closed", async () => {
    await client.ready();
    clientConn.channels[0]!.failByBroker();
    const call = track(client.call(add, { a: 1, b: 2 }));
    await settle();
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: 3 });
    await settle();
    expect(call.value).toEqual({ sum: 3 });
    expect(clientConn.channels).toHaveLength(2); // the new reply channel, and the one that checks for consumers
  });
});

describe("no_server", () => {
  it("fails at once when the request comes back unrouted (mandatory publish, no queue)", async () => {
    const call = track(client.call(placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] }));
    await settle();
    expect(call.error).toMatchObject({ code: "no_server", message: expect.stringContaining('queue "rpc.Orders" does not exist') });
    expect(publishedTo("rpc.Orders")[0]!.mandatory).toBe(true);
  });

  it("fails at once, sending nothing, when the queue exists but no server consumes it", async () => {
    await (await broker.connect().open()).declareQueue("rpc.Orders", { durable: true });
    const call = track(client.call(placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] }, { timeoutMs: 30_000 }));
    await settle();
    expect(call.error).toMatchObject({ code: "no_server", message: expect.stringContaining('queue "rpc.Orders" exists but no server consumes it; nothing was sent') });
    expect(publishedTo("rpc.Orders")).toEqual([]);
    // Known for a while: the next call fails without asking again.
    const again = track(client.call(placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] }));
    await settle();
    expect(again.error?.code).toBe("no_server");
  });

  it("with waitForServer, sends the call and waits for a server within its deadline; a server that came is found once the answer is stale", async () => {
    await (await broker.connect().open()).declareQueue("rpc.Orders", { durable: true });
    const order = { region: "eu" as const, items: [{ sku: "x", quantity: 1 }] };
    const refused = track(client.call(placeOrder, order));
    await settle();
    expect(refused.error?.code).toBe("no_server");
    const waiting = track(client.call(placeOrder, order, { timeoutMs: 10_000, waitForServer: true }));
    await settle();
    expect(publishedTo("rpc.Orders")).toHaveLength(1);
    const orders = await rawServer(broker.connect(), "rpc.Orders");
    await settle();
    orders.reply(orders.requests[0]!, RESULT_TYPE, { orderId: "o-1" });
    await settle();
    expect(waiting.value).toEqual({ orderId: "o-1" });
    // The "nobody" answer is stale after a second: asked again before a call is failed with it.
    await vi.advanceTimersByTimeAsync(1500);
    const later = track(client.call(placeOrder, order));
    await settle();
    expect(later.state).toBe("pending");
    expect(orders.requests).toHaveLength(2);
  });

  it("asks the broker once per queue while the answer is current, not per call", async () => {
    const checks = vi.spyOn(MemoryChannel.prototype, "checkQueue");
    const calls = [1, 2, 3, 4, 5].map((a) => track(client.call(add, { a, b: 0 })));
    await settle();
    expect(server.requests).toHaveLength(5);
    expect(checks).toHaveBeenCalledTimes(1);
    for (const r of server.requests) server.reply(r, RESULT_TYPE, { sum: 0 });
    await settle();
    expect(calls.every((c) => c.state === "fulfilled")).toBe(true);
    // Later calls read the answer from the cache.
    const more = [1, 2, 3].map((a) => track(client.call(add, { a, b: 0 })));
    await settle();
    expect(server.requests).toHaveLength(8);
    expect(checks).toHaveBeenCalledTimes(1);
    expect(more.every((c) => c.state === "pending")).toBe(true);
  });
});

describe("validation on the client", () => {
  it("refuses an invalid request with invalid_request before anything is sent", async () => {
    const err = await client.call(add, { a: 1 } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ code: "invalid_request", side: "client", issues: [{ path: "/b", message: "is required" }] });
    expect(broker.published).toEqual([]);
  });

  it("refuses a response that breaks the contract with invalid_response", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }));
    await settle();
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: "3" });
    await settle();
    expect(call.error).toMatchObject({ code: "invalid_response", side: "client", issues: [{ path: "/sum" }] });
  });

  it("drops response properties its contract does not know (a newer server's)", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }));
    await settle();
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: 3, carry: 0 });
    await settle();
    expect(call.value).toEqual({ sum: 3 });
  });

  it("drops data on a declared error whose contract declares none (a newer contract added it)", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }));
    await settle();
    server.reply(server.requests[0]!, ERROR_TYPE, { code: "overflow", message: "too big", data: { limit: 10 } });
    await settle();
    expect(call.error).toMatchObject({ code: "overflow", message: "too big" });
    expect(call.error!.data).toBeUndefined();
  });

  it("checks a declared error's data, passes on an application code its contract does not declare, and refuses caller codes and unknown reply types", async () => {
    const outcomes: (RpcError | undefined)[] = [];
    for (const [type, body] of [
      [ERROR_TYPE, { code: "division_by_zero", message: "no", data: { dividend: 4 } }],
      [ERROR_TYPE, { code: "division_by_zero", message: "no", data: { dividend: "4" } }],
      [ERROR_TYPE, { code: "made_up", message: "?" }],
      [ERROR_TYPE, { code: "timeout", message: "servers may not send caller codes" }],
      ["surprise", {}],
    ] as const) {
      const call = track(client.call(divide, { dividend: 4, divisor: 0 }));
      await settle();
      server.reply(server.requests.at(-1)!, type, body);
      await settle();
      outcomes.push(call.error);
    }
    expect(outcomes[0]).toMatchObject({ code: "division_by_zero", data: { dividend: 4 } });
    expect(outcomes[1]).toMatchObject({ code: "invalid_response", message: expect.stringContaining('data of error "division_by_zero"') });
    // A newer compatible contract may add an error code: it arrives untyped, with its code and message.
    expect(outcomes[2]).toBeInstanceOf(RpcError);
    expect(outcomes[2]).toMatchObject({ code: "made_up", message: expect.stringContaining("?") });
    expect(outcomes.slice(3).map((e) => e?.code)).toEqual(["invalid_response", "invalid_response"]);
  });

  it("surfaces a server-side invalid_request with its issues", async () => {
    const call = track(client.call(add, { a: 1, b: 2 }));
    await settle();
    server.reply(server.requests[0]!, ERROR_TYPE, { code: "invalid_request", message: "x", data: { issues: [{ path: "/a", message: "must be <= 0" }] } });
    await settle();
    expect(call.error).toBeInstanceOf(ValidationError);
    expect(call.error).toMatchObject({ code: "invalid_request", side: "server", issues: [{ path: "/a", message: "must be <= 0" }] });
  });
});

describe("flow control", () => {
  it("publishes nothing while the broker blocks the connection, then sends the waiting calls", async () => {
    await client.ready();
    clientConn.block();
    const call = track(client.call(add, { a: 1, b: 2 }));
    await settle();
    expect(publishedTo("rpc.Calculator")).toHaveLength(0);
    clientConn.unblock();
    await settle();
    expect(publishedTo("rpc.Calculator")).toHaveLength(1);
    server.reply(server.requests[0]!, RESULT_TYPE, { sum: 3 });
    await settle();
    expect(call.value).toEqual({ sum: 3 });
  });

  it("once a publish finds the socket buffer full, later calls wait for it to drain", async () => {
    await client.ready();
    clientConn.saturate();
    void client.call(add, { a: 1, b: 2 }).catch(() => {});
    void client.call(add, { a: 3, b: 4 }).catch(() => {});
    await settle();
    expect(publishedTo("rpc.Calculator")).toHaveLength(1);
    clientConn.drain();
    await settle();
    expect(publishedTo("rpc.Calculator")).toHaveLength(2);
    await client.close();
  });
});
