/** warren/testing with events: `kit.idle()` once handlers have finished, acks held by `ackDelayMs` included. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTestKit, type TestKit } from "../../src/testing/index.js";
import { OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";

let kit: TestKit | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await kit?.close();
});

describe("kit.idle() with events", () => {
  for (const timers of ["real", "fake"] as const) {
    it(`resolves once the handlers ran, without waiting out held acks (${timers} timers)`, async () => {
      if (timers === "fake") vi.useFakeTimers();
      kit = createTestKit();
      const bus = kit.events();
      const seen: string[] = [];
      await new OrdersSubscriber(bus).onOrderPlaced((o) => void seen.push(o.orderId), { group: "billing", ackDelayMs: 1000 });
      const publisher = new OrdersPublisher(bus);
      for (const id of ["o-1", "o-2"]) await publisher.publishOrderPlaced({ orderId: id, region: "eu", items: [] });
      await kit.idle({ timeoutMs: 900 }); // shorter than the hold: held acks must not keep it busy
      expect(seen).toEqual(["o-1", "o-2"]);
      expect(kit.broker.queue("events.Orders.order_placed.billing")).toMatchObject({ ready: 0, unacked: 0 });
    });
  }
});
