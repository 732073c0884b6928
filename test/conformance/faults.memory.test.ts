/**
 * The test kit's own API and the faults only it can inject (src/testing/): each fault's
 * outcome as the caller, the handler and the broker see it. What both the kit and RabbitMQ can
 * do is in the shared suite (suite.ts) instead.
 */
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import { Calculator, CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { Orders, OrdersClient, OrdersPublisher, OrdersSubscriber, serveOrders, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { Points, PointsClient, servePoints } from "../../generated/points/index.js";
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
    const typed = kit.faults.on(Calculator.methods.add);
    expectTypeOf(typed.when).parameter(0).parameter(0).toEqualTypeOf<{ a: number; b: number }>();
    typed.remove(); // a rule left with no action would make close() throw
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

  it("on a whole service, faults that only calls have leave its events alone, and nack() leaves its methods alone", async () => {
    const got: string[] = [];
    await new OrdersSubscriber(kit.events()).onOrderPlaced((o) => void got.push(o.orderId), { group: "billing" });
    const noReply = kit.faults.on("Orders").noReply();
    await new OrdersPublisher(kit.events()).publishOrderPlaced(order("o-1"));
    await kit.idle();
    noReply.remove();
    const nack = kit.faults.on("Orders").nack();
    await serveOrders(kit.server(), { placeOrder: () => ({ orderId: "o-2" }) });
    const orders = new OrdersClient(await kit.client());
    expect(await orders.placeOrder({ region: "eu", items: [{ sku: "tea", quantity: 1 }] })).toEqual({ orderId: "o-2" });
    expect([got, noReply.hits, nack.hits]).toEqual([["o-1"], 0, 0]);
  });
});

describe("rules that could never act are refused, naming the rule", () => {
  const handlers: CalculatorHandlers = {
    add: ({ a, b }) => ({ sum: a + b }),
    divide: ({ dividend, divisor }) => ({ quotient: dividend / divisor }),
    summarize: ({ values, statistic }) => ({ statistic, value: values[0]!, count: values.length, label: null }),
    centroid: ({ points }) => points[0]!,
  };
  const never = (label: string, problem: string) => `warren/testing: fault rule "${label}": ${problem}`;

  it("at once for a descriptor or a service the kit knows: an action of the other kind, a name the service lacks (did you mean)", async () => {
    expect(() => kit.faults.on(Calculator.methods.add).nack()).toThrow(new TypeError(never("Calculator.add", "nack() acts on events only, and Calculator.add is a method: the rule could never act")));
    expect(() => kit.faults.on(Orders.events.orderPlaced).noReply()).toThrow(new TypeError(never("Orders.order_placed", "noReply() acts on calls only, and Orders.order_placed is an event: the rule could never act")));
    expect(() => kit.faults.on(Calculator).nack()).toThrow(new TypeError(never("Calculator", "nack() acts on events only, and Calculator has no events: the rule could never act")));
    expect(() => kit.faults.on("Orders.orderPlaced").connectionLost()).toThrow(/^warren\/testing: fault rule "Orders.orderPlaced": connectionLost\(\) acts on calls only/);
    expect(() => kit.faults.on("Calculator.ad")).toThrow(new TypeError(never("Calculator.ad", 'Calculator has no method or event "ad"; did you mean "add"?')));
    expect(() => kit.faults.on("Orders.order_shiped")).toThrow(new TypeError(never("Orders.order_shiped", 'Orders has no method or event "order_shiped"; did you mean "order_shipped"?')));
    expect(() => kit.faults.on("Orders.refund")).toThrow(new TypeError(never("Orders.refund", 'Orders has no method or event "refund"')));
    expect(kit.faults.rules).toEqual([]); // a refused rule is not kept
    // What can act is accepted: actions of both kinds on events, a call-only action on a service that has methods.
    for (const make of [() => kit.faults.on("Orders.order_placed").delay(1), () => kit.faults.on(Orders.events.orderShipped).duplicate(), () => kit.faults.on("Orders").noReply(), () => kit.faults.on("Orders").nack()]) make().remove();
  });

  it("when the kit learns the service, for a name given before: what taught it (register, a call, publish, subscribeAll) rejects, and the rule is gone", async () => {
    kit.faults.on("Calculator.ad").noReply();
    await expect(serveCalculator(kit.server(), handlers)).rejects.toThrow(new TypeError(never("Calculator.ad", 'Calculator has no method or event "ad"; did you mean "add"?')));
    expect(kit.faults.rules).toEqual([]);
    await serveCalculator(kit.server(), handlers); // the bad rule is gone: this goes on as usual

    const points = new PointsClient(await kit.client());
    kit.faults.on("Points.add_point").once().nack();
    await expect(points.addPoint({ x: 1, y: 1 })).rejects.toThrow(new TypeError(never("Points.add_point", "nack() acts on events only, and Points.add_point is a method: the rule could never act")));
    expect((await rejection(points.addPoint({ x: 1, y: 1 }))).code).toBe("no_server"); // the call after it goes out

    kit.faults.on("Orders.orderPlaced").malformedReply();
    await expect(new OrdersPublisher(kit.events()).publishOrderPlaced(order("o-1"))).rejects.toThrow(/^warren\/testing: fault rule "Orders.orderPlaced": malformedReply\(\) acts on calls only, and Orders.orderPlaced is an event/);

    const fresh = createTestKit();
    try {
      fresh.faults.on("Orders.order_shiped").delay(5);
      fresh.faults.on("Orders.order_placed").delay(5); // checked at the same moment, and fine: it stays
      await expect(fresh.events().subscribeAll(Orders, { orderPlaced: () => {} })).rejects.toThrow(/"Orders.order_shiped": Orders has no method or event "order_shiped"; did you mean "order_shipped"\?$/);
      expect(fresh.faults.rules.map((r) => r.target)).toEqual(["Orders.order_placed"]);
    } finally {
      await fresh.close();
    }
  });

  it("by close(), after closing everything, for a service the kit never learned (did you mean) and for a rule given no action", async () => {
    const misspelt = kit.faults.on("Calculater.add").noReply();
    kit.faults.on("Points.add_point").once(); // no action
    kit.faults.on("Nowhere").noServer().remove(); // removed: not reported
    await serveCalculator(kit.server(), handlers);
    const calc = new CalculatorClient(await kit.client());
    expect(await calc.add({ a: 1, b: 2 })).toEqual({ sum: 3 }); // the misspelt rule never acted
    expect(misspelt.hits).toBe(0);
    await servePoints(kit.server(), { addPoint: ({ x, y }) => ({ count: 1, centroid: { x, y } }) });
    const err = await kit.close().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toBe([
      never("Calculater.add", 'the kit never learned a service "Calculater" (no client called it, no server served it, no bus published or subscribed to it); did you mean "Calculator"?'),
      never("Points.add_point", "it was given no action (delay(), noReply(), noServer(), duplicate(), nack(), ...)"),
    ].join("\n"));
    await expect(kit.client()).rejects.toThrow("warren/testing: the test kit is closed");
  });

  it("a service the kit learned by descriptor checks the names given for it before", () => {
    kit.faults.on("Points.addPiont").delay(1);
    expect(() => kit.faults.on(Points)).toThrow(new TypeError(never("Points.addPiont", 'Points has no method or event "addPiont"; did you mean "addPoint"?')));
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
