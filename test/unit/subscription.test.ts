/** src/events/subscription.ts over the in-memory broker: handling, retries, dead letters, skipped messages, queues. */
import { DEFAULT_ACK_DELAY_MS } from "../../src/core/options.js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ATTEMPT_HEADER, CONTENT_TYPE, CONTRACT_VERSION_HEADER, DEAD_ERROR_HEADER, DEAD_QUEUE_HEADER, DEAD_REASON_HEADER, ORIGIN_EXCHANGE_HEADER, ORIGIN_ROUTING_KEY_HEADER } from "../../src/core/protocol.js";
import type { MessageProperties } from "../../src/amqp/channel-source.js";
import { EventBus } from "../../src/events/bus.js";
import type { EventContext } from "../../src/events/subscription.js";
import { Orders, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { FakeBroker, type FakeConnection } from "../helpers/fake-channel-source.js";

/** Lets the acknowledgements a subscription holds (ackDelayMs) go out. */
const acksSent = () => vi.advanceTimersByTimeAsync(DEFAULT_ACK_DELAY_MS);

const placed = Orders.events.orderPlaced;
const order: OrderPlacedEvent = { orderId: "o-1", region: "eu", items: [{ sku: "apple", quantity: 2 }] };

let broker: FakeBroker;
let conn: FakeConnection;
let bus: EventBus;
let publisher: EventBus;
const settle = () => broker.settle();
const headersOf = (props: MessageProperties) => props.headers as Record<string, unknown>;

/** Publishes a raw message to the Orders exchange, as another language's publisher could. */
async function rawPublish(routingKey: string, content: unknown, props: MessageProperties = {}) {
  const ch = await broker.connect().open();
  const body = Buffer.isBuffer(content) ? content : Buffer.from(JSON.stringify(content));
  ch.publish("events.Orders", routingKey, body, { contentType: CONTENT_TYPE, type: "order_placed", ...props });
}

beforeEach(() => {
  vi.useFakeTimers();
  broker = new FakeBroker();
  conn = broker.connect();
  bus = new EventBus(conn);
  publisher = new EventBus(broker.connect());
});
afterEach(() => vi.useRealTimers());

describe("handling", () => {
  it("hands a valid event and its context to the handler, then acks it", async () => {
    const seen: [OrderPlacedEvent, EventContext][] = [];
    const sub = await bus.subscribe(placed, (p, ctx) => void seen.push([p, ctx]), { group: "billing" });
    await publisher.publish(placed, order, { messageId: "m-1", headers: { tenant: "t1" } });
    await settle();
    expect(seen).toHaveLength(1);
    expect(seen[0]![0]).toEqual(order);
    expect(seen[0]![1]).toMatchObject({ service: "Orders", event: "order_placed", exchange: "events.Orders", routingKey: "orders.eu.placed", messageId: "m-1", attempt: 1, redelivered: false, headers: { tenant: "t1" } });
    expect(sub.queue).toBe("events.Orders.order_placed.billing");
    await acksSent(); // held for ackDelayMs to go out together
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0, consumers: 1 });
  });

  it("spreads a group's events over its subscribers, and gives every broadcast subscriber each one", async () => {
    const got: string[] = [];
    await bus.subscribe(placed, () => void got.push("billing-1"), { group: "billing" });
    await new EventBus(broker.connect()).subscribe(placed, () => void got.push("billing-2"), { group: "billing" });
    await bus.subscribe(placed, () => void got.push("eu-watcher"), { bindingKey: "orders.eu.*" });
    await bus.subscribe(placed, () => void got.push("us-watcher"), { bindingKey: "orders.us.*" });
    for (let i = 0; i < 4; i++) await publisher.publish(placed, { ...order, orderId: `o-${i}` });
    await settle();
    expect(got.filter((g) => g.startsWith("billing")).sort()).toEqual(["billing-1", "billing-1", "billing-2", "billing-2"]);
    expect(got.filter((g) => g.endsWith("watcher"))).toEqual(["eu-watcher", "eu-watcher", "eu-watcher", "eu-watcher"]);
  });

  it("skips (acks, counts, does not dead-letter) a message of another event type on its queue", async () => {
    const handled: unknown[] = [];
    const sub = await bus.subscribe(placed, (p) => void handled.push(p), { bindingKey: "orders.#" });
    await rawPublish("orders.eu.shipped", { orderId: "o-1", region: "eu", carrier: "dhl" }, { type: "order_shipped" });
    await settle();
    expect([handled, sub.skipped]).toEqual([[], 1]);
    await acksSent(); // held for ackDelayMs to go out together
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0 });
    expect(broker.queue(sub.deadLetterQueue)).toBeUndefined(); // broadcast subscribers' shared dead-letter queue is made by the first dead letter
  });
});

