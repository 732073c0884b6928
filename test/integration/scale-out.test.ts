import { describe, expect, it } from "vitest";
import { CalculatorClient } from "../../generated/calculator/index.js";
import { deleteAfter, onTeardown, openConnection, uniqueName } from "../helpers/broker.js";
import { startServerProcess } from "../helpers/processes.js";

describe("scale-out", () => {
  it("two server processes on one queue share 200 calls, all answered correctly", async () => {
    const queue = deleteAfter(uniqueName("shared"));
    // Each handler takes 5 ms and each process takes at most 4 at once, so neither can drain the queue alone.
    const [one, two] = await Promise.all([startServerProcess(queue, 4, 5), startServerProcess(queue, 4, 5)]);
    const conn = await openConnection();
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => calc.add({ a: i, b: 1000 })));
    expect(results.map((r) => r.sum)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1000));
    const [servedOne, servedTwo] = await Promise.all([one!.stop(), two!.stop()]);
    expect(servedOne + servedTwo).toBe(200);
    expect(servedOne).toBeGreaterThan(0);
    expect(servedTwo).toBeGreaterThan(0);
  }, 60_000);
});
