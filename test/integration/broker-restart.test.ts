/**
 * Whole-broker faults: the RabbitMQ application stopped and started under load,
 * and the memory alarm (connection.blocked). Both touch the shared broker, so
 * each test restores it in a `finally`, whatever happens.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it, vi } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";
import { PointsClient, servePoints } from "../../generated/points/index.js";
import { AmqpChannel } from "../../src/amqp/channel.js";
import { RpcError } from "../../src/index.js";
import { calculatorHandlers } from "../../examples/services/calculator.js";
import { deleteAfter, deleteExchangeAfter, onTeardown, openConnection, sleep, uniqueName, until } from "../helpers/broker.js";

const exec = promisify(execFile);
// Async, never execFileSync: a blocked event loop would delay the clients' timers and skew the deadline checks.
const ctl = async (...args: string[]): Promise<string> => (await exec("rabbitmqctl", args, { timeout: 60_000 })).stdout.trim();

/** Collects unhandled rejections while `fn` runs. */
async function watchingUnhandled(fn: (seen: unknown[]) => Promise<void>): Promise<void> {
  const seen: unknown[] = [];
  const onUnhandled = (reason: unknown) => seen.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    await fn(seen);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
}

/** Resolves once `emitter` emits `event`, or rejects after `ms`. */
function nextEvent(emitter: NodeJS.EventEmitter, event: string, ms: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`no "${event}" event within ${ms} ms`));
    }, ms);
    const onEvent = (arg: unknown) => {
      clearTimeout(timer);
      resolve(arg);
    };
    emitter.once(event, onEvent);
  });
}

describe("broker restart", () => {
  it("stop_app/start_app while 1,000 calls are under way: each settles clearly within its deadline, nothing leaks, then calls succeed", async () => {
    await watchingUnhandled(async (unhandled) => {
      const serverConn = await openConnection();
      const pointsQueue = deleteAfter(uniqueName("points"));
      const calcQueue = deleteAfter(uniqueName("calc"));
      const server = serverConn.server({ prefetch: 64 });
      onTeardown(() => server.close());
      await servePoints(server, { addPoint: async ({ x, y }) => { await sleep(2); return { count: 1, centroid: { x, y } }; } }, { queue: pointsQueue });
      await serveCalculator(server, calculatorHandlers, { queue: calcQueue });

      const conn = await openConnection();
      const events: string[] = [];
      for (const e of ["disconnected", "connected"]) conn.on(e, () => events.push(e));
      const client = await conn.client({ queues: { Points: pointsQueue, Calculator: calcQueue } });
      onTeardown(() => client.close());
      const points = new PointsClient(client);
      const calc = new CalculatorClient(client);

      const timeoutMs = 8000;
      type Outcome = { kind: "points" | "calc"; code: string; late: number };
      // A wrong answer fails the expect inside `call`: it is tallied under its message, not mistaken for an RpcError.
      const track = (kind: Outcome["kind"], call: () => Promise<void>): Promise<Outcome> => {
        const deadline = Date.now() + timeoutMs;
        return call().then(
          () => ({ kind, code: "ok", late: Date.now() - deadline }),
          (err: unknown) => ({ kind, code: err instanceof RpcError ? err.code : `not an RpcError: ${String(err)}`, late: Date.now() - deadline }),
        );
      };
      // Closed loop: 1,000 workers, each issuing its next call as soon as the previous one settles, so that
      // ~1,000 calls are under way whenever the broker goes down; they stop issuing once the loss is seen.
      let issuing = true;
      conn.once("disconnected", () => (issuing = false));
      const outcomes: Outcome[] = [];
      const workers = Array.from({ length: 1000 }, async (_, w) => {
        for (let n = 0; issuing; n++) {
          const i = w * 1_000_000 + n;
          outcomes.push(
            await (w % 5 === 4
              ? track("calc", async () => expect(await calc.add({ a: i, b: 1 }, { timeoutMs })).toEqual({ sum: i + 1 }))
              : track("points", async () => expect(await points.addPoint({ x: i, y: 0 }, { timeoutMs })).toEqual({ count: 1, centroid: { x: i, y: 0 } }))),
          );
        }
      });

      try {
        await until(() => outcomes.some((o) => o.code === "ok"), "the first answers (calls under way)");
        await ctl("stop_app");
        await ctl("start_app");
        await ctl("await_startup");
      } finally {
        issuing = false;
        // Restore the broker even if a step above failed (start_app on a running app is a no-op).
        await ctl("start_app").catch(() => {});
        await ctl("await_startup").catch(() => {});
      }
      await Promise.all(workers);

      const tally = new Map<string, number>();
      for (const o of outcomes) tally.set(`${o.kind}:${o.code}`, (tally.get(`${o.kind}:${o.code}`) ?? 0) + 1);
      console.log("stop_app/start_app outcomes:", Object.fromEntries(tally), "latest settle vs deadline (ms):", Math.max(...outcomes.map((o) => o.late)));

      for (const o of outcomes) expect(["ok", "connection_lost", "timeout"]).toContain(o.code);
      // The fault really hit calls under way: non-idempotent ones in flight cannot be retried.
      expect(tally.get("points:connection_lost") ?? 0).toBeGreaterThan(0);
      expect(Math.max(...outcomes.map((o) => o.late))).toBeLessThan(1000); // no call outlived its deadline (+1 s slack)
      expect(client.pendingCount).toBe(0);
      expect(events).toEqual(expect.arrayContaining(["disconnected", "connected"]));

      // After recovery: the server re-declared its (durable) queues and new calls succeed.
      await expect(points.addPoint({ x: 1, y: 2 }, { timeoutMs: 15_000 })).resolves.toEqual({ count: 1, centroid: { x: 1, y: 2 } });
      await expect(calc.add({ a: 20, b: 22 }, { timeoutMs: 15_000 })).resolves.toEqual({ sum: 42 });
      expect(client.pendingCount).toBe(0);
      expect(unhandled).toEqual([]);
    });
  }, 60_000);
});

