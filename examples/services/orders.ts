// An RPC method that announces its outcome as an event.
import { randomUUID } from "node:crypto";
import type { OrdersHandlers, OrdersPublisher } from "../../generated/orders/index.js";

/** Handlers that publish `order_placed` for every accepted order. */
export function createOrdersHandlers(events: OrdersPublisher): OrdersHandlers {
  return {
    async placeOrder({ region, items }) {
      const orderId = `o-${randomUUID().slice(0, 8)}`;
      // Publish before replying: once the caller has its id, the event is confirmed by the broker.
      await events.publishOrderPlaced({ orderId, region, items });
      return { orderId };
    },
  };
}
