/**
 * A subscription acknowledges the events finished in one turn with one
 * `multiple` ack, holds acks for up to `ackDelayMs` to send them together,
 * and sends what is pending before close() closes its channel: on the real
 * broker, nothing finished comes back, and what comes back after a lost
 * connection is not handled twice.
 */
import { describe, expect, it } from "vitest";
import { OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";
import { connect, type EventBus } from "../../src/index.js";
import { deleteAfter, deleteExchangeAfter, onTeardown, openConnection, recordingLogger, uniqueName, until } from "../helpers/broker.js";
import { startFrameProxy } from "../helpers/frame-proxy.js";

/** A group queue on a unique exchange, removed after the test. */
function groupOf(exchange: string): { group: string; queue: string } {
  const group = uniqueName("held");
  const queue = deleteAfter(`${exchange}.order_placed.${group}`);
  deleteAfter(`${queue}.dead`);
  return { group, queue };
}

/** Publishes `n` events, each once the previous one was handled (so no two finish in one turn). */
async function publishOneByOne(bus: EventBus, handled: () => number, n: number): Promise<void> {
  const publisher = new OrdersPublisher(bus);
  for (let i = 0; i < n; i++) {
    await publisher.publishOrderPlaced({ orderId: `o-${i}`, region: "eu", items: [{ sku: "a", quantity: 1 }] });
    await until(() => handled() === i + 1, `event ${i} handled`);
  }
}

describe("event acknowledgements on the broker", () => {
  it("all go out before close() closes the channel: the group queue is empty afterwards", async () => {
    const conn = await openConnection();
    const exchange = deleteExchangeAfter(uniqueName("orders"));
    const bus = conn.events({ exchanges: { Orders: exchange } });
    const group = uniqueName("batch");
    const queue = deleteAfter(`${exchange}.order_placed.${group}`);
    deleteAfter(`${queue}.dead`);
    const got: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const sub = await new OrdersSubscriber(bus).onOrderPlaced(async (o) => {
      await gate; // all five finish in one turn: their acks go out together
      got.push(o.orderId);
    }, { group, prefetch: 8 });
    const publisher = new OrdersPublisher(bus);
    for (let i = 0; i < 5; i++) await publisher.publishOrderPlaced({ orderId: `o-${i}`, region: "eu", items: [{ sku: "a", quantity: 1 }] });
    while (sub.inFlight < 5) await new Promise((r) => setTimeout(r, 10));
    const closing = sub.close();
    release();
    await closing;
    expect(got).toHaveLength(5);
    const ch = await conn.channel();
    expect(await ch.checkQueue(queue)).toMatchObject({ messageCount: 0 });
    await ch.close();
  });

  it("held acks (ackDelayMs) go out before close() closes the channel: nothing handled comes back", async () => {
    const conn = await openConnection();
    const exchange = deleteExchangeAfter(uniqueName("orders"));
    const bus = conn.events({ exchanges: { Orders: exchange } });
    const { group, queue } = groupOf(exchange);
    const got: string[] = [];
    const sub = await new OrdersSubscriber(bus).onOrderPlaced((o) => void got.push(o.orderId), { group, ackDelayMs: 1000 });
    await publishOneByOne(bus, () => got.length, 3); // 3 < a quarter of the prefetch of 16: all three held
    await sub.close();
    const ch = await conn.channel();
    expect(await ch.checkQueue(queue)).toMatchObject({ messageCount: 0 });
    await ch.close();
  });

  it("a connection lost while acks are held: the events the broker delivers again are acknowledged, not handled again", async () => {
    // Through a proxy that drops the socket at once (rabbitmqctl takes longer than the longest hold).
    const proxy = await startFrameProxy();
    onTeardown(() => proxy.close());
    const logger = recordingLogger();
    const conn = await connect(proxy.url, { name: uniqueName("held-conn"), logger, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    onTeardown(() => conn.close());
    const exchange = deleteExchangeAfter(uniqueName("orders"));
    const { group, queue } = groupOf(exchange);
    const got: string[] = [];
    const sub = await new OrdersSubscriber(conn.events({ exchanges: { Orders: exchange } })).onOrderPlaced((o) => void got.push(o.orderId), { group, ackDelayMs: 1000 });
    const publishing = await openConnection();
    await publishOneByOne(publishing.events({ exchanges: { Orders: exchange } }), () => got.length, 3);
    expect(proxy.dropAll()).toBe(1);
    await until(() => logger.lines.filter((l) => l.includes("was handled already")).length === 3, "the three copies acknowledged unrun");
    await sub.close();
    expect(got).toEqual(["o-0", "o-1", "o-2"]);
    const ch = await publishing.channel();
    expect(await ch.checkQueue(queue)).toMatchObject({ messageCount: 0 });
    await ch.close();
  });
});
