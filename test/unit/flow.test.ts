/** src/amqp/flow.ts: publishers wait while the socket buffer is full or the broker blocks the connection, and only then. */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { AmqpConnection } from "../../src/amqp/connection.js";
import { FlowControl } from "../../src/amqp/flow.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";

/** The state of a promise, readable without awaiting it. */
function track(p: Promise<unknown>): { settled: boolean; error?: unknown } {
  const t: ReturnType<typeof track> = { settled: false };
  p.then(
    () => (t.settled = true),
    (error: unknown) => Object.assign(t, { settled: true, error }),
  );
  return t;
}

const realTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("FlowControl", () => {
  it("is open while nothing holds publishes back", async () => {
    const broker = new FakeBroker();
    const flow = new FlowControl(broker.connect());
    expect(flow.open).toBe(true);
    await flow.wait();
  });

  it("waits while the broker blocks the connection, until it unblocks", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const flow = new FlowControl(conn);
    conn.block();
    expect(flow.open).toBe(false);
    const waiting = track(flow.wait());
    await broker.settle();
    expect(waiting.settled).toBe(false);
    conn.unblock();
    await broker.settle();
    expect([waiting.settled, flow.open]).toEqual([true, true]);
  });

  it("after a publish found the socket buffer full, waits until the channel drains or closes", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const flow = new FlowControl(conn);
    const ch = await conn.open();
    conn.saturate();
    flow.published(ch, ch.publish("", "q", Buffer.from("x"), {}));
    expect(flow.open).toBe(false);
    const waiting = track(flow.wait());
    await broker.settle();
    expect(waiting.settled).toBe(false);
    conn.drain();
    await broker.settle();
    expect([waiting.settled, flow.open]).toEqual([true, true]);
    // A channel that closes while full releases its waiters too.
    conn.saturate();
    flow.published(ch, ch.publish("", "q", Buffer.from("y"), {}));
    const again = track(flow.wait());
    ch.failByBroker();
    await broker.settle();
    expect(again.settled).toBe(true);
  });

  // A regression test: AmqpConnection used to stay `blocked` while down, with `unblocked()` resolving at once,
  // so `FlowControl.wait()` looped on resolved promises without ever yielding to the event loop (the reconnect
  // timer never fired, 100% CPU). Each test stops a spin after 1,000 (10,000) turns.
  it("does not spin when the connection is lost while blocked (AmqpConnection)", async () => {
    const model = Object.assign(new EventEmitter(), { close: async () => {} });
    const conn = new AmqpConnection({ model: model as never, url: "amqp://stub" }, () => new Promise(() => {}), {
      coalesceWrites: false,
      logger: { warn() {}, error() {} },
      reconnect: { initialDelayMs: 60_000 },
    });
    let calls = 0;
    const unblocked = conn.unblocked.bind(conn);
    // A guard for this test only: past 1,000 calls, stop answering so a spinning loop ends.
    conn.unblocked = () => (++calls > 1000 ? new Promise(() => {}) : unblocked());
    const flow = new FlowControl(conn);
    model.emit("blocked", "low on memory");
    void flow.wait();
    await realTurn();
    model.emit("close", new Error("missed heartbeats"));
    await realTurn();
    await conn.close();
    expect(calls).toBeLessThan(10);
  });

  it("does not spin when the connection is lost while blocked (fake connection)", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect();
    const flow = new FlowControl(conn);
    conn.block();
    const waiting = track(flow.wait());
    await broker.settle();
    conn.drop();
    await broker.settle();
    expect(conn.unblockedWhileDown).toBeLessThan(10);
    conn.reconnect();
    await broker.settle();
    expect(waiting).toEqual({ settled: true });
  });
});
