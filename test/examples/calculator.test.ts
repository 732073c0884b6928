import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTestKit, type TestKit } from "../../src/testing/index.js";
import { Calculator, CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";

// The implementation under test (in your project it lives in its own file).
const handlers: CalculatorHandlers = {
  add: ({ a, b }, ctx) => {
    const sum = a + b;
    if (!Number.isFinite(sum)) throw ctx.error("overflow");
    return { sum };
  },
  divide: ({ dividend, divisor }, ctx) => {
    if (divisor === 0) throw ctx.error("division_by_zero", { dividend });
    return { quotient: dividend / divisor };
  },
  summarize: ({ values, statistic, label }) => ({ statistic, value: Math.max(...values), count: values.length, label: label ?? null }),
  centroid: ({ points }) => points[0]!,
};

describe("Calculator", () => {
  let kit: TestKit;
  let calc: CalculatorClient;

  beforeEach(async () => {
    kit = createTestKit();
    await serveCalculator(kit.server(), handlers);
    calc = new CalculatorClient(await kit.client());
  });
  afterEach(() => kit.close());

  it("adds", async () => {
    expect(await calc.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
  });

  it("refuses to divide by zero with a typed error", async () => {
    await expect(calc.divide({ dividend: 1, divisor: 0 })).rejects.toMatchObject({
      code: "division_by_zero",
      data: { dividend: 1 },
    });
  });

  it("validates requests before sending them", async () => {
    // @ts-expect-error: b must be a number
    await expect(calc.add({ a: 1, b: "2" })).rejects.toMatchObject({ code: "invalid_request", side: "client" });
  });

  it("times out when the reply is lost", async () => {
    kit.faults.on(Calculator.methods.add).once().noReply();
    await expect(calc.add({ a: 1, b: 2 }, { timeoutMs: 20 })).rejects.toMatchObject({ code: "timeout" });
    expect(await calc.add({ a: 1, b: 2 })).toEqual({ sum: 3 }); // once(): the next call goes through
  });

  it("fails fast when no server is there", async () => {
    kit.faults.on("Calculator.add").noServer();
    await expect(calc.add({ a: 1, b: 2 })).rejects.toMatchObject({ code: "no_server" });
  });
});
