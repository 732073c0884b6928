/**
 * An Orders `order_placed` subscriber in its own process, for fault tests.
 * Usage: node --import tsx test/helpers/order-subscriber.ts <exchange> <group> [delayMs]
 * Prints `ready` once consuming and `handling <orderId> redelivered=<bool>` per
 * event; on SIGTERM stops gracefully and prints `handled <n>`.
 */
import { OrdersSubscriber } from "../../generated/orders/index.js";
import { connect } from "../../src/index.js";

const [exchange, group, delayMs = "0"] = process.argv.slice(2);
if (!exchange || !group) throw new Error("usage: order-subscriber.ts <exchange> <group> [delayMs]");
let handled = 0;
const conn = await connect();
const bus = conn.events({ exchanges: { Orders: exchange } });
await new OrdersSubscriber(bus).onOrderPlaced(
  async (order, ctx) => {
    process.stdout.write(`handling ${order.orderId} redelivered=${ctx.redelivered}\n`);
    await new Promise((r) => setTimeout(r, Number(delayMs)));
    handled++;
  },
  { group, prefetch: 1 },
);
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  void bus.close().then(async () => {
    process.stdout.write(`handled ${handled}\n`);
    await conn.close();
    process.exit(0);
  });
});
