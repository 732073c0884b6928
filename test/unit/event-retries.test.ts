/**
 * src/events/subscription.ts over the in-memory broker: a failed event waits for its retry in a
 * wait queue on the broker (no prefetch slot, not in `close()`, kept for the group's next
 * member), and broadcast subscribers' dead letters go to one bounded queue made on demand.
 */
import { DEFAULT_ACK_DELAY_MS } from "../../src/core/options.js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ATTEMPT_HEADER, BROADCAST_DEAD_MAX_LENGTH, BROADCAST_DEAD_TTL_MS, DEAD_REASON_HEADER } from "../../src/core/protocol.js";
import { EventBus } from "../../src/events/bus.js";
import type { EventContext } from "../../src/events/subscription.js";
import { createTestKit } from "../../src/testing/index.js";
import { Orders, OrdersPublisher, OrdersSubscriber, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";

/** Lets the acknowledgements a subscription holds (ackDelayMs) go out. */
const acksSent = () => vi.advanceTimersByTimeAsync(DEFAULT_ACK_DELAY_MS);

const placed = Orders.events.orderPlaced;
const order = (orderId: string): OrderPlacedEvent => ({ orderId, region: "eu", items: [{ sku: "apple", quantity: 1 }] });
const GROUP_QUEUE = "events.Orders.order_placed.billing";

let broker: FakeBroker;
let publisher: EventBus;
const settle = () => broker.settle();

beforeEach(() => {
  vi.useFakeTimers();
  broker = new FakeBroker();
  publisher = new EventBus(broker.connect());
});
afterEach(() => vi.useRealTimers());

describe("group retries wait on the broker", () => {
  it("a failed event waits in <queue>.retry.<ms> (TTL, dead-lettered back to the group queue only), then comes back with the next attempt", async () => {
    const seen: [string, number, string, string][] = [];
    const other: string[] = [];
    const bus = new EventBus(broker.connect());
    const sub = await bus.subscribe(placed, (p, ctx) => {
      seen.push([p.orderId, ctx.attempt, ctx.exchange, ctx.routingKey]);
      if (ctx.attempt === 1) throw new Error("ledger unavailable");
    }, { group: "billing", retryDelayMs: 100, maxAttempts: 4 });
    await bus.subscribe(placed, (p) => void other.push(p.orderId), { group: "audit" });
    expect(sub.retryQueues).toEqual([`${GROUP_QUEUE}.retry.100`, `${GROUP_QUEUE}.retry.200`, `${GROUP_QUEUE}.retry.400`]);
    expect(broker.queue(`${GROUP_QUEUE}.retry.100`)).toBeUndefined(); // declared when first needed

    await publisher.publish(placed, order("o-1"));
    await settle();
    const wait = broker.queue(`${GROUP_QUEUE}.retry.100`)!;
    expect(wait.options).toEqual({ durable: true, arguments: { "x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": GROUP_QUEUE } });
    expect(wait.messages.map((m) => m.properties.headers?.[ATTEMPT_HEADER])).toEqual([2]);
    await acksSent(); // held for ackDelayMs to go out together
    expect(broker.queue(GROUP_QUEUE)).toMatchObject({ ready: 0, unacked: 0 }); // acknowledged: no slot held while it waits

    await vi.advanceTimersByTimeAsync(100);
    await settle();
    expect(seen).toEqual([["o-1", 1, "events.Orders", "orders.eu.placed"], ["o-1", 2, "events.Orders", "orders.eu.placed"]]);
    expect(other).toEqual(["o-1"]); // the retry went back to billing's queue, not through the exchange
    expect(broker.queue(`${GROUP_QUEUE}.retry.100`)!.ready).toBe(0);
  });

  it("with prefetch 2 and two failing events waiting their (long) delays, healthy events are all handled meanwhile", async () => {
    const handled: string[] = [];
    let failures = 0;
    const bus = new EventBus(broker.connect());
    const sub = await bus.subscribe(placed, (p) => {
      if (p.orderId.startsWith("bad")) {
        failures++;
        throw new Error("always fails");
      }
      handled.push(p.orderId);
    }, { group: "billing", prefetch: 2, maxAttempts: 2, retryDelayMs: 20_000 });
    await publisher.publish(placed, order("bad-1"));
    await publisher.publish(placed, order("bad-2"));
    for (let i = 0; i < 6; i++) await publisher.publish(placed, order(`ok-${i}`));
    for (let i = 0; i < 20 && handled.length < 6; i++) await settle(); // real turns only: fake time stands still
    await settle(); // the last handler has pushed; its run ends (and is acknowledged) a turn later
    expect(handled).toEqual(["ok-0", "ok-1", "ok-2", "ok-3", "ok-4", "ok-5"]);
    expect([failures, broker.queue(sub.retryQueues[0]!)!.ready, sub.inFlight]).toEqual([2, 2, 0]);
  });

  it("close() returns while a retry waits; the group's next member gets it when its delay is over", async () => {
    const busA = new EventBus(broker.connect());
    const attemptsA: number[] = [];
    const a = await busA.subscribe(placed, (_p, ctx) => {
      attemptsA.push(ctx.attempt);
      throw new Error("down");
    }, { group: "billing", retryDelayMs: 20_000 });
    await publisher.publish(placed, order("o-1"));
    await settle();
    await a.close(); // fake time stands still: had close() waited for the delay, this would never resolve
    await busA.close();
    expect([attemptsA, broker.queue(a.retryQueues[0]!)!.ready]).toEqual([[1], 1]);

    const seen: EventContext[] = [];
    await new EventBus(broker.connect()).subscribe(placed, (_p, ctx) => void seen.push(ctx), { group: "billing", retryDelayMs: 20_000 });
    await settle();
    expect(seen).toEqual([]);
    await vi.advanceTimersByTimeAsync(20_000);
    await settle();
    expect(seen.map((c) => [c.attempt, c.routingKey])).toEqual([[2, "orders.eu.placed"]]);
  });

  it("copies leave out the broker's per-hop headers: a retry shows only its last wait in x-death, a dead letter none", async () => {
    const deaths: unknown[] = [];
    const sub = await new EventBus(broker.connect()).subscribe(placed, (_p, ctx) => {
      deaths.push(ctx.headers["x-death"]);
      throw new Error("no");
    }, { group: "billing", maxAttempts: 3, retryDelayMs: 10 });
    await publisher.publish(placed, order("o-1"), { headers: { tenant: "t1" } });
    for (const ms of [0, 10, 20]) {
      await vi.advanceTimersByTimeAsync(ms);
      await settle();
    }
    expect(deaths.map((d) => (d as { queue: string }[] | undefined)?.map((e) => e.queue))).toEqual([undefined, [`${GROUP_QUEUE}.retry.10`], [`${GROUP_QUEUE}.retry.20`]]);
    const [dead] = broker.queue(sub.deadLetterQueue)!.messages;
    expect(Object.keys(dead!.properties.headers!).filter((h) => !h.startsWith("x-warren-"))).toEqual(["tenant"]);
  });

  it("retryDelayMs 0 puts a retry straight back at the end of the queue, with no wait queue", async () => {
    const attempts: number[] = [];
    const sub = await new EventBus(broker.connect()).subscribe(placed, (_p, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt < 3) throw new Error("again");
    }, { group: "billing", retryDelayMs: 0 });
    await publisher.publish(placed, order("o-1"));
    for (let i = 0; i < 10 && attempts.length < 3; i++) await settle();
    expect([attempts, sub.retryQueues]).toEqual([[1, 2, 3], []]);
    expect(broker.queue(`${GROUP_QUEUE}.retry.0`)).toBeUndefined();
  });

  it("a quorum group's wait queues are quorum queues that dead-letter at-least-once", async () => {
    const sub = await new EventBus(broker.connect()).subscribe(placed, () => {
      throw new Error("no");
    }, { group: "billing", queueType: "quorum", retryDelayMs: 50 });
    await publisher.publish(placed, order("o-1"));
    await settle();
    expect(broker.queue(sub.retryQueues[0]!)!.options.arguments).toEqual({
      "x-queue-type": "quorum",
      "x-message-ttl": 50,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": GROUP_QUEUE,
      "x-dead-letter-strategy": "at-least-once",
      "x-overflow": "reject-publish",
    });
  });

  it("after a resume, a wait queue it used that now exists with other arguments stops the subscription with setup_failed, not a retry loop", async () => {
    const conn = broker.connect();
    const attempts: number[] = [];
    const sub = await new EventBus(conn).subscribe(placed, (_p, ctx) => {
      attempts.push(ctx.attempt);
      throw new Error("no");
    }, { group: "billing", retryDelayMs: 50, maxAttempts: 2 });
    await publisher.publish(placed, order("o-1"));
    await settle();
    const wait = sub.retryQueues[0]!;
    broker.deleteQueue(wait);
    const ch = await broker.connect().open();
    await ch.declareQueue(wait, { durable: true });
    conn.drop();
    conn.reconnect();
    for (let i = 0; i < 10; i++) await settle();
    expect(conn.lines.join("\n")).toMatch(/cannot resume \(warren: .*retry wait queue ".*\.retry\.50" exists with other arguments/);
    await publisher.publish(placed, order("o-2"));
    await settle();
    expect(attempts).toEqual([1]);
  });

  it("a wait queue that already exists with other arguments stops the subscription at its resume, instead of running the handler in a loop", async () => {
    const ch = await broker.connect().open();
    await ch.declareQueue(`${GROUP_QUEUE}.retry.50`, { durable: true });
    const conn = broker.connect();
    const attempts: number[] = [];
    await new EventBus(conn).subscribe(placed, (_p, ctx) => {
      attempts.push(ctx.attempt);
      throw new Error("no");
    }, { group: "billing", retryDelayMs: 50 });
    await publisher.publish(placed, order("o-1"));
    for (let i = 0; i < 20; i++) await settle();
    expect(attempts).toEqual([1]);
    expect(conn.lines.join("\n")).toMatch(/cannot resume \(warren: .*retry wait queue ".*\.retry\.50" exists with other arguments/);
    expect(broker.queue(GROUP_QUEUE)).toMatchObject({ ready: 1, unacked: 0, consumers: 0 });
  });
});

describe("broadcast subscribers", () => {
  it("wait in an exclusive wait queue of their own that the broker deletes a minute after its delay, and get the retry back", async () => {
    const conn = broker.connect();
    const attempts: number[] = [];
    const sub = await new EventBus(conn).subscribe(placed, (_p, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt === 1) throw new Error("once");
    }, { retryDelayMs: 100 });
    const wait = `events.Orders.order_placed.${sub.queue.replace(/^amq\./, "")}.retry.100`;
    expect(sub.retryQueues[0]).toBe(wait);
    await publisher.publish(placed, order("o-1"));
    await settle();
    expect(broker.queue(wait)!.options).toEqual({
      durable: false,
      exclusive: true,
      arguments: { "x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sub.queue, "x-expires": 60_100 },
    });
    await vi.advanceTimersByTimeAsync(100);
    await settle();
    expect(attempts).toEqual([1, 2]);
    await sub.close();
    await vi.advanceTimersByTimeAsync(60_100);
    expect(broker.queue(wait)).toBeUndefined();
  });

  it("dead-letter into one queue per event, made by the first dead letter, bounded in length and age", async () => {
    const bus = new EventBus(broker.connect());
    const sub = await bus.subscribe(placed, () => {
      throw new Error("broken");
    }, { maxAttempts: 1 });
    await bus.subscribe(placed, () => {}, { maxAttempts: 1 });
    expect(sub.deadLetterQueue).toBe("events.Orders.order_placed.dead");
    expect(broker.queue(sub.deadLetterQueue)).toBeUndefined();
    await publisher.publish(placed, order("o-1"));
    await settle();
    await settle();
    const dead = broker.queue(sub.deadLetterQueue)!;
    expect(dead.options).toEqual({ durable: true, arguments: { "x-max-length": BROADCAST_DEAD_MAX_LENGTH, "x-message-ttl": BROADCAST_DEAD_TTL_MS } });
    expect(dead.messages.map((m) => m.properties.headers?.[DEAD_REASON_HEADER])).toEqual(["handler_failed"]);
  });

  it("use a dead-letter queue made earlier without bounds as it is, with one warning", async () => {
    const ch = await broker.connect().open();
    await ch.declareQueue("events.Orders.order_placed.dead", { durable: true });
    const conn = broker.connect();
    const sub = await new EventBus(conn).subscribe(placed, () => {
      throw new Error("broken");
    }, { maxAttempts: 1 });
    await publisher.publish(placed, order("o-1"));
    await publisher.publish(placed, order("o-2"));
    for (let i = 0; i < 10; i++) await settle();
    expect(broker.queue(sub.deadLetterQueue)!.ready).toBe(2);
    await acksSent(); // held for ackDelayMs to go out together
    expect(broker.queue(sub.queue)).toMatchObject({ ready: 0, unacked: 0, consumers: 1 });
    expect(conn.lines.filter((l) => l.includes("exists with other arguments than the bounded dead-letter queue"))).toHaveLength(1);
  });

  it("with a deadLetterQueue of their own, declare it at subscribe as any durable queue", async () => {
    const sub = await new EventBus(broker.connect()).subscribe(placed, () => {}, { deadLetterQueue: "my.dead" });
    expect(broker.queue(sub.deadLetterQueue)!.options).toEqual({ durable: true });
  });
});

describe("the test kit", () => {
  it("idle() waits for an event's retry held by the in-memory broker", async () => {
    vi.useRealTimers();
    const kit = createTestKit();
    try {
      const attempts: number[] = [];
      await new OrdersSubscriber(kit.events()).onOrderPlaced((_o, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt < 3) throw new Error("not yet");
      }, { group: "billing", retryDelayMs: 5 });
      await new OrdersPublisher(kit.events()).publishOrderPlaced(order("o-1"));
      await kit.idle();
      expect(attempts).toEqual([1, 2, 3]);
    } finally {
      await kit.close();
    }
  });
});
