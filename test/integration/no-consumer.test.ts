/**
 * A service whose queue exists but whose servers are all down, on the real
 * broker: calls fail with no_server at once (nothing is sent), and with
 * waitForServer they wait for a server within their deadline (rolling restarts).
 */
import { describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { OrdersSubscriber } from "../../generated/orders/index.js";
import { connect } from "../../src/index.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";
import { deleteAfter, deleteExchangeAfter, onTeardown, openConnection, recordingLogger, sleep, uniqueName } from "../helpers/broker.js";

describe("no consumer on the service's queue", () => {
  it("fails with no_server long before the call's 30 s timeout, leaving nothing in the queue; waitForServer waits for a server that starts", async () => {
    const conn = await openConnection();
    const queue = deleteAfter(uniqueName("calc"));
    const ch = await conn.channel();
    await ch.assertQueue(queue, { durable: true });
    const calc = new CalculatorClient(await conn.client({ queues: { Calculator: queue }, timeoutMs: 30_000 }));

    // A 30 s budget: if the call waited for it, this test would run into vitest's timeout.
    await expect(calc.add({ a: 1, b: 2 })).rejects.toMatchObject({ code: "no_server", message: expect.stringContaining("exists but no server consumes it") });
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);

    const waiting = calc.add({ a: 2, b: 3 }, { waitForServer: true, timeoutMs: 10_000 });
    await sleep(300);
    const server = conn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });
    await expect(waiting).resolves.toEqual({ sum: 5 });
  });
});

describe("closing a connection on purpose", () => {
  it("logs nothing about resuming: servers and group subscribers do not take it for a lost channel", async () => {
    const logger = recordingLogger();
    const conn = await connect(undefined, { logger });
    const queue = deleteAfter(uniqueName("calc"));
    await serveCalculator(conn.server(), calculatorHandlers, { queue });
    const bus = conn.events({ exchanges: { Orders: deleteExchangeAfter(uniqueName("orders")) } });
    const sub = await new OrdersSubscriber(bus).onOrderPlaced(() => {}, { group: "g" });
    deleteAfter(sub.queue);
    deleteAfter(sub.deadLetterQueue);
    await conn.close();
    await sleep(300);
    expect(logger.lines).toEqual([]);
  });
});
