import { describe, expect, it } from "vitest";
import { AckBatcher } from "../../src/amqp/acks.js";
import type { WireChannel } from "../../src/amqp/channel-source.js";

/** A channel that records its acks as `tag` (single) or `<=tag` (multiple). */
function recordingChannel(): { channel: WireChannel; acks: string[] } {
  const acks: string[] = [];
  const channel = {
    ack: (msg: { fields: { deliveryTag: number } }, multiple?: boolean) => acks.push(`${multiple ? "<=" : ""}${msg.fields.deliveryTag}`),
  } as Partial<WireChannel> as WireChannel;
  return { channel, acks };
}

const endOfTick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("AckBatcher", () => {
  it("acks requests finished in one tick with one multiple ack", async () => {
    const { channel, acks } = recordingChannel();
    const batcher = new AckBatcher(channel);
    for (const tag of [1, 2, 3, 4, 5]) batcher.delivered(tag);
    for (const tag of [3, 1, 2, 5, 4]) batcher.done(tag);
    expect(acks).toEqual([]); // nothing before the end of the tick
    await endOfTick();
    expect(acks).toEqual(["<=5"]);
  });

  it("acks the only request in flight at once, without waiting for the end of the tick", () => {
    const { channel, acks } = recordingChannel();
    const batcher = new AckBatcher(channel);
    batcher.delivered(7);
    batcher.done(7);
    expect(acks).toEqual(["7"]);
    batcher.delivered(8);
    batcher.done(8);
    expect(acks).toEqual(["7", "8"]);
  });

  it("acks a finished request behind an unfinished one on its own, then covers the rest with one multiple ack", async () => {
    const { channel, acks } = recordingChannel();
    const batcher = new AckBatcher(channel);
    for (const tag of [1, 2, 3, 4]) batcher.delivered(tag);
    batcher.done(2);
    batcher.done(3);
    await endOfTick();
    expect(acks).toEqual(["2", "3"]);
    batcher.done(4);
    await endOfTick();
    expect(acks).toEqual(["2", "3", "4"]);
    batcher.delivered(5);
    batcher.done(1);
    batcher.done(5);
    await endOfTick();
    expect(acks).toEqual(["2", "3", "4", "<=5"]);
  });

  it("acks each tick's prefix separately across ticks and never acks a tag twice", async () => {
    const { channel, acks } = recordingChannel();
    const batcher = new AckBatcher(channel);
    let tag = 0;
    for (let tick = 0; tick < 50; tick++) {
      const batch = Array.from({ length: 1 + (tick % 7) }, () => ++tag);
      for (const t of batch) batcher.delivered(t);
      for (const t of batch.reverse()) batcher.done(t);
      await endOfTick();
    }
    expect(acks).toHaveLength(50);
    // A batch of one is acked on its own, at once; larger ones with one multiple ack.
    expect(acks.filter((a) => !a.startsWith("<="))).toHaveLength(8);
    expect(Number(acks.at(-1)!.replace("<=", ""))).toBe(tag);
  });
});
