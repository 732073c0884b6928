/**
 * The bindings of a consumer group's queue follow what its subscriptions ask
 * for, on the real broker: a group re-subscribed with another key gets only
 * the new key's events; a member asking for other keys than the running
 * members is refused, naming both; once they stop, it rebinds.
 */
import { describe, expect, it } from "vitest";
import { OrdersPublisher, OrdersSubscriber, type OrderPlacedEvent } from "../../generated/orders/index.js";
import type { Subscription } from "../../src/index.js";
import { bindingsQueueOf } from "../../src/events/bindings.js";
import { deleteAfter, deleteExchangeAfter, onTeardown, openConnection, recordingLogger, sleep, uniqueName, until } from "../helpers/broker.js";

const order = (id: string, region: "eu" | "us"): OrderPlacedEvent => ({ orderId: id, region, items: [{ sku: "a", quantity: 1 }] });

async function setup() {
  const logger = recordingLogger();
  const conn = await openConnection(undefined, logger);
  const exchange = deleteExchangeAfter(uniqueName("orders"));
  const bus = conn.events({ exchanges: { Orders: exchange } });
  const group = uniqueName("acc");
  const queue = `${exchange}.order_placed.${group}`;
  for (const q of [queue, `${queue}.dead`, bindingsQueueOf(queue)]) deleteAfter(q);
  const got: string[] = [];
  const subscribe = async (bindingKey: string) => {
    const sub = await new OrdersSubscriber(bus).onOrderPlaced((e) => void got.push(e.orderId), { group, bindingKey });
    onTeardown(() => sub.close());
    return sub;
  };
  return { conn, logger, bus, publisher: new OrdersPublisher(bus), subscribe, got, queue };
}

describe("group queue bindings follow the code", () => {
  it("a group re-subscribed with another key gets only that key's events: the old binding is removed", async () => {
    const { publisher, subscribe, got, logger, queue } = await setup();
    const eu = await subscribe("orders.eu.#");
    await publisher.publishOrderPlaced(order("eu-1", "eu"));
    await until(() => got.includes("eu-1"), "eu-1 handled");
    await eu.close();

    await subscribe("orders.us.#");
    await publisher.publishOrderPlaced(order("eu-2", "eu"));
    await publisher.publishOrderPlaced(order("us-1", "us"));
    await until(() => got.includes("us-1"), "us-1 handled");
    await sleep(300);
    expect(got).toEqual(["eu-1", "us-1"]);
    expect(logger.lines.join("\n")).toContain(`group queue "${queue}" now bound to "orders.us.#"`);
    expect(logger.lines.join("\n")).toContain('unbound "orders.eu.#"');
  });

  it("a member asking for other keys than the running members is refused, naming both; after they stop it rebinds", async () => {
    const { subscribe, publisher, got } = await setup();
    const first: Subscription = await subscribe("orders.eu.#");
    await expect(subscribe("orders.us.#")).rejects.toThrow(/running member\(s\) of this group consume .* bound to "orders\.eu\.#" .* but this subscription asks for "orders\.us\.#".*must ask for the same binding keys/);
    // A member with the same keys joins as before.
    const second = await subscribe("orders.eu.#");
    await first.close();
    await second.close();
    await subscribe("orders.us.#");
    await publisher.publishOrderPlaced(order("eu-1", "eu"));
    await publisher.publishOrderPlaced(order("us-1", "us"));
    await until(() => got.includes("us-1"), "us-1 handled");
    await sleep(300);
    expect(got).toEqual(["us-1"]);
  });

  it("several members with the same key share the group's events, and a restart with that key changes nothing", async () => {
    const { subscribe, publisher, got, logger } = await setup();
    const a = await subscribe("orders.eu.#");
    await subscribe("orders.eu.#");
    await a.close();
    await subscribe("orders.eu.#");
    for (let i = 0; i < 10; i++) await publisher.publishOrderPlaced(order(`eu-${i}`, "eu"));
    await until(() => got.length === 10, "10 handled");
    expect(new Set(got).size).toBe(10);
    expect(logger.lines).toEqual([]);
  });

  it("a group queue deleted (its record left behind) and subscribed again with the same key is bound again: the record never stands in for a binding", async () => {
    const { conn, subscribe, publisher, got, queue } = await setup();
    const first = await subscribe("orders.eu.#");
    await first.close();
    const ch = await conn.channel();
    await ch.deleteQueue(queue); // as a clean-up that removes the group queue but not the record
    await ch.close();
    await subscribe("orders.eu.#");
    await publisher.publishOrderPlaced(order("eu-1", "eu"));
    await until(() => got.includes("eu-1"), "eu-1 handled");
  });

  it("subscribeAll: one group queue, one consumer, bound with each event's key; each event reaches its own handler", async () => {
    const logger = recordingLogger();
    const conn = await openConnection(undefined, logger);
    const exchange = deleteExchangeAfter(uniqueName("orders"));
    const bus = conn.events({ exchanges: { Orders: exchange } });
    const group = uniqueName("ops");
    const queue = deleteAfter(`${exchange}.${group}`);
    deleteAfter(`${queue}.dead`);
    const got: string[] = [];
    const sub = await new OrdersSubscriber(bus).subscribeAll(
      { orderPlaced: (o, ctx) => void got.push(`${ctx.event}:${o.orderId}`), orderShipped: (s, ctx) => void got.push(`${ctx.event}:${s.orderId}:${s.carrier}`) },
      { group },
    );
    onTeardown(() => sub.close());
    expect(sub.queue).toBe(queue);
    const publisher = new OrdersPublisher(bus);
    await publisher.publishOrderPlaced(order("o-1", "eu"));
    await publisher.publishOrderShipped({ orderId: "o-1", region: "eu", carrier: "post" });
    await until(() => got.length === 2, "both events handled");
    expect(got.sort()).toEqual(["order_placed:o-1", "order_shipped:o-1:post"]);
    const ch = await conn.channel();
    expect(await ch.checkQueue(queue)).toMatchObject({ consumerCount: 1, messageCount: 0 });
    await ch.close();
  });
});
