/** The Calculator handlers the in-process benchmarks serve: plain arithmetic, no declared errors, nothing that costs time of its own. */
import type { CalculatorHandlers } from "../../generated/calculator/index.js";

/** Synchronous handlers: what is measured is warren's path around them. */
export const benchCalculator: CalculatorHandlers = {
  add: ({ a, b }) => ({ sum: a + b }),
  divide: ({ dividend, divisor }) => ({ quotient: dividend / divisor }),
  summarize: ({ values, statistic }) => ({ statistic, value: values[0]!, count: values.length, label: null }),
  centroid: ({ points }) => points[0]!,
};