describe("events across a broker restart", () => {
  it("persistent events wait in a durable group queue through stop_app/start_app, and a running subscription resumes", async () => {
    const exchange = deleteExchangeAfter(uniqueName("events"));
    const conn = await openConnection();
    const bus = conn.events({ exchanges: { Orders: exchange } });
    onTeardown(() => bus.close());
    const subscriber = new OrdersSubscriber(bus);
    // The group's queue exists (declared by a member that then stopped); nobody consumes it during the restart.
    const stored = await subscriber.onOrderPlaced(() => {}, { group: "stored" });
    await stored.close();
    deleteAfter(stored.queue);
    deleteAfter(stored.deadLetterQueue);
    const live: string[] = [];
    const running = await subscriber.onOrderPlaced((o) => void live.push(o.orderId), { group: "live" });
    deleteAfter(running.queue);
    deleteAfter(running.deadLetterQueue);

    const publisher = new OrdersPublisher(bus);
    for (let i = 0; i < 50; i++) await publisher.publishOrderPlaced({ orderId: `before-${i}`, region: "eu", items: [] });
    try {
      await ctl("stop_app");
      await ctl("start_app");
      await ctl("await_startup");
    } finally {
      await ctl("start_app").catch(() => {});
      await ctl("await_startup").catch(() => {});
    }
    await until(() => conn.connected, "the reconnection", 30_000);
    for (let i = 0; i < 10; i++) await publisher.publishOrderPlaced({ orderId: `after-${i}`, region: "eu", items: [] });

    const got: string[] = [];
    await subscriber.onOrderPlaced((o) => void got.push(o.orderId), { group: "stored" });
    await until(() => got.length >= 60 && live.filter((id) => id.startsWith("after-")).length >= 10, "the stored and the live events");
    expect(got.filter((id) => id.startsWith("before-"))).toHaveLength(50); // persistent messages in a durable queue survived
    expect(new Set(got).size).toBe(60);
    // The running subscription re-declared its queue and binding and got the events published after the restart.
    expect(live.filter((id) => id.startsWith("after-")).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `after-${i}`).sort());
  }, 90_000);
});

