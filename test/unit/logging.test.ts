/** src/core/logging.ts and the records the runtime hands a structured logger (pino's and console's `(fields, message)` shape). */
import { afterEach, describe, expect, it, vi } from "vitest";
import { consoleLogger, formatLogLine, lineLogger, logInfo, type LogFields, type Logger } from "../../src/core/logging.js";
import { RpcClient } from "../../src/rpc/client.js";
import { RpcServer } from "../../src/rpc/server.js";
import { Calculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
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