describe("retries and dead letters", () => {
  it("retries a failing handler with attempt numbers and doubling delays up to maxAttempts, then dead-letters it with the reason", async () => {
    const attempts: [number, string, number][] = [];
    const start = Date.now();
    const sub = await bus.subscribe(
      placed,
      (_p, ctx) => {
        attempts.push([ctx.attempt, ctx.routingKey, Date.now() - start]);
        throw new Error("ledger unavailable");
      },
      { group: "billing", maxAttempts: 3, retryDelayMs: 100 },
    );
    await publisher.publish(placed, order);
    await settle();
    await vi.advanceTimersByTimeAsync(99);
    expect(attempts.map((a) => a[0])).toEqual([1]);
    await vi.advanceTimersByTimeAsync(1);
    await settle();
    await vi.advanceTimersByTimeAsync(200);
    await settle();
    expect(attempts).toEqual([
      [1, "orders.eu.placed", 0],
      [2, "orders.eu.placed", 100],
      [3, "orders.eu.placed", 300],
    ]);
    await vi.advanceTimersByTimeAsync(10_000);
    await settle();
    expect(attempts).toHaveLength(3);
    const dead = broker.queue(sub.deadLetterQueue)!.messages;
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]!.content.toString())).toEqual(order);
    expect(dead[0]!.properties).toMatchObject({ type: "order_placed", deliveryMode: 2 });
    expect(headersOf(dead[0]!.properties)).toMatchObject({
      [DEAD_REASON_HEADER]: "handler_failed",
      [DEAD_ERROR_HEADER]: "ledger unavailable",
      [DEAD_QUEUE_HEADER]: "events.Orders.order_placed.billing",
      [ATTEMPT_HEADER]: 3,
      [ORIGIN_EXCHANGE_HEADER]: "events.Orders",
      [ORIGIN_ROUTING_KEY_HEADER]: "orders.eu.placed",
    });
    await acksSent(); // held for ackDelayMs to go out together
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0 });
  });

  it("acks an event whose retry succeeds, without dead-lettering it", async () => {
    let calls = 0;
    const sub = await bus.subscribe(placed, () => {
      if (++calls === 1) throw new Error("once");
    }, { group: "billing", retryDelayMs: 50 });
    await publisher.publish(placed, order);
    await settle();
    await vi.advanceTimersByTimeAsync(50);
    await settle();
    expect(calls).toBe(2);
    await acksSent(); // held for ackDelayMs to go out together
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0 });
    expect(broker.queue(sub.deadLetterQueue)!.ready).toBe(0);
  });

  it("dead-letters an invalid payload or an unreadable body at once, without calling the handler", async () => {
    const handled: unknown[] = [];
    const sub = await bus.subscribe(placed, (p) => void handled.push(p), { group: "billing" });
    await rawPublish("orders.eu.placed", { orderId: 1, region: "mars", items: [] });
    await rawPublish("orders.eu.placed", Buffer.from("{oops"));
    await settle();
    expect(handled).toEqual([]);
    const dead = broker.queue(sub.deadLetterQueue)!.messages.map((m) => headersOf(m.properties));
    expect(dead.map((h) => [h[DEAD_REASON_HEADER], h[ATTEMPT_HEADER]])).toEqual([["invalid_event", 1], ["bad_message", 1]]);
    expect(dead[0]![DEAD_ERROR_HEADER]).toContain("/orderId");
    await acksSent(); // held for ackDelayMs to go out together
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0 });
  });

  it("drops payload properties its contract does not know, and dead-letters an event from another compatibility line unhandled", async () => {
    const seen: unknown[] = [];
    const sub = await bus.subscribe(placed, (p) => void seen.push(p), { group: "billing" });
    await rawPublish("orders.eu.placed", { ...order, coupon: "X1" }, { headers: { [CONTRACT_VERSION_HEADER]: "1.4.0" } });
    await rawPublish("orders.eu.placed", order, { headers: { [CONTRACT_VERSION_HEADER]: "2.0.0" } });
    await settle();
    expect(seen).toEqual([order]);
    const dead = broker.queue(sub.deadLetterQueue)!.messages.map((m) => headersOf(m.properties));
    expect(dead.map((h) => h[DEAD_REASON_HEADER])).toEqual(["incompatible_version"]);
    expect(dead[0]![DEAD_ERROR_HEADER]).toMatch(/Orders 2\.0\.0 is incompatible with this receiver's Orders 1\.0\.0/);
  });

  it("handles an event another client sent as application/json; charset=utf-8, and dead-letters one in another charset with why", async () => {
    const seen: unknown[] = [];
    const sub = await bus.subscribe(placed, (p) => void seen.push(p), { group: "billing" });
    await rawPublish("orders.eu.placed", order, { contentType: "application/json; charset=utf-8" });
    await rawPublish("orders.eu.placed", order, { contentType: "application/json; charset=latin1" });
    await settle();
    expect(seen).toEqual([order]);
    const dead = broker.queue(sub.deadLetterQueue)!.messages.map((m) => headersOf(m.properties));
    expect(dead.map((h) => [h[DEAD_REASON_HEADER], h[DEAD_ERROR_HEADER]])).toEqual([["bad_message", expect.stringContaining('charset "latin1" is not supported; send UTF-8')]]);
  });

  it("dead-letters a message without a type with why, instead of dropping it", async () => {
    const seen: unknown[] = [];
    const sub = await bus.subscribe(placed, (p) => void seen.push(p), { group: "billing" });
    await rawPublish("orders.eu.placed", order, { type: undefined });
    await settle();
    expect(seen).toEqual([]);
    const dead = broker.queue(sub.deadLetterQueue)!.messages.map((m) => headersOf(m.properties));
    expect(dead.map((h) => [h[DEAD_REASON_HEADER], h[DEAD_ERROR_HEADER]])).toEqual([["bad_message", expect.stringContaining("has no type")]]);
  });

  it("refuses queue without group: a named queue belongs to a consumer group", async () => {
    await expect(bus.subscribe(placed, () => {}, { queue: "mine" })).rejects.toThrow(/"queue" names a consumer group's shared queue; give "group" too/);
    expect(broker.queue("mine")).toBeUndefined();
  });

  it("publishes with the contract version it was generated from", async () => {
    await bus.subscribe(placed, () => {}, { group: "billing" });
    await publisher.publish(placed, order);
    expect(headersOf(broker.published.at(-1)!.properties)[CONTRACT_VERSION_HEADER]).toBe(Orders.version);
  });

  it("keeps the original unacked (for redelivery) when the broker refuses the dead-letter copy", async () => {
    const sub = await bus.subscribe(placed, () => {}, { group: "billing" });
    broker.nackNextConfirms(1);
    await rawPublish("orders.eu.placed", { nope: true });
    await settle();
    expect(broker.queue(sub.deadLetterQueue)!.ready).toBe(0);
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 1 });
    expect(conn.lines.join("\n")).toContain("the broker will redeliver it");
  });
});

