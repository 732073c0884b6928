/**
 * Event retries held by the real broker: a failed event waits in a wait queue
 * (`<queue>.retry.<ms>`, TTL, dead-lettered back to the subscription's queue),
 * so it takes no prefetch slot, `close()` does not wait for it, and a group's
 * retry outlives the subscriber that scheduled it. And the home of broadcast
 * subscribers' dead letters: one bounded `<exchange>.<event>.dead`, made by the
 * first dead letter.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  ATTEMPT_HEADER,
  DEAD_REASON_HEADER,
  defineService,
  event,
  type Connection,
  type EventBus,
  type EventContext,
  type SubscribeOptions,
  type Subscription,
} from "../../src/index.js";
import { BROADCAST_DEAD_MAX_LENGTH, BROADCAST_DEAD_TTL_MS } from "../../src/core/protocol.js";
import { deleteAfter, deleteExchangeAfter, onTeardown, openConnection, recordingLogger, uniqueName, until } from "../helpers/broker.js";

const exec = promisify(execFile);

interface Order {
  id: number;
  region: string;
}

/** A service with one event on a topic exchange of its own name, unique to the test. */
function service(exchange: string) {
  return defineService({
    name: "Orders",
    version: "1.0.0",
    queue: "rpc.Orders",
    methods: {},
    exchange: { name: exchange, type: "topic" },
    events: {
      created: event<Order>({
        name: "order_created",
        routingKey: "orders.{region}.created",
        payload: { type: "object", required: ["id", "region"], properties: { id: { type: "integer" }, region: { type: "string" } } },
      }),
    },
  });
}

/** A unique exchange and its event; buses on connections of their own; every queue the test makes is deleted after it. */
async function world() {
  const exchange = deleteExchangeAfter(uniqueName("events"));
  const created = service(exchange).events.created;
  const connection = async (): Promise<{ conn: Connection; bus: EventBus; logs: string[] }> => {
    const logger = recordingLogger();
    const conn = await openConnection(undefined, logger);
    const bus = conn.events();
    onTeardown(() => bus.close());
    return { conn, bus, logs: logger.lines };
  };
  const subscribe = async (bus: EventBus, handler: (p: Order, ctx: EventContext) => void | Promise<void>, options: SubscribeOptions = {}): Promise<Subscription> => {
    const sub = await bus.subscribe(created, handler, options);
    if (options.group !== undefined) deleteAfter(sub.queue);
    deleteAfter(sub.deadLetterQueue);
    for (const queue of sub.retryQueues) deleteAfter(queue);
    return sub;
  };
  const probe = async (conn: Connection, queue: string) => {
    const ch = await conn.channel();
    try {
      return await ch.checkQueue(queue);
    } finally {
      await ch.close().catch(() => {});
    }
  };
  /** The queue's message count, or undefined when it does not exist (a failed passive declare closes only its own channel). */
  const depth = (conn: Connection, queue: string) => probe(conn, queue).then((q) => q.messageCount, () => undefined);
  return { exchange, created, connection, subscribe, probe, depth };
}

/** `rabbitmqctl list_queues` columns of `queue`, tab-separated (undefined when there is no such queue). */
async function listed(queue: string, columns: string[]): Promise<string[] | undefined> {
  const { stdout } = await exec("rabbitmqctl", ["list_queues", "name", ...columns, "--quiet", "--no-table-headers"]);
  return stdout.split("\n").find((line) => line.startsWith(`${queue}\t`))?.split("\t").slice(1);
}

