// The RabbitMQ tutorial's Fibonacci service, implemented against the generated skeleton.
import type { FibonacciHandlers } from "../../generated/fibonacci/index.js";

/** fib(n) iteratively; the contract bounds n to 0..78, so the result is an exact integer. */
export const fibonacciHandlers: FibonacciHandlers = {
  fib({ n }) {
    let [a, b] = [0, 1];
    for (let i = 0; i < n; i++) [a, b] = [b, a + b];
    return { value: a };
  },
};