describe("acknowledgements", () => {
  const publishOneByOne = async (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      await publisher.publish(placed, { ...order, orderId: `o-${i}` });
      await settle(); // handled before the next is published: nothing to batch within a turn
    }
  };

  it("holds handled events' acks up to a quarter of the prefetch or ackDelayMs, then sends one multiple ack", async () => {
    const sub = await bus.subscribe(placed, () => {}, { group: "billing" }); // prefetch 16: up to 4 held, 10 ms
    await publishOneByOne(0, 3);
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 3 });
    await vi.advanceTimersByTimeAsync(DEFAULT_ACK_DELAY_MS - 1);
    expect(broker.queue(sub.queue)!.unacked).toBe(3);
    await vi.advanceTimersByTimeAsync(1); // ackDelayMs after the first of them
    expect(broker.queue(sub.queue)!.unacked).toBe(0);
    await publishOneByOne(3, 7); // the fourth held ack sends all four, with no wait
    expect(broker.queue(sub.queue)!.unacked).toBe(0);
    expect(conn.channels[0]!.acks).toEqual([
      { tag: 3, multiple: true },
      { tag: 7, multiple: true },
    ]);
  });

  it("holds nothing with ackDelayMs 0, or with a prefetch below 8", async () => {
    for (const options of [{ ackDelayMs: 0 }, { prefetch: 7 }]) {
      const c = broker.connect();
      const sub = await new EventBus(c).subscribe(placed, () => {}, { group: `g${options.prefetch ?? 0}`, ...options });
      await publishOneByOne(0, 2);
      expect(broker.queue(sub.queue)!.unacked).toBe(0);
      expect(c.channels[0]!.acks).toEqual([
        { tag: 1, multiple: false },
        { tag: 2, multiple: false },
      ]);
    }
  });

  it("a channel lost while acks are held: the copies delivered again are acknowledged, not handled again", async () => {
    const handled: string[] = [];
    const sub = await bus.subscribe(placed, (p) => void handled.push(p.orderId), { group: "billing", ackDelayMs: 1000 });
    await publishOneByOne(0, 3);
    expect(broker.queue(sub.queue)!.unacked).toBe(3);
    conn.drop();
    await settle();
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 3, unacked: 0 }); // back in the queue, to come again
    conn.reconnect();
    for (let i = 0; i < 5; i++) await settle();
    await vi.advanceTimersByTimeAsync(1000);
    expect(handled).toEqual(["o-0", "o-1", "o-2"]);
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0 });
    expect(conn.lines.filter((l) => l.includes("was handled already"))).toHaveLength(3);
  });
});

