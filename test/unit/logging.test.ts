/** src/core/logging.ts and the records the runtime hands a structured logger (pino's and console's `(fields, message)` shape). */
import { afterEach, describe, expect, it, vi } from "vitest";
import { consoleLogger, formatLogLine, lineLogger, logInfo, type LogFields, type Logger } from "../../src/core/logging.js";
import { RpcError } from "../../src/core/errors.js";
import { DEAD_ERROR_HEADER, DEAD_REASON_HEADER } from "../../src/core/protocol.js";
import { EventBus } from "../../src/events/bus.js";
import { RpcClient } from "../../src/rpc/client.js";
import { RpcServer } from "../../src/rpc/server.js";
import { Calculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { Orders } from "../../generated/orders/index.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";

/** A logger that keeps every record as pino would receive it. */
function structured(): Logger & { records: { level: string; fields: LogFields; message: string }[] } {
  const records: { level: string; fields: LogFields; message: string }[] = [];
  const at = (level: string) => (fields: LogFields, message: string) => void records.push({ level, fields, message });
  return { records, info: at("info"), warn: at("warn"), error: at("error") };
}

afterEach(() => vi.restoreAllMocks());

describe("records", () => {
  it("a failing handler is logged as an error with service, method, correlation id, code and the error itself", async () => {
    const broker = new FakeBroker();
    const logger = structured();
    const boom = new Error("database down");
    const handlers = { add: () => { throw boom; }, divide: () => ({ quotient: 1 }), summarize: () => ({ statistic: "mean", value: 0, count: 0, label: null }), centroid: () => ({ x: 0, y: 0 }) } as CalculatorHandlers;
    await new RpcServer(broker.connect(), { logger }).register(Calculator, handlers);
    await expect(new RpcClient(broker.connect()).call(Calculator.methods.add, { a: 1, b: 2 })).rejects.toMatchObject({ code: "internal" });
    expect(logger.records).toEqual([
      { level: "error", fields: { service: "Calculator", method: "add", correlationId: expect.any(String), code: "internal", err: boom }, message: expect.stringMatching(/^handler failed: Error: database down/) },
    ]);
  });
});

describe("a call or publish the handler made failed", () => {
  const handlers = (add: CalculatorHandlers["add"]) =>
    ({ add, divide: () => { throw new RpcError("setup_failed", 'exchange "events.Orders" exists as a fanout, the contract declares a topic exchange'); }, summarize: () => ({ statistic: "mean", value: 0, count: 0, label: null }), centroid: () => ({ x: 0, y: 0 }) }) as CalculatorHandlers;

  it("is one line that says so, with the call's code and message, as cause, no stack; a warning for a peer's failure, an error for one to fix here", async () => {
    const broker = new FakeBroker();
    const logger = structured();
    // A real nested call: nobody serves rpc.Nobody, so it fails with no_server.
    const nested = new RpcClient(broker.connect(), { queues: { Calculator: "rpc.Nobody" } });
    await new RpcServer(broker.connect(), { logger }).register(Calculator, handlers((req) => nested.call(Calculator.methods.add, req)));
    const client = new RpcClient(broker.connect());
    await expect(client.call(Calculator.methods.add, { a: 1, b: 2 })).rejects.toMatchObject({ code: "internal" });
    await expect(client.call(Calculator.methods.divide, { dividend: 1, divisor: 1 })).rejects.toMatchObject({ code: "internal" });
    const line = (code: string, text: string) => new RegExp(`^a call or publish the handler made failed \\(${code}: ${text}\\); answering internal \\(correlation_id [^)]+\\)$`);
    expect(logger.records).toEqual([
      { level: "warn", fields: { service: "Calculator", method: "add", correlationId: expect.any(String), code: "internal", cause: "no_server" }, message: expect.stringMatching(line("no_server", ".*rpc\\.Nobody.*")) },
      { level: "error", fields: { service: "Calculator", method: "divide", correlationId: expect.any(String), code: "internal", cause: "setup_failed" }, message: expect.stringMatching(line("setup_failed", "exchange .* declares a topic exchange")) },
    ]);
    expect(logger.records[0]!.message).toContain(logger.records[0]!.fields.correlationId);
  });

  it("an event handler's is logged the same way on each attempt; the retries and the dead letter are as for any failure", async () => {
    const broker = new FakeBroker();
    const logger = structured();
    const bus = new EventBus(broker.connect(), { logger });
    await bus.subscribe(Orders.events.orderPlaced, () => { throw new RpcError("timeout", "Inventory.reserve: no reply within 500 ms"); }, { group: "billing", maxAttempts: 2, retryDelayMs: 0 });
    await new EventBus(broker.connect()).publish(Orders.events.orderPlaced, { orderId: "o-1", region: "eu", items: [{ sku: "apple", quantity: 1 }] });
    for (let i = 0; i < 20 && logger.records.length < 3; i++) await broker.settle();
    await broker.settle();
    const failedCall = "a call or publish the handler made failed (timeout: Inventory.reserve: no reply within 500 ms)";
    expect(logger.records.map((r) => [r.level, r.message, r.fields.cause, "err" in r.fields])).toEqual([
      ["warn", `handler failed (attempt 1 of 2), retrying: ${failedCall}`, "timeout", false],
      ["error", `handler failed 2 time(s), dead-lettering to "events.Orders.order_placed.billing.dead": ${failedCall}`, "timeout", false],
      ["warn", expect.stringContaining("dead-lettered an event"), undefined, false],
    ]);
    const [dead] = broker.queue("events.Orders.order_placed.billing.dead")!.messages;
    expect(dead!.properties.headers).toMatchObject({ [DEAD_REASON_HEADER]: "handler_failed", [DEAD_ERROR_HEADER]: "Inventory.reserve: no reply within 500 ms" });
  });
});

describe("formats", () => {
  it("one line names the subject, else the service and method or event, else nothing", () => {
    expect(formatLogLine({ service: "Calculator", method: "add", code: "internal" }, "handler failed")).toBe("warren: Calculator.add: handler failed");
    expect(formatLogLine({ service: "Orders", event: "order_placed" }, "dead-lettered")).toBe("warren: Orders.order_placed: dead-lettered");
    expect(formatLogLine({ service: "Orders", subject: "Orders.order_placed subscriber (group billing)" }, "retrying")).toBe("warren: Orders.order_placed subscriber (group billing): retrying");
    expect(formatLogLine({ url: "amqp://guest:***@h:5672" }, "reconnected")).toBe("warren: reconnected");
  });

  it("the default logger prints one line per record; lineLogger hands lines over; info falls back to warn", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    consoleLogger.warn({ service: "S", method: "m" }, "hello");
    expect(warn).toHaveBeenCalledWith("warren: S.m: hello");
    const lines: string[] = [];
    logInfo(lineLogger((l) => lines.push(l)), { service: "S" }, "up");
    const onlyWarn = { warn: vi.fn(), error: vi.fn() };
    logInfo(onlyWarn, { queue: "q" }, "consuming again");
    expect(lines).toEqual(["warren: S: up"]);
    expect(onlyWarn.warn).toHaveBeenCalledWith({ queue: "q" }, "consuming again");
  });
});
