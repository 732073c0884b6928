/**
 * The test kit's own API and the faults only it can inject (src/testing/): each fault's
 * outcome as the caller, the handler and the broker see it. What both the kit and RabbitMQ can
 * do is in the shared suite (suite.ts) instead.
 */
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import { Calculator, CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { OrdersPublisher, OrdersSubscriber, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { PointsClient, servePoints } from "../../generated/points/index.js";
import { RpcError, type EventContext, type HandlerContext } from "../../src/index.js";
import { createTestKit, type TestKit } from "../../src/testing/index.js";
import { rejection } from "../helpers/outcome.js";

let kit: TestKit;
beforeEach(() => {
  kit = createTestKit();
});
afterEach(async () => {
  vi.useRealTimers();
  await kit.close();
});


/** Serves Calculator with handlers that record each context; returns the generated client and the records. */
async function calculator() {
  const seen: HandlerContext<any>[] = [];
  const handlers: CalculatorHandlers = {
    add: ({ a, b }, ctx) => (seen.push(ctx), { sum: a + b }),
    divide: ({ dividend, divisor }) => ({ quotient: dividend / divisor }),
    summarize: ({ values, statistic }) => ({ statistic, value: values[0]!, count: values.length, label: null }),
    centroid: ({ points }) => points[0]!,
  };
  await serveCalculator(kit.server(), handlers);
  const client = await kit.client();
  return { calc: new CalculatorClient(client), client, seen };
}

const order = (orderId: string): OrderPlacedEvent => ({ orderId, region: "eu", items: [{ sku: "tea", quantity: 1 }] });

describe("the kit", () => {
  it("serves generated handlers through the generated client with no timer in the path: a call completes under fake timers without advancing them", async () => {
    vi.useFakeTimers();
    const { calc, client } = await calculator();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => calc.add({ a: i, b: 1 })));
    expect(results[99]).toEqual({ sum: 100 });
    expect(client.pendingCount).toBe(0);
  });

  it("idle() waits for event handlers to finish; close() cancels pending calls", async () => {
    const got: string[] = [];
    await new OrdersSubscriber(kit.events()).onOrderPlaced(async (o) => {
      await new Promise((r) => setTimeout(r, 5));
      got.push(o.orderId);
    }, { group: "billing" });
    await new OrdersPublisher(kit.events()).publishOrderPlaced(order("o-1"));
    await kit.idle();
    expect(got).toEqual(["o-1"]);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await servePoints(kit.server(), { addPoint: async ({ x, y }) => (await gate, { count: 1, centroid: { x, y } }) });
    const points = new PointsClient(await kit.client());
    const pending = rejection(points.addPoint({ x: 1, y: 1 }));
    await kit.broker.settle();
    const closing = kit.close(); // clients first: the pending call is canceled; the server waits for its handler
    expect((await pending).code).toBe("canceled");
    release();
    await closing;
  });

  it("disconnect() drops one part's connection; it resumes by itself", async () => {
    const { calc, client } = await calculator();
    kit.disconnect(client);
    expect(await calc.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
    expect(() => kit.disconnect({} as never)).toThrow(TypeError);
  });

  it("fault targets: names (wire or TypeScript), descriptors, a whole service; one action per rule", async () => {
    expect(() => kit.faults.on("Calculator.add.extra")).toThrow(TypeError);
    const twice = kit.faults.on("Calculator.add").noReply();
    expect(() => twice.delay(1)).toThrow(TypeError);
    twice.remove();
    expect(kit.faults.rules).toEqual([]);
    expectTypeOf(kit.faults.on(Calculator.methods.add).when).parameter(0).parameter(0).toEqualTypeOf<{ a: number; b: number }>();
    await servePoints(kit.server(), { addPoint: ({ x, y }) => ({ count: 1, centroid: { x, y } }) });
    const points = new PointsClient(await kit.client());
    for (const target of ["Points.add_point", "Points.addPoint", "Points"]) {
      const rule = kit.faults.on(target).once().noServer();
      expect((await rejection(points.addPoint({ x: 1, y: 1 }))).code).toBe("no_server");
      expect([rule.hits, rule.active]).toEqual([1, false]);
    }
    const { calc } = await calculator();
    kit.faults.on(Calculator.methods.add).once().noServer();
    expect((await rejection(calc.add({ a: 1, b: 1 }))).code).toBe("no_server");
    expect(await calc.divide({ dividend: 1, divisor: 1 })).toEqual({ quotient: 1 }); // another method: untouched
  });
});

describe("faults on calls", () => {
  it("per call: when() picks the call, times() counts, remove() stops", async () => {
    const { calc } = await calculator();
    const rule = kit.faults.on(Calculator.methods.add).when((req) => req.a === 13).times(2).noServer();
    const outcomes = await Promise.all([13, 1, 13, 13].map((a) => calc.add({ a, b: 0 }).then((r) => r.sum, (e: RpcError) => e.code)));
    expect(outcomes).toEqual(["no_server", 1, "no_server", 13]);
    const always = kit.faults.on("Calculator.add").noServer();
    expect((await rejection(calc.add({ a: 2, b: 2 }))).code).toBe("no_server");
    always.remove();
    expect(await calc.add({ a: 2, b: 2 })).toEqual({ sum: 4 });
    expect(rule.hits).toBe(2);
  });

  it("delay(ms): the request reaches the handler ms later, with less of its budget; past the deadline it never runs (timeout)", async () => {
    vi.useFakeTimers();
    const { calc, seen } = await calculator();
    kit.faults.on("Calculator.add").once().delay(300);
    const call = calc.add({ a: 1, b: 2 }, { timeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(299);
    expect(seen).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(await call).toEqual({ sum: 3 });
    expect(seen[0]!.deadline! - Date.now()).toBe(700);
    kit.faults.on("Calculator.add").once().delay(2000);
    const late = rejection(calc.add({ a: 1, b: 2 }, { timeoutMs: 1000 }));
    await vi.advanceTimersByTimeAsync(2000);
    expect((await late).code).toBe("timeout");
    expect(seen).toHaveLength(1); // the server dropped the expired request unrun
  });

  it("noReply(): the handler runs, the caller gets timeout", async () => {
    const { calc, client, seen } = await calculator();
    kit.faults.on("Calculator.add").once().noReply();
    expect((await rejection(calc.add({ a: 1, b: 2 }, { timeoutMs: 30 }))).code).toBe("timeout");
    expect([seen.length, client.pendingCount]).toEqual([1, 0]);
  });

  it("noServer(): the caller gets no_server and nothing runs", async () => {
    const { calc, seen } = await calculator();
    kit.faults.on("Calculator.add").noServer();
    expect((await rejection(calc.add({ a: 1, b: 2 }, { timeoutMs: 5000 }))).code).toBe("no_server");
    expect(seen).toHaveLength(0);
  });

  it("connectionLost(): a non-idempotent call fails with connection_lost after its handler ran; an idempotent one is retried", async () => {
    let runs = 0;
    await servePoints(kit.server(), { addPoint: ({ x, y }) => (runs++, { count: runs, centroid: { x, y } }) });
    const points = new PointsClient(await kit.client());
    kit.faults.on("Points.add_point").once().connectionLost();
    expect((await rejection(points.addPoint({ x: 1, y: 1 }))).code).toBe("connection_lost");
    expect(runs).toBe(1);
    expect(await points.addPoint({ x: 2, y: 2 })).toEqual({ count: 2, centroid: { x: 2, y: 2 } }); // reconnected

    const { calc, seen } = await calculator();
    kit.faults.on("Calculator.add").once().connectionLost();
    expect(await calc.add({ a: 20, b: 22 })).toEqual({ sum: 42 });
    expect(seen.map((c) => c.redelivered)).toEqual([false, false]); // two attempts (new correlation ids), not a redelivery
    expect(seen[0]!.correlationId).not.toBe(seen[1]!.correlationId);
  });

  it("duplicate(): the handler runs twice, the second time redelivered; the caller gets one answer", async () => {
    const { calc, client, seen } = await calculator();
    kit.faults.on("Calculator.add").once().duplicate();
    expect(await calc.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
    await kit.idle();
    expect(seen.map((c) => [c.correlationId, c.redelivered])).toEqual([[seen[0]!.correlationId, false], [seen[0]!.correlationId, true]]);
    expect(client.pendingCount).toBe(0);
  });

  it("lateReply(): the caller times out; the reply arrives after and is ignored", async () => {
    const { calc, client, seen } = await calculator();
    const rule = kit.faults.on("Calculator.add").once().lateReply();
    expect((await rejection(calc.add({ a: 1, b: 2 }, { timeoutMs: 30 }))).code).toBe("timeout");
    expect(kit.faults.holding).toBe(1); // the reply, held
    await kit.idle();
    expect([kit.faults.holding, rule.hits, seen.length, client.pendingCount]).toEqual([0, 1, 1, 0]); // delivered, and ignored
    expect(await calc.add({ a: 2, b: 2 })).toEqual({ sum: 4 });
  });

  it("malformedReply(): the caller gets invalid_response", async () => {
    const { calc, seen } = await calculator();
    kit.faults.on("Calculator.add").once().malformedReply();
    kit.faults.on("Calculator.divide").once().malformedReply(JSON.stringify({ quotient: "one" }));
    const err = await rejection(calc.add({ a: 1, b: 2 }));
    expect([err.code, seen.length]).toEqual(["invalid_response", 1]);
    expect((await rejection(calc.divide({ dividend: 1, divisor: 1 }))).code).toBe("invalid_response");
  });
});

describe("faults on events", () => {
  it("nack(): the bus sends a nacked event once more on a fresh channel; nacked again, publish rejects with rejected", async () => {
    const got: string[] = [];
    await new OrdersSubscriber(kit.events()).onOrderPlaced((o) => void got.push(o.orderId), { group: "billing" });
    const publisher = new OrdersPublisher(kit.events());
    const once = kit.faults.on("Orders.order_placed").once().nack();
    await publisher.publishOrderPlaced(order("o-1"));
    const always = kit.faults.on("Orders.orderPlaced").nack();
    expect((await rejection(publisher.publishOrderPlaced(order("o-2")))).code).toBe("rejected");
    await kit.idle();
    expect([got, once.hits, always.hits]).toEqual([["o-1"], 1, 2]);
  });

  it("duplicate() and delay() on events: a group's handler runs twice (redelivered), a delayed event arrives later", async () => {
    vi.useFakeTimers();
    const got: [string, boolean][] = [];
    await new OrdersSubscriber(kit.events()).onOrderPlaced((o, ctx: EventContext) => void got.push([o.orderId, ctx.redelivered]), { group: "billing" });
    const publisher = new OrdersPublisher(kit.events());
    kit.faults.on("Orders.order_placed").once().duplicate();
    await publisher.publishOrderPlaced(order("o-1"));
    await kit.broker.settle();
    expect(got).toEqual([["o-1", false], ["o-1", true]]);
    kit.faults.on("Orders.order_placed").once().delay(100);
    const published = publisher.publishOrderPlaced(order("o-2"));
    await vi.advanceTimersByTimeAsync(99);
    expect(got).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    await published;
    await kit.broker.settle();
    expect(got[2]).toEqual(["o-2", false]);
  });

  it("faults that only calls have leave events alone, and nack() leaves calls alone", async () => {
    const got: string[] = [];
    await new OrdersSubscriber(kit.events()).onOrderPlaced((o) => void got.push(o.orderId), { group: "billing" });
    kit.faults.on("Orders").noReply();
    kit.faults.on("Calculator").nack();
    await new OrdersPublisher(kit.events()).publishOrderPlaced(order("o-1"));
    const { calc } = await calculator();
    expect(await calc.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
    await kit.idle();
    expect(got).toEqual(["o-1"]);
  });
});

describe("outside a test runner", () => {
  it("a call that waits for its timeout settles in a plain script: the kit holds the process until it is closed", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const path = await import("node:path");
    const root = path.resolve(import.meta.dirname, "../..");
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", path.join(root, "test/helpers/kit-timeout-script.ts")], { cwd: root });
    expect(stdout.trim()).toBe("outcome timeout");
  }, 30_000);
});