describe("queues", () => {
  it("a broadcast subscription's queue is server-named and exclusive, and goes away when it closes", async () => {
    const sub = await bus.subscribe(placed, () => {});
    expect(sub.queue).toMatch(/^amq\.gen-/);
    expect(broker.queue(sub.queue)!.options).toMatchObject({ exclusive: true, autoDelete: true });
    expect(sub.deadLetterQueue).toBe("events.Orders.order_placed.dead");
    const queue = sub.queue;
    await sub.close();
    expect(broker.queue(queue)).toBeUndefined();
  });

  it("a broadcast subscription resumes on a new queue after the connection comes back", async () => {
    const got: string[] = [];
    const sub = await bus.subscribe(placed, (p) => void got.push(p.orderId));
    const before = sub.queue;
    conn.drop();
    await settle();
    expect(broker.queue(before)).toBeUndefined();
    conn.reconnect();
    await settle();
    expect(sub.queue).not.toBe(before);
    await publisher.publish(placed, order);
    await settle();
    expect(got).toEqual(["o-1"]);
  });

  it("close() waits for in-flight handlers, then acks and closes", async () => {
    let release!: () => void;
    const sub = await bus.subscribe(placed, () => new Promise<void>((r) => (release = r)), { group: "billing" });
    await publisher.publish(placed, order);
    await settle();
    expect(sub.inFlight).toBe(1);
    let closed = false;
    const closing = sub.close().then(() => (closed = true));
    await settle();
    expect(closed).toBe(false);
    release();
    await closing;
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0, consumers: 0 });
  });
});
