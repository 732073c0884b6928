// The richer example: declared errors, enums, arrays and a shared type.
import type { CalculatorHandlers } from "../../generated/calculator/index.js";

/** Calculator handlers; declared errors are thrown with `ctx.error`. */
export const calculatorHandlers: CalculatorHandlers = {
  add({ a, b }, ctx) {
    const sum = a + b;
    if (!Number.isFinite(sum)) throw ctx.error("overflow");
    return { sum };
  },
  divide({ dividend, divisor }, ctx) {
    if (divisor === 0) throw ctx.error("division_by_zero", { dividend });
    return { quotient: dividend / divisor };
  },
  summarize({ values, statistic, label }) {
    const sorted = [...values].sort((x, y) => x - y);
    const mid = Math.floor(sorted.length / 2);
    const value = {
      mean: values.reduce((s, v) => s + v, 0) / values.length,
      median: sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2,
      max: sorted[sorted.length - 1]!,
      min: sorted[0]!,
    }[statistic];
    return { statistic, value, count: values.length, label: label ?? null };
  },
  centroid({ points }) {
    return {
      x: points.reduce((s, p) => s + p.x, 0) / points.length,
      y: points.reduce((s, p) => s + p.y, 0) / points.length,
    };
  },
};
