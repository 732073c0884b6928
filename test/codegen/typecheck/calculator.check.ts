/**
 * Type-level tests of the generated example services. Compiled by
 * `tsc --noEmit -p .` and by test/codegen/fixtures.test.ts; never executed.
 * Every `@ts-expect-error` proves that a wrong call does not compile.
 */
import { expectTypeOf } from "vitest";
import type { HandlerContext, RpcTransport, ServiceHandlers } from "../../../src/index.js";
import {
  Calculator,
  CalculatorClient,
  FibonacciClient,
  PointsClient,
  type CalculatorHandlers,
  type CalculatorTypes,
  type Point,
} from "../../../generated/index.js";

declare const transport: RpcTransport;

export async function clientCalls(): Promise<void> {
  const calc = new CalculatorClient(transport);
  expectTypeOf(await calc.add({ a: 1, b: 2 })).toEqualTypeOf<CalculatorTypes.Sum>();
  // @ts-expect-error missing field b
  await calc.add({ a: 1 });
  // @ts-expect-error wrong type for b
  await calc.add({ a: 1, b: "2" });
  // @ts-expect-error forbidden extra field (additionalProperties: false)
  await calc.add({ a: 1, b: 2, c: 3 });
  // @ts-expect-error statistic outside the enum
  await calc.summarize({ values: [1], statistic: "mode" });
  const summary = await calc.summarize({ values: [1, 2], statistic: "median", label: null });
  expectTypeOf(summary.label).toEqualTypeOf<string | null>();
  expectTypeOf(summary.statistic).toEqualTypeOf<"mean" | "median" | "max" | "min">();
  expectTypeOf(await calc.centroid({ points: [{ x: 1, y: 2 }] })).toEqualTypeOf<Point>();
  // @ts-expect-error the shared Point forbids extra fields
  await calc.centroid({ points: [{ x: 1, y: 2, z: 3 }] });
  // @ts-expect-error n must be a number
  await new FibonacciClient(transport).fib({ n: "10" });
  expectTypeOf(await new PointsClient(transport).addPoint({ x: 1, y: 2 })).toEqualTypeOf<{ count: number; centroid: Point }>();
}

export const handlers: CalculatorHandlers = {
  add({ a, b }, ctx) {
    const sum = a + b;
    if (!Number.isFinite(sum)) throw ctx.error("overflow");
    return { sum };
  },
  divide({ dividend, divisor }, ctx) {
    if (divisor === 0) throw ctx.error("division_by_zero", { dividend });
    return { quotient: dividend / divisor };
  },
  async summarize({ values, statistic, label }) {
    return { statistic, value: Math.max(...values), count: values.length, label: label ?? null };
  },
  centroid: ({ points }) => ({ x: points[0]?.x ?? 0, y: points[0]?.y ?? 0 }),
};

/** The generated interface is what the runtime's `register` expects. */
export const asRuntime: ServiceHandlers<typeof Calculator> = handlers;

export const wrongShape: Pick<CalculatorHandlers, "add"> = {
  // @ts-expect-error a handler returning the wrong shape
  add: () => ({ total: 1 }),
};

export function errors(divide: HandlerContext<CalculatorTypes.DivideError>, add: HandlerContext<CalculatorTypes.AddError>): void {
  divide.error("division_by_zero", { dividend: 1 });
  // @ts-expect-error an undeclared code
  divide.error("undeclared_code");
  // @ts-expect-error wrong data for a declared code
  divide.error("division_by_zero", { dividend: "1" });
  // @ts-expect-error data is required when the contract declares a schema
  divide.error("division_by_zero");
  add.error("overflow");
  // @ts-expect-error overflow carries no data
  add.error("overflow", { sum: 1 });
}
