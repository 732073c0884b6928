/** src/events/bus.ts: after a broker nack, new events go out on a fresh confirm channel; the nacked one closes once its last publish is confirmed. */
import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/events/bus.js";
import { Orders, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";
import { recordingLogger } from "../helpers/broker.js";

const placed = Orders.events.orderPlaced;
const order: OrderPlacedEvent = { orderId: "o-1", region: "eu", items: [{ sku: "apple", quantity: 2 }] };

describe("a publish channel the broker nacks", () => {
  it("is replaced for the next events, and closed once the events still unconfirmed on it are confirmed", async () => {
    const broker = new FakeBroker();
    const logger = recordingLogger();
    const bus = new EventBus(broker.connect(), { logger });
    await bus.publish(placed, order);
    const first = broker.published[0]!.channel;

    broker.nackNextConfirms(1);
    const nacked = bus.publish(placed, order);
    const alongside = bus.publish(placed, order); // on the same channel, confirmed after the nack
    await expect(nacked).rejects.toMatchObject({ code: "rejected" });
    await expect(alongside).resolves.toBeUndefined();
    expect(logger.lines.join("\n")).toMatch(/basic\.nack.*fresh channel/);

    await bus.publish(placed, order);
    const channels = broker.published.map((p) => p.channel);
    expect(channels.slice(0, 3)).toEqual([first, first, first]);
    expect(channels[3]).not.toBe(first);
    await broker.settle();
    expect(broker.channels().map((c) => c.id)).not.toContain(first);
    await bus.close();
  });
});
