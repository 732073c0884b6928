/** src/events/bus.ts: after a broker nack, the event is sent once more and new events go out on a fresh confirm channel; the nacked one closes once its last publish is confirmed. */
import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/events/bus.js";
import { Orders, type OrderPlacedEvent } from "../../generated/orders/index.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";
import { recordingLogger } from "../helpers/broker.js";

const placed = Orders.events.orderPlaced;
const order: OrderPlacedEvent = { orderId: "o-1", region: "eu", items: [{ sku: "apple", quantity: 2 }] };

describe("a publish channel the broker nacks", () => {
  it("is replaced: the nacked event is sent again on a fresh channel, later events go there too, and the old one closes once its last publish is confirmed", async () => {
    const broker = new FakeBroker();
    const logger = recordingLogger();
    const bus = new EventBus(broker.connect(), { logger });
    await bus.publish(placed, order);
    const first = broker.published[0]!.channel;

    broker.nackNextConfirms(1);
    const nacked = bus.publish(placed, order);
    const alongside = bus.publish(placed, order); // on the same channel, confirmed after the nack
    await expect(nacked).resolves.toBeUndefined(); // sent again, on a fresh channel
    await expect(alongside).resolves.toBeUndefined();
    expect(logger.lines.join("\n")).toMatch(/basic\.nack.*fresh channel/);

    await bus.publish(placed, order);
    const channels = broker.published.map((p) => p.channel);
    expect(channels.slice(0, 3)).toEqual([first, first, first]);
    expect(channels.slice(3)).toEqual([channels[3], channels[3]]);
    expect(channels[3]).not.toBe(first);
    await broker.settle();
    expect(broker.channels().map((c) => c.id)).not.toContain(first);
    await bus.close();
  });

  it("rejects with rejected when the event is nacked on the fresh channel too (it was not enqueued)", async () => {
    const broker = new FakeBroker();
    const bus = new EventBus(broker.connect(), { logger: recordingLogger() });
    broker.nackNextConfirms(2);
    await expect(bus.publish(placed, order)).rejects.toMatchObject({ code: "rejected", message: expect.stringContaining("not enqueued") });
    expect(new Set(broker.published.map((p) => p.channel)).size).toBe(2);
    await bus.close();
  });
});
