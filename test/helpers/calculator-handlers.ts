/** The Calculator handlers the integration and conformance tests serve. */
import type { CalculatorHandlers } from "../../generated/calculator/index.js";

/** add (overflow when not finite), divide (division_by_zero), summarize (the maximum), centroid (the mean point). */
export const calculatorHandlers: CalculatorHandlers = {
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
  centroid: ({ points }) => ({
    x: points.reduce((s, p) => s + p.x, 0) / points.length,
    y: points.reduce((s, p) => s + p.y, 0) / points.length,
  }),
};