describe("group retries wait on the broker", () => {
  it("with prefetch 2, two always-failing events waiting long delays leave the slots to healthy events", async () => {
    const w = await world();
    const { bus, conn } = await w.connection();
    const handled: number[] = [];
    let failures = 0;
    const sub = await w.subscribe(bus, (p) => {
      if (p.id < 0) {
        failures++;
        throw new Error("always fails");
      }
      handled.push(p.id);
    }, { group: "billing", prefetch: 2, maxAttempts: 2, retryDelayMs: 30_000 });
    await bus.publish(w.created, { id: -1, region: "eu" });
    await bus.publish(w.created, { id: -2, region: "eu" });
    for (let id = 1; id <= 10; id++) await bus.publish(w.created, { id, region: "eu" });

    await until(() => handled.length === 10, "the healthy events", 20_000);
    expect(handled).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(sub.retryQueues).toEqual([`${sub.queue}.retry.30000`]);
    // The failing ones are known to wait in their wait queue, not in this process.
    expect([failures, (await w.probe(conn, sub.retryQueues[0]!)).messageCount, sub.inFlight]).toEqual([2, 2, 0]);
  });

  it("close() returns at once while a retry waits its delay (the event stays in the wait queue)", { timeout: 15_000 }, async () => {
    const w = await world();
    const { bus, conn } = await w.connection();
    const attempts: number[] = [];
    const sub = await w.subscribe(bus, (_p, ctx) => {
      attempts.push(ctx.attempt);
      throw new Error("down");
    }, { group: "billing", retryDelayMs: 30_000 });
    await bus.publish(w.created, { id: 1, region: "eu" });
    await until(async () => (await w.probe(conn, sub.retryQueues[0]!)).messageCount === 1, "the retry in its wait queue");
    // Waiting out the 30 s delay here would overrun this test's 15 s.
    await sub.close();
    expect(attempts).toEqual([1]);
    expect(await w.probe(conn, sub.retryQueues[0]!)).toEqual({ queue: sub.retryQueues[0], messageCount: 1, consumerCount: 0 });
    expect(await w.probe(conn, sub.queue)).toMatchObject({ messageCount: 0, consumerCount: 0 });
  });

  it("a retry scheduled before its subscriber closed reaches the group's next subscriber, with the next attempt number", async () => {
    const w = await world();
    const first = await w.connection();
    const attemptsA: number[] = [];
    const a = await w.subscribe(first.bus, (_p, ctx) => {
      attemptsA.push(ctx.attempt);
      throw new Error("down");
    }, { group: "billing", retryDelayMs: 1000 });
    await first.bus.publish(w.created, { id: 7, region: "eu" }, { messageId: "m-7" });
    await until(async () => (await w.probe(first.conn, a.retryQueues[0]!)).messageCount === 1, "the retry in its wait queue");
    await first.bus.close();
    await first.conn.close(); // the process is gone

    const second = await w.connection();
    const seen: EventContext[] = [];
    await w.subscribe(second.bus, (_p, ctx) => void seen.push(ctx), { group: "billing", retryDelayMs: 1000 });
    await until(() => seen.length === 1, "the retry at the next member");
    expect(attemptsA).toEqual([1]);
    expect(seen[0]).toMatchObject({ attempt: 2, messageId: "m-7", exchange: w.exchange, routingKey: "orders.eu.created", redelivered: false });
    expect(seen[0]!.headers[ATTEMPT_HEADER]).toBe(2);
  });

  it("a retry comes back to its own group's queue only, not to the other groups of the event", async () => {
    const w = await world();
    const { bus, conn } = await w.connection();
    const audit = await w.subscribe(bus, () => {}, { group: "audit" });
    await audit.close(); // its durable queue stays and collects what is routed to it
    const attempts: number[] = [];
    await w.subscribe(bus, (_p, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt === 1) throw new Error("once");
    }, { group: "billing", retryDelayMs: 50 });
    await bus.publish(w.created, { id: 1, region: "eu" });
    await until(() => attempts.length === 2, "the retry");
    expect(attempts).toEqual([1, 2]);
    expect((await w.probe(conn, audit.queue)).messageCount).toBe(1);
  });

  it("a quorum group's wait queue is a quorum queue, and the retry comes back through it", async () => {
    const w = await world();
    const { bus } = await w.connection();
    const attempts: number[] = [];
    const waited: unknown[] = [];
    const sub = await w.subscribe(bus, (_p, ctx) => {
      attempts.push(ctx.attempt);
      waited.push((ctx.headers["x-death"] as { queue: string }[] | undefined)?.map((d) => d.queue));
      if (ctx.attempt < 3) throw new Error("twice");
    }, { group: "replicated", queueType: "quorum", retryDelayMs: 50 });
    await bus.publish(w.created, { id: 1, region: "eu" });
    await until(() => attempts.length === 3, "two retries");
    expect(attempts).toEqual([1, 2, 3]);
    // The broker's x-death names the wait the copy came from; warren leaves it out of its next copy, so it does not pile up.
    expect(waited).toEqual([undefined, [sub.retryQueues[0]], [sub.retryQueues[1]]]);
    const [type, args] = (await listed(sub.retryQueues[0]!, ["type", "arguments"]))!;
    expect(type).toBe("quorum");
    expect(args).toContain('{"x-dead-letter-strategy","at-least-once"}');
    expect(args).toContain(`{"x-dead-letter-routing-key","${sub.queue}"}`);
  });
});

