/**
 * One queue for several events of a service (`subscribeAll`), and the event
 * handler timeout (`handlerTimeoutMs`), over the in-memory broker of the kit.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Orders, OrdersPublisher, OrdersSubscriber, type OrderPlacedEvent, type OrderShippedEvent } from "../../generated/orders/index.js";
import type { EventContext } from "../../src/index.js";
import { createTestKit, type TestKit } from "../../src/testing/index.js";

let kit: TestKit;
afterEach(() => kit?.close());

const placed = (id: string, region: "eu" | "us" = "eu"): OrderPlacedEvent => ({ orderId: id, region, items: [{ sku: "a", quantity: 1 }] });
const shipped = (id: string): OrderShippedEvent => ({ orderId: id, region: "eu", carrier: "post" });

describe("subscribeAll: several events through one queue", () => {
  it("delivers each event to its typed handler from one group queue, bound with each event's key", async () => {
    kit = createTestKit();
    const got: string[] = [];
    const sub = await new OrdersSubscriber(kit.events()).subscribeAll(
      {
        orderPlaced: (o, ctx) => void got.push(`placed:${o.orderId}:${ctx.event}:${ctx.bindingKey}`),
        orderShipped: (s, ctx) => void got.push(`shipped:${s.orderId}:${s.carrier}:${ctx.event}`),
      },
      { group: "ops", prefetch: 4 },
    );
    expect(sub.queue).toBe("events.Orders.ops");
    expect(sub.deadLetterQueue).toBe("events.Orders.ops.dead");
    const publisher = new OrdersPublisher(kit.events());
    await publisher.publishOrderPlaced(placed("o-1"));
    await publisher.publishOrderShipped(shipped("o-1"));
    await publisher.publishOrderPlaced(placed("o-2", "us"));
    await kit.idle();
    expect(got).toEqual(["placed:o-1:order_placed:orders.*.placed", "shipped:o-1:post:order_shipped", "placed:o-2:order_placed:orders.*.placed"]);
    expect(kit.broker.queue("events.Orders.ops")?.consumers).toBe(1); // one consumer for both events
  });

  it("skips events of the service it has no handler for, and validates each event against its own schema", async () => {
    kit = createTestKit();
    const got: string[] = [];
    const sub = await new OrdersSubscriber(kit.events()).subscribeAll({ orderShipped: (s) => void got.push(s.orderId) }, { group: "ship" });
    const publisher = new OrdersPublisher(kit.events());
    await publisher.publishOrderShipped(shipped("s-1"));
    await kit.idle();
    expect(got).toEqual(["s-1"]);
    expect(sub.skipped).toBe(0); // order_placed is not bound at all
  });

  it("refuses what cannot work: no handler, an unknown event, a bindingKey for several events", async () => {
    kit = createTestKit();
    const subscriber = new OrdersSubscriber(kit.events());
    await expect(subscriber.subscribeAll({}, { group: "g" })).rejects.toThrow(/no event handler was given/);
    await expect(kit.events().subscribeAll(Orders, { orderCancelled: () => {} } as never, { group: "g" })).rejects.toThrow(/Orders has no event "orderCancelled" \(its events: orderPlaced, orderShipped\)/);
    await expect(subscriber.subscribeAll({ orderPlaced: () => {}, orderShipped: () => {} }, { group: "g", bindingKey: "orders.#" })).rejects.toThrow(/"bindingKey" applies to a subscription to one event/);
  });
});

describe("handlerTimeoutMs", () => {
  it("fails a run that outlasts it (retried, then dead-lettered with the reason) and fires its ctx.signal", async () => {
    kit = createTestKit();
    const signals: AbortSignal[] = [];
    const deadlines: (number | undefined)[] = [];
    const sub = await new OrdersSubscriber(kit.events()).onOrderPlaced(
      (_o, ctx: EventContext) => {
        signals.push(ctx.signal!);
        deadlines.push(ctx.deadline);
        return new Promise<void>((resolve) => ctx.signal!.addEventListener("abort", () => resolve()));
      },
      { group: "slow", handlerTimeoutMs: 30, maxAttempts: 2, retryDelayMs: 0 },
    );
    await new OrdersPublisher(kit.events()).publishOrderPlaced(placed("o-1"));
    await kit.idle();
    expect(signals).toHaveLength(2);
    expect(signals.every((s) => s.aborted && (s.reason as { code?: string }).code === "timeout")).toBe(true);
    expect(deadlines.every((d) => typeof d === "number")).toBe(true);
    const dead = kit.broker.queue(sub.deadLetterQueue)!;
    expect(dead.messages).toHaveLength(1);
    expect(dead.messages[0]!.properties.headers).toMatchObject({ "x-warren-dead-reason": "handler_failed", "x-warren-dead-error": expect.stringContaining("did not finish within handlerTimeoutMs (30 ms)") });
  });

  it("leaves a handler that finishes in time alone; without it, contexts carry no signal", async () => {
    kit = createTestKit();
    const seen: EventContext[] = [];
    await new OrdersSubscriber(kit.events()).onOrderPlaced((_o, ctx) => void seen.push(ctx), { group: "fast", handlerTimeoutMs: 5_000 });
    await new OrdersSubscriber(kit.events()).onOrderPlaced((_o, ctx) => void seen.push(ctx), { group: "plain" });
    await new OrdersPublisher(kit.events()).publishOrderPlaced(placed("o-1"));
    await kit.idle();
    const [timed, plain] = [seen.find((c) => c.group === "fast")!, seen.find((c) => c.group === "plain")!];
    expect(timed.signal?.aborted).toBe(false);
    expect(plain.signal).toBeUndefined();
    expect(plain.deadline).toBeUndefined();
  });
});

describe("acknowledgements", () => {
  it("are batched per turn and all sent before close() closes the channel: nothing finished comes back", async () => {
    kit = createTestKit();
    const got: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const sub = await new OrdersSubscriber(kit.events()).onOrderPlaced(async (o) => {
      await gate; // all finish in one turn: their acks go out together
      got.push(o.orderId);
    }, { group: "batch", prefetch: 8 });
    const publisher = new OrdersPublisher(kit.events());
    for (let i = 0; i < 5; i++) await publisher.publishOrderPlaced(placed(`o-${i}`));
    while (sub.inFlight < 5) await new Promise((r) => setImmediate(r));
    const closing = sub.close(); // waits for the five handlers, then closes
    release();
    await closing;
    expect(got).toHaveLength(5);
    expect(kit.broker.queue(sub.queue === "" ? "events.Orders.order_placed.batch" : sub.queue)).toMatchObject({ ready: 0, unacked: 0 });
  });
});
