/**
 * The in-memory broker's queue TTLs, dead-letter exchanges and `x-expires`, as RabbitMQ 3.10
 * has them: what warren's retry wait queues rely on, so the test kit's subscriptions behave as
 * on the broker.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Delivery, WireChannel } from "../../src/amqp/channel-source.js";
import { MemoryBroker } from "../../src/testing/memory-broker.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const WAIT = { "x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "target" };

let broker: MemoryBroker;
let ch: WireChannel;

function publish(queue: string, body: string, props: Parameters<WireChannel["publish"]>[3] = {}, exchange = ""): Promise<void> {
  return new Promise((resolve, reject) => ch.publishConfirmed(exchange, queue, Buffer.from(body), props, (err) => (err ? reject(err) : resolve())));
}
const bodies = (queue: string) => broker.queue(queue)!.messages.map((m) => m.content.toString());

beforeEach(async () => {
  vi.useFakeTimers();
  broker = new MemoryBroker();
  ch = await broker.connect().open("confirm");
  await ch.declareQueue("target", { durable: true });
});
afterEach(() => vi.useRealTimers());

describe("x-message-ttl with a dead-letter exchange", () => {
  it("moves each message to the dead-letter routing key when its TTL runs out, in arrival order, recording x-death", async () => {
    await ch.declareQueue("wait", { durable: true, arguments: WAIT });
    await publish("wait", "a", { headers: { "x-warren-attempt": 2 }, expiration: "60000" });
    await vi.advanceTimersByTimeAsync(50);
    await publish("wait", "b");
    await vi.advanceTimersByTimeAsync(49);
    expect([bodies("wait"), bodies("target")]).toEqual([["a", "b"], []]);
    await vi.advanceTimersByTimeAsync(1);
    expect([bodies("wait"), bodies("target")]).toEqual([["b"], ["a"]]);
    await vi.advanceTimersByTimeAsync(50);
    expect([bodies("wait"), bodies("target")]).toEqual([[], ["a", "b"]]);

    const [a] = broker.queue("target")!.messages;
    expect(a).toMatchObject({ exchange: "", routingKey: "target", redelivered: false, expiresAt: Infinity });
    expect(a!.properties.expiration).toBeUndefined(); // removed, so it cannot expire again where it lands
    expect(a!.properties.headers).toMatchObject({
      "x-warren-attempt": 2,
      "x-death": [{ count: 1, reason: "expired", queue: "wait", exchange: "", "routing-keys": ["wait"] }],
      "x-first-death-queue": "wait",
      "x-first-death-reason": "expired",
    });
  });

  it("delivers what it dead-lettered to the target's consumer, and counts a second pass through the same queue in x-death", async () => {
    await ch.declareQueue("wait", { durable: true, arguments: WAIT });
    const got: Delivery[] = [];
    await ch.consume("target", (m) => {
      if (m === null) return;
      got.push(m);
      ch.ack(m);
      if (got.length === 1) ch.publish("", "wait", m.content, m.properties as object);
    });
    await publish("wait", "again");
    await vi.advanceTimersByTimeAsync(100);
    await broker.settle();
    await vi.advanceTimersByTimeAsync(100);
    await broker.settle();
    expect(got.map((m) => [m.fields.exchange, m.fields.routingKey])).toEqual([["", "target"], ["", "target"]]);
    expect((got[1]!.properties.headers as { "x-death": { count: number }[] })["x-death"].map((d) => d.count)).toEqual([2]);
  });

  it("keeps the message's own routing key without x-dead-letter-routing-key, and routes through a named exchange", async () => {
    await ch.declareExchange("dlx", "direct", { durable: true });
    await ch.bindQueue("target", "dlx", "orders.eu");
    await ch.declareQueue("wait", { durable: true, arguments: { "x-message-ttl": 10, "x-dead-letter-exchange": "dlx" } });
    await ch.declareExchange("in", "direct", { durable: true });
    await ch.bindQueue("wait", "in", "orders.eu");
    await publish("orders.eu", "x", {}, "in");
    await vi.advanceTimersByTimeAsync(10);
    expect(broker.queue("target")!.messages.map((m) => [m.content.toString(), m.exchange, m.routingKey])).toEqual([["x", "dlx", "orders.eu"]]);
  });

  it("drops an expired message when its dead-letter exchange routes nowhere, as RabbitMQ does", async () => {
    await ch.declareQueue("wait", { durable: true, arguments: { ...WAIT, "x-dead-letter-routing-key": "nobody" } });
    await publish("wait", "lost");
    await vi.advanceTimersByTimeAsync(100);
    expect([broker.queue("wait")!.ready, broker.queue("target")!.ready]).toEqual([0, 0]);
  });

  it("reports messages waiting to expire into a dead-letter exchange as work under way (busy), until they have moved", async () => {
    await ch.declareQueue("wait", { durable: true, arguments: WAIT });
    await publish("wait", "soon");
    expect(broker.busy()).toEqual(['queue "wait": 1 waiting to expire into its dead-letter exchange']);
    await vi.advanceTimersByTimeAsync(100);
    expect(broker.busy()).toEqual([]); // in "target", which nobody consumes
  });

  it("dead-letters a message requeued by a closed channel when its (kept) expiry comes", async () => {
    await ch.declareQueue("wait", { durable: true, arguments: { ...WAIT, "x-message-ttl": 1000 } });
    const other = await broker.connect().open();
    await other.prefetch(1);
    await other.consume("wait", () => {});
    await publish("wait", "held");
    await broker.settle();
    expect(broker.queue("wait")).toMatchObject({ ready: 0, unacked: 1 });
    await vi.advanceTimersByTimeAsync(500);
    await other.close();
    expect(bodies("wait")).toEqual(["held"]);
    await vi.advanceTimersByTimeAsync(500);
    expect([bodies("wait"), bodies("target")]).toEqual([[], ["held"]]);
  });

  it("refuses a redeclaration with another TTL or dead-letter target (406), and a TTL that is not a whole number of ms", async () => {
    await ch.declareQueue("wait", { durable: true, arguments: WAIT });
    await expect(ch.declareQueue("wait", { durable: true, arguments: { ...WAIT, "x-message-ttl": 200 } })).rejects.toMatchObject({ code: 406, message: expect.stringContaining("inequivalent arg 'x-message-ttl'") });
    const ch2 = await broker.connect().open();
    await expect(ch2.declareQueue("wait", { durable: true })).rejects.toMatchObject({ code: 406, message: expect.stringContaining("inequivalent arg 'x-message-ttl'") });
    const ch3 = await broker.connect().open();
    await expect(ch3.declareQueue("bad", { durable: true, arguments: { "x-message-ttl": 1.5 } })).rejects.toMatchObject({ code: 406, message: expect.stringContaining("invalid arg 'x-message-ttl'") });
  });
});

describe("x-expires", () => {
  it("deletes a queue unused that long; a redeclaration renews the lease and a consumer holds it", async () => {
    await ch.declareQueue("lease", { durable: false, exclusive: true, arguments: { "x-expires": 1000 } });
    await vi.advanceTimersByTimeAsync(900);
    await ch.declareQueue("lease", { durable: false, exclusive: true, arguments: { "x-expires": 1000 } });
    await vi.advanceTimersByTimeAsync(900);
    expect(broker.queue("lease")).toBeDefined();
    const tag = await ch.consume("lease", () => {});
    await vi.advanceTimersByTimeAsync(5000);
    expect(broker.queue("lease")).toBeDefined();
    await ch.cancel(tag);
    await vi.advanceTimersByTimeAsync(999);
    expect(broker.queue("lease")).toBeDefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(broker.queue("lease")).toBeUndefined();
  });
});

describe("timers", () => {
  it("never keep a process alive: a script whose message waits an hour exits at once", async () => {
    vi.useRealTimers();
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", path.join(root, "test/helpers/memory-ttl-script.ts")], { cwd: root });
    expect(stdout).toBe("waiting 1\ndone\n");
  });
});