describe("memory alarm", () => {
  it("a publishing connection gets connection.blocked; a call and an event made while blocked are not published until unblocked, then all complete", async () => {
    await watchingUnhandled(async (unhandled) => {
      const serverConn = await openConnection();
      const queue = deleteAfter(uniqueName("calc"));
      const server = serverConn.server();
      onTeardown(() => server.close());
      await serveCalculator(server, calculatorHandlers, { queue });

      const conn = await openConnection();
      const events: string[] = [];
      for (const e of ["blocked", "unblocked", "disconnected"]) conn.on(e, () => events.push(e));
      const client = await conn.client({ queues: { Calculator: queue } });
      onTeardown(() => client.close());
      const calc = new CalculatorClient(client);
      await expect(calc.add({ a: 1, b: 1 })).resolves.toEqual({ sum: 2 });

      // Count the messages the client and the bus hand to the AMQP layer (every publish goes through AmqpChannel).
      const send = vi.spyOn(AmqpChannel.prototype, "publish");
      const sendConfirmed = vi.spyOn(AmqpChannel.prototype, "publishConfirmed");
      onTeardown(() => (send.mockRestore(), sendConfirmed.mockRestore()));
      const requestsPublished = () => send.mock.calls.filter((c) => c[1] === queue).length;

      // An event bus on the same connection; its first publish declares the exchange.
      const exchange = deleteExchangeAfter(uniqueName("events"));
      const bus = conn.events({ exchanges: { Orders: exchange } });
      onTeardown(() => bus.close());
      const publisher = new OrdersPublisher(bus);
      const order = { orderId: "o-1", region: "eu" as const, items: [] };
      await publisher.publishOrderPlaced(order);
      const eventsPublished = () => sendConfirmed.mock.calls.filter((c) => c[0] === exchange).length;
      expect(eventsPublished()).toBe(1);

      // Restore the exact configured value: a fraction (`0.4`) or `{absolute,Bytes}`.
      const original = await ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().");
      const absolute = /^\{absolute,\s*(\d+)\}$/.exec(original);
      const restoreArgs = absolute ? ["set_vm_memory_high_watermark", "absolute", absolute[1]!] : ["set_vm_memory_high_watermark", original];
      expect(absolute !== null || Number.isFinite(Number(original))).toBe(true);

      const timeoutMs = 20_000;
      const listenersBefore = conn.listenerCount("disconnected") + conn.listenerCount("unblocked");
      let first!: Promise<unknown>;
      let second!: Promise<unknown>;
      let event!: Promise<void>;
      try {
        await ctl("set_vm_memory_high_watermark", "0.000001");
        for (let i = 0; i < 100 && !(await ctl("eval", "rabbit_alarm:get_alarms().")).includes("memory"); i++) await sleep(100);
        expect(await ctl("eval", "rabbit_alarm:get_alarms().")).toContain("memory");
        expect(conn.blocked).toBe(false); // the broker tells a connection only once it publishes

        const blocked = nextEvent(conn, "blocked", 10_000);
        // This publish reaches the socket and is what makes the broker block (and notify) the connection.
        first = calc.add({ a: 2, b: 3 }, { timeoutMs });
        first.catch(() => {});
        await blocked;
        expect(conn.blocked).toBe(true);
        expect(requestsPublished()).toBe(1);

        // A call made while blocked waits inside the client: not handed to amqplib at all. So does an event.
        second = calc.add({ a: 4, b: 5 }, { timeoutMs });
        second.catch(() => {});
        event = publisher.publishOrderPlaced({ ...order, orderId: "o-2" });
        event.catch(() => {});
        await sleep(300);
        expect(requestsPublished()).toBe(1);
        expect(client.pendingCount).toBe(2);
        expect(eventsPublished()).toBe(1);

        const unblocked = nextEvent(conn, "unblocked", 15_000);
        await ctl(...restoreArgs);
        await unblocked;
      } finally {
        await ctl(...restoreArgs).catch(() => {});
      }
      expect(conn.blocked).toBe(false);
      await expect(first).resolves.toEqual({ sum: 5 });
      await expect(second).resolves.toEqual({ sum: 9 });
      await expect(event).resolves.toBeUndefined(); // confirmed by the broker once unblocked
      expect(eventsPublished()).toBe(2);
      expect(requestsPublished()).toBe(2);
      expect(client.pendingCount).toBe(0);
      expect(events).toEqual(["blocked", "unblocked"]);
      // Calls that waited out the alarm leave no listener behind on the long-lived connection.
      expect(conn.listenerCount("disconnected") + conn.listenerCount("unblocked")).toBe(listenersBefore);
      expect(await ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().")).toBe(original);
      expect(unhandled).toEqual([]);
    });
  }, 60_000);
});
