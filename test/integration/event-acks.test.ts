/**
 * A subscription acknowledges the events finished in one turn with one
 * `multiple` ack, and sends what is pending before close() closes its
 * channel: on the real broker, nothing finished comes back.
 */
import { describe, expect, it } from "vitest";
import { OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";
import { deleteAfter, deleteExchangeAfter, openConnection, uniqueName } from "../helpers/broker.js";

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
});
