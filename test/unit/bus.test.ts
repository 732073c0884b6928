/** src/events/bus.ts over the in-memory broker: what a publish sends, when it resolves, and how it fails. */
import { beforeEach, describe, expect, it } from "vitest";
import { EventBus } from "../../src/events/bus.js";
import { Orders, OrdersPublisher, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { FakeBroker, brokerError, type FakeConnection } from "../helpers/fake-channel-source.js";

const placed = Orders.events.orderPlaced;
const order: OrderPlacedEvent = { orderId: "o-1", region: "eu", items: [{ sku: "apple", quantity: 2 }] };

let broker: FakeBroker;
let conn: FakeConnection;
let bus: EventBus;

/** The state of a promise, readable without awaiting it. */
function track(p: Promise<unknown>): { state: string; error?: { code: string; message: string } } {
  const t: ReturnType<typeof track> = { state: "pending" };
  p.then(
    () => (t.state = "fulfilled"),
    (error: { code: string; message: string }) => Object.assign(t, { state: "rejected", error }),
  );
  return t;
}

/** A queue bound to the Orders exchange for every event, to see what was routed. */
async function tap(): Promise<string> {
  const ch = await broker.connect().open();
  await ch.declareExchange("events.Orders", "topic", { durable: true });
  await ch.declareQueue("tap", { durable: true });
  await ch.bindQueue("tap", "events.Orders", "#");
  return "tap";
}

beforeEach(() => {
  broker = new FakeBroker();
  conn = broker.connect();
  bus = new EventBus(conn);
});

describe("publish", () => {
  it("declares the exchange and publishes a persistent event with its routing key, type and message id, once confirmed", async () => {
    await new OrdersPublisher(bus).publishOrderPlaced(order, { messageId: "m-1", headers: { tenant: "t1" } });
    const [sent] = broker.published;
    expect(sent).toMatchObject({ exchange: "events.Orders", routingKey: "orders.eu.placed" });
    expect(sent!.properties).toMatchObject({ deliveryMode: 2, contentType: "application/json", type: "order_placed", messageId: "m-1", headers: { tenant: "t1" } });
    expect(JSON.parse(sent!.content.toString())).toEqual(order);
    const random = track(bus.publish(placed, order));
    await random;
    expect(broker.published[1]!.properties.messageId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("resolves only once the broker confirms; without confirm it does not wait", async () => {
    const queue = await tap();
    broker.swallow(queue); // the broker never answers
    const waiting = track(bus.publish(placed, order));
    await broker.settle();
    expect(waiting.state).toBe("pending");
    const noConfirm = new EventBus(broker.connect(), { confirm: false, persistent: false });
    await noConfirm.publish(placed, order);
    expect(broker.published.at(-1)!.properties.deliveryMode).toBe(1);
  });

  it("refuses an invalid payload or a reserved header with invalid_event, publishing nothing", async () => {
    await expect(bus.publish(placed, { ...order, region: "mars" } as never)).rejects.toMatchObject({ code: "invalid_event", issues: [{ path: "/region" }] });
    await expect(bus.publish(placed, order, { headers: { "X-Warren-Attempt": 3 } })).rejects.toMatchObject({ code: "invalid_event" });
    expect(broker.published).toEqual([]);
  });

  it("rejects with rejected when the broker nacks, and connection_lost when the channel closes before the confirm", async () => {
    broker.nackNextConfirms(2); // the first nack is answered by sending once more, on a fresh channel
    await expect(bus.publish(placed, order)).rejects.toMatchObject({ code: "rejected" });
    const queue = await tap();
    broker.swallow(queue);
    const pending = track(bus.publish(placed, order));
    await broker.settle();
    conn.channels[0]!.failByBroker(brokerError(320, "CONNECTION_FORCED - gone"));
    await broker.settle();
    expect(pending.error).toMatchObject({ code: "connection_lost", message: expect.stringContaining("may or may not have been published") });
    // The next publish opens a new channel.
    broker.unswallow(queue);
    await bus.publish(placed, order);
    expect(broker.queue(queue)!.ready).toBe(1);
  });

  it("names the exchange when it exists as another kind", async () => {
    await (await broker.connect().open()).declareExchange("events.Orders", "fanout", { durable: true });
    await expect(bus.publish(placed, order)).rejects.toMatchObject({ code: "setup_failed", message: expect.stringContaining('exchange "events.Orders" exists as a fanout exchange') });
  });

  it("publishes to the exchange the bus overrides", async () => {
    await new EventBus(conn, { exchanges: { Orders: "events.Orders.test" } }).publish(placed, order);
    expect(broker.published[0]!.exchange).toBe("events.Orders.test");
  });

  it("waits while the broker blocks the connection, and publishes on unblock", async () => {
    await bus.publish(placed, order); // the channel is open
    conn.block();
    const waiting = track(bus.publish(placed, order));
    await broker.settle();
    expect([broker.published.length, waiting.state]).toEqual([1, "pending"]);
    conn.unblock();
    await broker.settle();
    expect([broker.published.length, waiting.state]).toEqual([2, "fulfilled"]);
  });

  it("refuses to publish or subscribe once closed", async () => {
    await bus.close();
    await expect(bus.publish(placed, order)).rejects.toMatchObject({ code: "canceled" });
    await expect(bus.subscribe(placed, () => {})).rejects.toMatchObject({ code: "canceled" });
  });
});
