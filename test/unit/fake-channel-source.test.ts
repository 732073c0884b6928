/**
 * The in-memory broker (test/helpers/fake-channel-source.ts) keeps the contracts of
 * src/amqp/channel-source.ts and does what RabbitMQ does where warren relies on it:
 * if it drifts, every unit test built on it proves less.
 */
import { describe, expect, it } from "vitest";
import type { Delivery, Returned } from "../../src/amqp/channel-source.js";
import { replyToProblem } from "../../src/core/protocol.js";
import { FakeBroker, brokerError, topicMatch } from "../helpers/fake-channel-source.js";

const body = (v: unknown) => Buffer.from(JSON.stringify(v));
const json = (d: { content: Buffer }) => JSON.parse(d.content.toString()) as unknown;

async function setup() {
  const broker = new FakeBroker();
  const conn = broker.connect();
  return { broker, conn, ch: await conn.open() };
}

describe("FakeBroker", () => {
  it("routes the default exchange by queue name, asynchronously, and returns unroutable mandatory publishes", async () => {
    const { broker, ch } = await setup();
    await ch.declareQueue("q", { durable: true });
    const got: Delivery[] = [];
    const returned: Returned[] = [];
    ch.onReturn((m) => returned.push(m));
    await ch.consume("q", (m) => got.push(m!), { noAck: true });
    ch.publish("", "q", body(1), {});
    ch.publish("", "nowhere", body(2), { correlationId: "c2" }, true);
    ch.publish("", "nowhere", body(3), {}, false);
    expect(got).toEqual([]); // not synchronously, as from a socket
    await broker.settle();
    expect(got.map(json)).toEqual([1]);
    expect(returned.map((r) => [json(r), r.properties.correlationId])).toEqual([[2, "c2"]]);
  });

  it("routes direct, topic and fanout exchanges through bindings", async () => {
    const { broker, ch } = await setup();
    for (const [ex, type] of [["d", "direct"], ["t", "topic"], ["f", "fanout"]] as const) await ch.declareExchange(ex, type, { durable: true });
    for (const q of ["d1", "t1", "t2", "f1", "f2"]) await ch.declareQueue(q, { durable: true });
    await ch.bindQueue("d1", "d", "k");
    await ch.bindQueue("t1", "t", "orders.*.placed");
    await ch.bindQueue("t2", "t", "orders.#");
    await ch.bindQueue("f1", "f", "");
    await ch.bindQueue("f2", "f", "ignored");
    ch.publish("d", "k", body(1), {});
    ch.publish("d", "other", body(2), {});
    ch.publish("t", "orders.eu.placed", body(3), {});
    ch.publish("t", "orders.eu.x.placed", body(4), {});
    ch.publish("f", "anything", body(5), {});
    await broker.settle();
    const ready = (q: string) => broker.queue(q)!.messages.map(json);
    expect([ready("d1"), ready("t1"), ready("t2"), ready("f1"), ready("f2")]).toEqual([[1], [3], [3, 4], [5], [5]]);
    expect(topicMatch("a.#.z", "a.z") && topicMatch("#", "") && !topicMatch("a.*", "a") && topicMatch("*.b.#", "x.b")).toBe(true);
  });

  it("rewrites reply_to for direct reply-to and delivers replies to the requesting channel only", async () => {
    const { broker, conn, ch: caller } = await setup();
    const other = await conn.open();
    const server = await conn.open();
    await server.declareQueue("svc", { durable: true });
    const requests: Delivery[] = [];
    await server.consume("svc", (m) => requests.push(m!), { noAck: true });
    const replies: Delivery[] = [];
    const elsewhere: Delivery[] = [];
    await caller.consume("amq.rabbitmq.reply-to", (m) => replies.push(m!), { noAck: true });
    await other.consume("amq.rabbitmq.reply-to", (m) => elsewhere.push(m!), { noAck: true });
    caller.publish("", "svc", body("ping"), { replyTo: "amq.rabbitmq.reply-to" });
    await broker.settle();
    const replyTo = requests[0]!.properties.replyTo as string;
    expect(replyTo).toBe(caller.replyAddress);
    expect(replyToProblem(replyTo)).toBeUndefined(); // shaped as the broker's own addresses, which servers check
    server.publish("", replyTo, body("pong"), {});
    await broker.settle();
    expect(replies.map(json)).toEqual(["pong"]);
    expect(elsewhere).toEqual([]);
    // Without a reply consumer on the publishing channel the broker refuses (406, channel closed).
    const lone = await conn.open();
    let reason: unknown;
    lone.onClose((r) => (reason = r));
    lone.publish("", "svc", body("x"), { replyTo: "amq.rabbitmq.reply-to" });
    await broker.settle();
    expect(reason).toMatchObject({ code: 406 });
    await expect(other.consume("amq.rabbitmq.reply-to", () => {}, {})).rejects.toMatchObject({ code: 406 });
  });

  it("round-robins among consumers within each channel's prefetch, with per-channel delivery tags", async () => {
    const { broker, conn } = await setup();
    const a = await conn.open();
    const b = await conn.open();
    await a.declareQueue("q", { durable: true });
    const seen: string[] = [];
    const held: [typeof a, Delivery][] = [];
    for (const [name, ch] of [["a", a], ["b", b]] as const) {
      await ch.prefetch(2);
      await ch.consume("q", (m) => (seen.push(`${name}${m!.fields.deliveryTag}:${String(json(m!))}`), held.push([ch, m!])));
    }
    for (let i = 1; i <= 6; i++) a.publish("", "q", body(i), {});
    await broker.settle();
    expect(seen).toEqual(["a1:1", "b1:2", "a2:3", "b2:4"]);
    expect(broker.queue("q")).toMatchObject({ ready: 2, unacked: 4, consumers: 2 });
    // One multiple ack frees both of a's slots.
    a.ack(held[2]![1], true);
    await broker.settle();
    expect(seen.slice(4)).toEqual(["a3:5", "a4:6"]);
    expect(a.acks).toEqual([{ tag: 2, multiple: true }]);
    expect(broker.queue("q")).toMatchObject({ ready: 0, unacked: 4 });
  });

  it("requeues a closed channel's unacked deliveries, in order and marked redelivered", async () => {
    const { broker, conn, ch } = await setup();
    await ch.declareQueue("q", { durable: true });
    await ch.consume("q", () => {});
    for (let i = 1; i <= 3; i++) ch.publish("", "q", body(i), {});
    await broker.settle();
    expect(broker.queue("q")).toMatchObject({ ready: 0, unacked: 3 });
    ch.failByBroker();
    expect(ch.closed).toBe(true);
    expect(broker.queue("q")).toMatchObject({ ready: 3, unacked: 0, consumers: 0 });
    const again: Delivery[] = [];
    const next = await conn.open();
    await next.consume("q", (m) => again.push(m!), { noAck: true });
    await broker.settle();
    expect(again.map((m) => [json(m), m.fields.redelivered, m.fields.deliveryTag])).toEqual([[1, true, 1], [2, true, 2], [3, true, 3]]);
  });

  it("closes the channel (406) on an ack of an unknown or already acked delivery tag", async () => {
    const { broker, ch } = await setup();
    await ch.declareQueue("q", { durable: true });
    const got: Delivery[] = [];
    await ch.consume("q", (m) => got.push(m!));
    ch.publish("", "q", body(1), {});
    await broker.settle();
    ch.ack(got[0]!);
    expect(ch.closed).toBe(false);
    ch.ack(got[0]!);
    await broker.settle();
    expect(ch.closed).toBe(true);
    ch.ack(got[0]!); // ignored once closed, no throw
  });

  it("deletes auto-delete queues with their last consumer and exclusive ones with their connection; refuses others' exclusive queues", async () => {
    const { broker, conn, ch } = await setup();
    const named = await ch.declareQueue("", { exclusive: true, autoDelete: true, durable: false });
    expect(named).toMatch(/^amq\.gen-/);
    await ch.consume(named, () => {});
    const kept = await ch.declareQueue("", { exclusive: true, durable: false });
    const stranger = await broker.connect().open();
    await expect(stranger.consume(kept, () => {})).rejects.toMatchObject({ code: 405 });
    await ch.close();
    expect(broker.queue(named)).toBeUndefined();
    expect(broker.queue(kept)).toBeDefined();
    conn.drop();
    expect(broker.queue(kept)).toBeUndefined();
  });

  it("refuses a redeclaration with other arguments (406) and closes the channel", async () => {
    const { ch } = await setup();
    await ch.declareQueue("q", { durable: true, arguments: { "x-queue-type": "quorum" } });
    await expect(ch.declareQueue("q", { durable: true })).rejects.toThrow(/PRECONDITION_FAILED - inequivalent arg 'x-queue-type'/);
    expect(ch.closed).toBe(true);
    await expect(ch.declareQueue("q", { durable: true })).rejects.toThrow("Channel closed");
  });

  it("confirms publishes on a later tick, nacks injected ones, and fails unconfirmed ones when the channel closes", async () => {
    const { broker, conn } = await setup();
    const ch = await conn.open("confirm");
    await ch.declareQueue("q", { durable: true });
    const outcomes: (string | null)[] = [];
    const record = (err: Error | null) => outcomes.push(err && err.message);
    ch.publishConfirmed("", "q", body(1), {}, record);
    expect(outcomes).toEqual([]);
    await broker.settle();
    broker.nackNextConfirms(1);
    ch.publishConfirmed("", "q", body(2), {}, record);
    await broker.settle();
    expect(outcomes).toEqual([null, "the broker refused the message (basic.nack)"]);
    expect(broker.queue("q")!.ready).toBe(1); // a nacked message was not routed
    broker.swallow("q");
    ch.publishConfirmed("", "q", body(3), {}, record);
    await broker.settle();
    expect(outcomes).toHaveLength(2); // swallowed: no confirm at all
    ch.failByBroker(brokerError(320, "CONNECTION_FORCED - test"));
    expect(outcomes[2]).toContain("CONNECTION_FORCED");
    expect(() => ch.publishConfirmed("", "q", body(4), {}, record)).toThrow("Channel closed");
  });

  it("drops messages whose expiration has passed at delivery time", async () => {
    const { broker, ch } = await setup();
    await ch.declareQueue("q", { durable: true });
    ch.publish("", "q", body("stale"), { expiration: "1" });
    ch.publish("", "q", body("fresh"), { expiration: "60000" });
    await broker.settle();
    await new Promise((r) => setTimeout(r, 5));
    const got: Delivery[] = [];
    await ch.consume("q", (m) => got.push(m!), { noAck: true });
    await broker.settle();
    expect(got.map(json)).toEqual(["fresh"]);
  });

  it("runs close listeners exactly once, also those attached after the close (on a microtask)", async () => {
    const { ch } = await setup();
    const calls: unknown[] = [];
    ch.onClose((r) => calls.push(["before", r]));
    const reason = brokerError(320, "CONNECTION_FORCED - x");
    ch.failByBroker(reason);
    ch.failByBroker(reason);
    ch.onClose((r) => calls.push(["after", r]));
    expect(calls).toEqual([["before", reason]]);
    await Promise.resolve();
    expect(calls).toEqual([["before", reason], ["after", reason]]);
    await ch.close(); // resolves when already closed
  });

  it("drops the connection: channels close, held publishes are lost, open waits for the reconnection; close is for good", async () => {
    const { broker, conn, ch } = await setup();
    await ch.declareQueue("q", { durable: true });
    conn.block();
    ch.publish("", "q", body("held"), {});
    await broker.settle();
    expect(broker.queue("q")!.ready).toBe(0);
    conn.drop();
    expect(ch.closed).toBe(true);
    let opened = false;
    const reopening = conn.open().then((c) => ((opened = true), c));
    await broker.settle();
    expect(opened).toBe(false);
    conn.reconnect();
    const again = await reopening;
    expect(conn.blocked).toBe(false);
    again.publish("", "q", body("after"), {});
    await broker.settle();
    expect(broker.queue("q")!.messages.map(json)).toEqual(["after"]);
    conn.close();
    await expect(conn.open()).rejects.toMatchObject({ code: "connection_lost" });
  });

  it("holds publishes while blocked and routes them on unblock; saturate makes publish return false until drain", async () => {
    const { broker, conn, ch } = await setup();
    await ch.declareQueue("q", { durable: true });
    conn.block();
    let unblocked = false;
    void conn.unblocked().then(() => (unblocked = true));
    expect(ch.publish("", "q", body(1), {})).toBe(true);
    await broker.settle();
    expect([broker.queue("q")!.ready, unblocked]).toEqual([0, false]);
    conn.unblock();
    await broker.settle();
    expect([broker.queue("q")!.ready, unblocked]).toEqual([1, true]);
    conn.saturate();
    expect(ch.publish("", "q", body(2), {})).toBe(false);
    let drained = false;
    void ch.drained().then(() => (drained = true));
    await broker.settle();
    expect(drained).toBe(false);
    conn.drain();
    await broker.settle();
    expect(drained).toBe(true);
  });

  it("cancels consumers of a deleted queue with null; closeAfterConsumeOk closes right after consume resolves", async () => {
    const { broker, conn, ch } = await setup();
    await ch.declareQueue("q", { durable: true });
    const got: (Delivery | null)[] = [];
    await ch.consume("q", (m) => got.push(m));
    broker.deleteQueue("q");
    expect(got).toEqual([null]);
    const other = await conn.open();
    await other.declareQueue("q2", { durable: true });
    broker.closeAfterConsumeOk("q2");
    const tag = await other.consume("q2", () => {});
    expect(tag).toMatch(/^amq\.ctag-/);
    expect(other.closed).toBe(true);
  });
});
