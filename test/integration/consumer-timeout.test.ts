/**
 * Long handlers and the broker's consumer timeout (docs/FAILURES.md#long-handlers-and-consumer_timeout).
 * Runs on one private RabbitMQ node (test/helpers/rabbit-nodes.ts) started by
 * this file with `consumer_timeout = 2000` and the channel check every 250 ms
 * (`channel_tick_interval`, 60 s by default, only settable as an Erlang app
 * variable): the machine's own node keeps its 30 minutes. Handlers are held by
 * gates the test opens once it has seen what it waits for (a log line, the
 * broker's view of a channel), never for a guessed time.
 */
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";
import { calculatorHandlers } from "../../examples/services/calculator.js";
import { RpcError, connect, type Connection, type ServerOptions } from "../../src/index.js";
import { onTeardown, recordingLogger, sleep, uniqueName, until } from "../helpers/broker.js";
import { clusterUnavailable, startCluster, type RabbitCluster } from "../helpers/rabbit-nodes.js";

const unavailable = clusterUnavailable();
// In CI set WARREN_REQUIRE_CLUSTER=1, so that a runner without RabbitMQ installed fails instead of skipping.
if (unavailable && process.env.WARREN_REQUIRE_CLUSTER) throw new Error(`private-node tests cannot run: ${unavailable}`);
if (unavailable) console.warn(`consumer-timeout tests skipped: ${unavailable}`);

const CONSUMER_TIMEOUT_MS = 2000;
const TICK_MS = 250;

let cluster: RabbitCluster | undefined;

/** A gate a handler waits on; opened by the test (and at teardown, so nothing is left waiting). */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  onTeardown(() => open());
  return { wait, open };
}

/** A connection to the private node with a recording logger, closed after the test. */
async function privateConnection(): Promise<{ conn: Connection; lines: string[] }> {
  const logger = recordingLogger();
  const conn = await connect(cluster!.nodes[0]!.amqpUrl, { logger, connectTimeoutMs: 10_000 });
  onTeardown(() => conn.close());
  return { conn, lines: logger.lines };
}

/**
 * Calculator served on a fresh queue of the private node, its `add` recording each request's
 * `a` in `runs` and waiting at the `slow` gate while `hold(a)`; with a client for that queue.
 * Everything is closed after the test.
 */
async function slowCalculator(hold: (a: number) => boolean, options: ServerOptions = {}) {
  const { conn, lines } = await privateConnection();
  const queue = uniqueName("calc");
  const server = conn.server(options);
  onTeardown(() => server.close());
  const slow = gate();
  const runs: number[] = [];
  await serveCalculator(server, { ...calculatorHandlers, add: async ({ a, b }) => {
    runs.push(a);
    if (hold(a)) await slow.wait;
    return { sum: a + b };
  } }, { queue });
  const client = await conn.client({ queues: { Calculator: queue } });
  onTeardown(() => client.close());
  return { lines, queue, server, slow, runs, calc: new CalculatorClient(client) };
}

/** Ready and unacknowledged messages of `queue` on the private node. */
async function depth(queue: string): Promise<{ ready: number; unacked: number }> {
  const rows = JSON.parse(await cluster!.nodes[0]!.ctl(["list_queues", "name", "messages_ready", "messages_unacknowledged", "--formatter", "json", "--quiet"])) as {
    name: string;
    messages_ready: number;
    messages_unacknowledged: number;
  }[];
  const row = rows.find((r) => r.name === queue);
  return { ready: row?.messages_ready ?? -1, unacked: row?.messages_unacknowledged ?? -1 };
}

const timedOut = (lines: string[]) => lines.filter((l) => l.includes("a delivery stayed unacknowledged longer than its consumer_timeout"));