describe("broadcast subscribers", () => {
  it("retry through an exclusive wait queue of their own, which goes with their connection", async () => {
    const w = await world();
    const { bus, conn } = await w.connection();
    const attempts: number[] = [];
    const sub = await w.subscribe(bus, (_p, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt === 1) throw new Error("once");
    }, { retryDelayMs: 200 });
    await bus.publish(w.created, { id: 1, region: "eu" });
    await until(() => attempts.length === 2, "the retry");
    expect(attempts).toEqual([1, 2]);
    const wait = sub.retryQueues[0]!;
    expect(wait).toBe(`${w.exchange}.order_created.${sub.queue.replace(/^amq\./, "")}.retry.200`);
    const [exclusive, args] = (await listed(wait, ["exclusive", "arguments"]))!;
    expect(exclusive).toBe("true");
    expect(args).toContain('{"x-expires",60200}');
    expect(args).toContain(`{"x-dead-letter-routing-key","${sub.queue}"}`);
    await bus.close();
    await conn.close();
    expect(await w.depth((await w.connection()).conn, wait)).toBeUndefined();
  });

  it("dead-letter into <exchange>.<event>.dead, made by the first dead letter, bounded in length and age", async () => {
    const w = await world();
    const { bus, conn } = await w.connection();
    const sub = await w.subscribe(bus, () => {
      throw new Error("broken");
    }, { maxAttempts: 1 });
    expect(sub.deadLetterQueue).toBe(`${w.exchange}.order_created.dead`);
    expect(await w.depth(conn, sub.deadLetterQueue)).toBeUndefined(); // subscribing alone leaves nothing behind
    await bus.publish(w.created, { id: 1, region: "eu" });
    await until(async () => (await w.depth(conn, sub.deadLetterQueue)) === 1, "the dead letter");
    const [durable, args] = (await listed(sub.deadLetterQueue, ["durable", "arguments"]))!;
    expect(durable).toBe("true");
    expect(args).toContain(`{"x-max-length",${BROADCAST_DEAD_MAX_LENGTH}}`);
    expect(args).toContain(`{"x-message-ttl",${BROADCAST_DEAD_TTL_MS}}`);
    const ch = await conn.channel();
    onTeardown(() => ch.close().catch(() => {}));
    const dead = await ch.get(sub.deadLetterQueue, { noAck: true });
    expect(dead && dead.properties.headers?.[DEAD_REASON_HEADER]).toBe("handler_failed");
    await sub.close();
    expect(await w.depth(conn, sub.deadLetterQueue)).toBe(0); // it outlives its subscribers: dead letters are kept for `warren dlq`
  });

  it("use a dead-letter queue an older version made without bounds as it is, and say so once", async () => {
    const w = await world();
    const { bus, conn, logs } = await w.connection();
    const dead = deleteAfter(`${w.exchange}.order_created.dead`);
    const ch = await conn.channel();
    await ch.assertQueue(dead, { durable: true });
    await ch.close();
    const sub = await w.subscribe(bus, () => {
      throw new Error("broken");
    }, { maxAttempts: 1 });
    await bus.publish(w.created, { id: 1, region: "eu" });
    await bus.publish(w.created, { id: 2, region: "eu" });
    await until(async () => (await w.probe(conn, dead)).messageCount === 2, "two dead letters");
    expect(await w.probe(conn, sub.queue)).toMatchObject({ messageCount: 0, consumerCount: 1 });
    expect(logs.filter((l) => l.includes("exists with other arguments than the bounded dead-letter queue"))).toHaveLength(1);
  });
});
