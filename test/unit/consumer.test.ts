/** src/amqp/consumer.ts: a KeptConsumer re-declares and consumes again after its channel closes, whenever the close comes. */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Delivery, WireChannel } from "../../src/amqp/channel-source.js";
import { KeptConsumer, SETUP_LIMIT_MS } from "../../src/amqp/consumer.js";
import { FakeBroker, type FakeConnection } from "../helpers/fake-channel-source.js";

/** A KeptConsumer of queue "q" (declared in `prepare`, after `before` of the attempt's number) that acks and records what it gets. */
function keptConsumer(conn: FakeConnection, before?: (attempt: number) => Promise<void> | undefined) {
  const got: string[] = [];
  let prepared = 0;
  const consumer = new KeptConsumer(
    "test consumer",
    {
      open: () => conn.open(),
      prepare: async (ch: WireChannel) => {
        prepared++;
        await before?.(prepared);
        await ch.declareQueue("q", { durable: true });
        return "q";
      },
      deliver: (ch: WireChannel, msg: Delivery) => {
        got.push(msg.content.toString());
        ch.ack(msg);
      },
      connectionClosed: () => conn.closed,
    },
    conn.logger,
  );
  return { consumer, got, prepared: () => prepared };
}

afterEach(() => vi.useRealTimers());

describe("KeptConsumer", () => {
  it("re-declares and consumes again after the broker closes its channel (and the queue is gone)", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const { consumer, got, prepared } = keptConsumer(conn);
    await consumer.start();
    broker.deleteQueue("q"); // the consumer is cancelled (null): it closes its channel and starts over
    await broker.settle();
    expect([prepared(), broker.queue("q")?.consumers]).toEqual([2, 1]);
    broker.channels("q")[0]!.failByBroker();
    await broker.settle();
    expect([prepared(), broker.queue("q")?.consumers]).toEqual([3, 1]);
    const publisher = await broker.connect().open();
    publisher.publish("", "q", Buffer.from("after"), {});
    await broker.settle();
    expect(got).toEqual(["after"]);
    expect(conn.lines.filter((l) => l.includes("consuming \"q\" again"))).toHaveLength(2);
  });

  it("resumes when the channel closes right after consume-ok (in the same read), on the first start and on a resume", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const { consumer, got } = keptConsumer(conn);
    broker.closeAfterConsumeOk("q");
    await consumer.start();
    await broker.settle();
    expect(broker.queue("q")?.consumers).toBe(1);
    broker.closeAfterConsumeOk("q");
    broker.channels("q")[0]!.failByBroker();
    await broker.settle();
    await broker.settle();
    expect(broker.queue("q")?.consumers).toBe(1);
    (await broker.connect().open()).publish("", "q", Buffer.from("x"), {});
    await broker.settle();
    expect(got).toEqual(["x"]);
  });

  it("resumes once the connection comes back", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const { consumer, prepared } = keptConsumer(conn);
    await consumer.start();
    conn.drop();
    await broker.settle();
    expect([broker.queue("q")?.consumers, prepared()]).toEqual([0, 1]); // waiting in open()
    conn.reconnect();
    await broker.settle();
    expect([broker.queue("q")?.consumers, prepared()]).toEqual([1, 2]);
  });

  it("retries with capped backoff while the setup fails", async () => {
    vi.useFakeTimers();
    const broker = new FakeBroker();
    const conn = broker.connect();
    const { consumer, prepared } = keptConsumer(conn);
    await consumer.start();
    // Someone deletes the queue and declares it again with other arguments: the re-declaration is refused (406).
    broker.deleteQueue("q");
    const other = await broker.connect().open();
    await other.declareQueue("q", { durable: true, arguments: { "x-queue-type": "quorum" } });
    await broker.settle();
    await broker.settle();
    expect(conn.lines.filter((l) => l.includes("cannot resume"))).toEqual([expect.stringContaining("retrying in 200 ms")]);
    await vi.advanceTimersByTimeAsync(200);
    await broker.settle();
    expect(conn.lines.filter((l) => l.includes("cannot resume")).at(-1)).toContain("retrying in 400 ms");
    broker.deleteQueue("q");
    await vi.advanceTimersByTimeAsync(400);
    await broker.settle();
    expect(broker.queue("q")?.consumers).toBe(1);
    expect(prepared()).toBe(4);
  });

  it("gives up a resume whose setup the broker never answers, after SETUP_LIMIT_MS, and starts over; the late answer installs nothing", async () => {
    vi.useFakeTimers();
    const broker = new FakeBroker();
    const conn = broker.connect();
    let answer!: () => void;
    const { consumer, got, prepared } = keptConsumer(conn, (n) => (n === 2 ? new Promise<void>((r) => (answer = r)) : undefined));
    await consumer.start();
    // The resume's setup (attempt 2) gets no answer, nor does the close of its channel (a broker that answers nothing).
    const open = conn.open.bind(conn);
    let opened = 0;
    conn.open = async (...args: Parameters<typeof open>) => {
      const channel = await open(...args);
      if (++opened === 1) channel.close = async () => {};
      return channel;
    };
    broker.channels("q")[0]!.failByBroker();
    await broker.settle();
    expect([prepared(), broker.queue("q")?.consumers, consumer.consuming]).toEqual([2, 0, false]);
    await vi.advanceTimersByTimeAsync(SETUP_LIMIT_MS - 1);
    expect(prepared()).toBe(2); // still waiting
    await vi.advanceTimersByTimeAsync(1);
    expect(conn.lines.filter((l) => l.includes("cannot resume"))).toEqual([expect.stringContaining(`no answer from the broker within ${SETUP_LIMIT_MS / 1000} s`)]);
    await vi.advanceTimersByTimeAsync(200);
    await broker.settle();
    expect([prepared(), broker.queue("q")?.consumers, consumer.consuming]).toEqual([3, 1, true]);
    answer(); // the given-up attempt's answer comes after all: it must not add a second consumer
    await broker.settle();
    await broker.settle();
    expect(broker.queue("q")?.consumers).toBe(1);
    (await broker.connect().open()).publish("", "q", Buffer.from("once"), {});
    await broker.settle();
    expect(got).toEqual(["once"]);
  });

  it("leaves no consumer behind when closed while resuming", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const { consumer } = keptConsumer(conn);
    await consumer.start();
    broker.channels("q")[0]!.failByBroker();
    const closing = consumer.close(); // the resume is under way
    await closing;
    await broker.settle();
    expect(broker.queue("q")?.consumers).toBe(0);
    expect(conn.channels).toEqual([]);
  });

  it("stops resuming once the connection is closed for good", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const { consumer, prepared } = keptConsumer(conn);
    await consumer.start();
    conn.close();
    await broker.settle();
    expect(prepared()).toBe(1);
    expect(broker.queue("q")?.consumers).toBe(0);
    expect(conn.lines.filter((l) => l.includes("cannot resume"))).toEqual([]);
  });
});