describe.skipIf(unavailable !== undefined)("long handlers and the broker's consumer_timeout", () => {
  beforeAll(async () => {
    cluster = await startCluster(1, {
      extraConfig: () => `consumer_timeout = ${CONSUMER_TIMEOUT_MS}\n`,
      erlArgs: `-rabbit channel_tick_interval ${TICK_MS}`,
    });
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it("after the broker closes the channel on an overrunning handler: one clear log line, the consumer resumes, every in-flight request is answered once and not run again", async () => {
    // The two first calls overrun; later calls answer at once.
    const { lines, queue, server, slow, runs, calc } = await slowCalculator((a) => a < 100, { prefetch: 4 });
    // Two requests in flight on the consumer's channel, held past the broker's consumer_timeout.
    const first = calc.add({ a: 1, b: 1 }, { timeoutMs: 25_000 });
    const second = calc.add({ a: 2, b: 2 }, { timeoutMs: 25_000 });
    await until(() => timedOut(lines).length > 0, "the broker to close the server's channel for its consumer timeout", 20_000);
    const [line] = timedOut(lines);
    expect(line).toContain(`queue "${queue}"`);
    expect(line).toContain("consumer_timeout (2000 ms)");
    expect(line).toMatch(/Calculator\.add \(correlation_id \S+\) had run for \d+\.\d s and 1 other request\(s\) were in flight on the channel/);
    expect(line).toContain("Raise consumer_timeout in the broker's rabbitmq.conf");
    // The consumer is back, and the redelivered copies were taken over, not run again.
    await until(() => server.health().ok, "the server to consume again");
    expect(runs.sort()).toEqual([1, 2]);
    // A call made now is served at once, beside the two still running: the queue does not stall.
    await expect(calc.add({ a: 100, b: 1 }, { timeoutMs: 10_000 })).resolves.toEqual({ sum: 101 });
    slow.open();
    // The late replies reach their callers (they go out on the new channel).
    await expect(first).resolves.toEqual({ sum: 2 });
    await expect(second).resolves.toEqual({ sum: 4 });
    await until(async () => (await depth(queue)).unacked === 0, "the redelivered copies to be acknowledged");
    expect(await depth(queue)).toEqual({ ready: 0, unacked: 0 });
    expect(runs.sort((x, y) => x - y)).toEqual([1, 2, 100]);
    expect(timedOut(lines).length).toBeGreaterThanOrEqual(1); // more if a taken-over copy outlasts the limit again before the gate opens
    expect(lines.filter((l) => l.includes("could not reply"))).toEqual([]);
  }, 60_000);

  it("a handler that outlives its channel while the redelivered copy goes elsewhere: its reply still reaches the caller, and the copy, when it comes back, is acknowledged unrun", async () => {
    const { lines, queue, slow, runs, calc } = await slowCalculator(() => true);
    const call = calc.add({ a: 1, b: 1 }, { timeoutMs: 25_000 });
    await until(() => runs.length === 1, "the call in its handler");
    // A consumer of higher priority (plain amqplib, holding what it gets) takes the copy the broker redelivers.
    const other = await amqp.connect(cluster!.nodes[0]!.amqpUrl);
    onTeardown(() => other.close());
    const otherChannel = await other.createChannel();
    otherChannel.on("error", () => {}); // the broker may time it out too while it holds the copy: the copy comes back all the same
    await otherChannel.prefetch(1);
    const taken: amqp.ConsumeMessage[] = [];
    await otherChannel.consume(queue, (msg) => msg && taken.push(msg), { priority: 10 });
    await until(() => taken.length === 1, "the redelivered copy to reach the other consumer", 20_000);
    expect(taken[0]!.fields.redelivered).toBe(true);
    // The broker's channel.close to the server and its delivery to the other consumer race: wait for the log line.
    await until(() => timedOut(lines).length > 0, "the server to log the consumer timeout");
    expect(timedOut(lines)).toHaveLength(1);
    slow.open();
    await expect(call).resolves.toEqual({ sum: 2 }); // published on the server's new channel
    // The other consumer gives the copy back: the server acknowledges it without running it.
    await otherChannel.close().catch(() => {});
    await until(() => lines.some((l) => l.includes("a redelivered request was answered already")), "the server to acknowledge the copy");
    await until(async () => (await depth(queue)).unacked === 0, "the broker to see the ack");
    expect(await depth(queue)).toEqual({ ready: 0, unacked: 0 });
    expect(runs).toEqual([1]);
  }, 60_000);

  it("acknowledges a request once its caller's deadline has passed, so a handler that overruns it costs no channel", async () => {
    const { lines, queue, slow, runs, calc } = await slowCalculator((a) => a === 1);
    const err = await calc.add({ a: 1, b: 1 }, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect((err as RpcError).code).toBe("timeout");
    await until(() => lines.some((l) => l.includes("past its caller's deadline; acknowledged the request")), "the server to acknowledge the expired request");
    await until(async () => (await depth(queue)).unacked === 0, "the broker to see the ack");
    // The handler runs on well past the broker's limit (and several of its checks): the channel stays.
    await sleep(CONSUMER_TIMEOUT_MS + 4 * TICK_MS);
    expect(timedOut(lines)).toEqual([]);
    slow.open();
    await expect(calc.add({ a: 2, b: 2 }, { timeoutMs: 10_000 })).resolves.toEqual({ sum: 4 });
    expect(runs).toEqual([1, 2]);
    expect(lines.filter((l) => l.includes("closed"))).toEqual([]);
  }, 60_000);

  it("with consumerTimeoutMs, warns about methods whose timeout is not below it and acknowledges a request before the broker's limit, then still replies", async () => {
    const { lines, queue, slow, runs, calc } = await slowCalculator((a) => a === 1, { consumerTimeoutMs: CONSUMER_TIMEOUT_MS });
    // Calculator.add declares timeoutMs 5000: above the broker's 2000 (the warning comes once, when it is registered).
    expect(lines.filter((l) => l.includes("its timeoutMs (5000) is not well below the broker's consumer_timeout"))).toHaveLength(1);
    const call = calc.add({ a: 1, b: 1 }, { timeoutMs: 20_000 });
    await until(() => lines.some((l) => l.includes("near the broker's consumer_timeout (consumerTimeoutMs 2000); acknowledged the request now")), "the early acknowledgement");
    await until(async () => (await depth(queue)).unacked === 0, "the broker to see the ack");
    await sleep(CONSUMER_TIMEOUT_MS + 4 * TICK_MS);
    expect(timedOut(lines)).toEqual([]);
    slow.open();
    await expect(call).resolves.toEqual({ sum: 2 });
    expect(runs).toEqual([1]);
    expect(await depth(queue)).toEqual({ ready: 0, unacked: 0 });
    expect(lines.filter((l) => l.includes("closed"))).toEqual([]);
  }, 60_000);

  it("an event handler that overruns: one log line, the subscription keeps consuming, each event in flight is handled once and acknowledged", async () => {
    const { conn, lines } = await privateConnection();
    const exchange = uniqueName("orders");
    const bus = conn.events({ exchanges: { Orders: exchange } });
    onTeardown(() => bus.close());
    const slow = gate();
    const runs: string[] = [];
    const subscription = await new OrdersSubscriber(bus).onOrderPlaced(async (order) => {
      runs.push(order.orderId);
      if (order.orderId.startsWith("slow")) await slow.wait;
    }, { group: "billing", prefetch: 4 });
    const publisher = new OrdersPublisher(bus);
    await publisher.publishOrderPlaced({ orderId: "slow-1", region: "eu", items: [] });
    await publisher.publishOrderPlaced({ orderId: "slow-2", region: "eu", items: [] });
    await until(() => timedOut(lines).length > 0, "the broker to close the subscriber's channel for its consumer timeout", 20_000);
    const [line] = timedOut(lines);
    expect(line).toContain(`queue "${subscription.queue}"`);
    expect(line).toMatch(/the order_placed handler had run for \d+\.\d s \(message_id \S+\) and 1 other event\(s\) were in flight on the channel/);
    // It consumes again: a new event is handled while the two first still run.
    await publisher.publishOrderPlaced({ orderId: "fast", region: "eu", items: [] });
    await until(() => runs.includes("fast"), "the event published after the loss to be handled");
    slow.open();
    await until(async () => {
      const { ready, unacked } = await depth(subscription.queue);
      return ready === 0 && unacked === 0 && subscription.inFlight === 0;
    }, "every event to be acknowledged");
    expect(runs.sort()).toEqual(["fast", "slow-1", "slow-2"]);
    expect(timedOut(lines).length).toBeGreaterThanOrEqual(1); // more if a taken-over copy outlasts the limit again before the gate opens
    expect(lines.filter((l) => l.includes("dead-lettered") || l.includes("retrying"))).toEqual([]);
  }, 60_000);
});
