/**
 * Calls and publishes made for an incoming request (`parent: ctx`, or inside a
 * handler of a server with `asyncContext: true`) inherit its deadline and
 * signal; and `ctx.requesterAlive()`. Over the in-memory broker of the test kit.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { OrdersPublisher } from "../../generated/orders/index.js";
import { inherit } from "../../src/core/parent.js";
import type { HandlerContext } from "../../src/index.js";
import { createTestKit, type TestKit } from "../../src/testing/index.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";

let kit: TestKit;
/** Handlers that never answer wait for this, so that closing the kit does not wait for them. */
let release: () => void;
let released: Promise<void>;
beforeEach(() => {
  released = new Promise((r) => (release = r));
});
afterEach(async () => {
  release();
  await kit?.close();
});

const target = { service: "Calculator", method: "add" };

describe("inherit", () => {
  it("takes the smaller budget, refuses a parent that is done with, and joins the signals", () => {
    expect(inherit({ deadline: 1_500 }, target, 30_000, undefined, 1_000).timeoutMs).toBe(500);
    expect(inherit({ deadline: 90_000 }, target, 30_000, undefined, 1_000).timeoutMs).toBe(30_000);
    expect(inherit({}, target, 30_000, undefined, 1_000).timeoutMs).toBe(30_000);
    expect(() => inherit({ deadline: 999 }, target, 30_000, undefined, 1_000)).toThrow(expect.objectContaining({ code: "timeout", message: expect.stringContaining("nothing sent") }));

    const theirs = new AbortController();
    const mine = new AbortController();
    const { signal } = inherit({ signal: theirs.signal }, target, 30_000, mine.signal, 0);
    expect(signal).not.toBe(mine.signal);
    theirs.abort(new Error("gone"));
    expect(signal!.aborted).toBe(true);
    expect(() => inherit({ signal: theirs.signal }, target, 30_000, undefined, 0)).toThrow(expect.objectContaining({ code: "canceled" }));
  });
});

/** A server for queue `queue` whose `add` calls `next` with `options(ctx)`, recording what it saw. */
async function relay(queue: string, next: CalculatorClient, options: (ctx: HandlerContext<any>) => object, serverOptions = {}) {
  const seen: { deadline: number | undefined; outcome?: unknown }[] = [];
  const handlers: CalculatorHandlers = {
    ...calculatorHandlers,
    add: async (req, ctx) => {
      const entry: (typeof seen)[number] = { deadline: ctx.deadline };
      seen.push(entry);
      try {
        return await next.add(req, options(ctx));
      } catch (err) {
        entry.outcome = err;
        throw err;
      }
    },
  };
  await serveCalculator(kit.server(serverOptions), handlers, { queue });
  return seen;
}

describe("nested calls", () => {
  it("carry the incoming request's deadline, not their own budget, with parent: ctx", async () => {
    kit = createTestKit();
    const deadlines: (number | undefined)[] = [];
    await serveCalculator(kit.server(), { ...calculatorHandlers, add: (req, ctx) => (deadlines.push(ctx.deadline), { sum: req.a + req.b }) }, { queue: "c" });
    const toC = new CalculatorClient(await kit.client({ queues: { Calculator: "c" }, timeoutMs: 60_000 }));
    const seen = await relay("b", toC, (ctx) => ({ parent: ctx, timeoutMs: 60_000 }));
    const calc = new CalculatorClient(await kit.client({ queues: { Calculator: "b" } }));

    await expect(calc.add({ a: 1, b: 2 }, { timeoutMs: 2_000 })).resolves.toEqual({ sum: 3 });
    expect(deadlines).toEqual([seen[0]!.deadline]);
  });

  it("inherit without parent inside a handler of a server with asyncContext: true; parent: null opts out", async () => {
    kit = createTestKit();
    const deadlines: (number | undefined)[] = [];
    await serveCalculator(kit.server(), { ...calculatorHandlers, add: (req, ctx) => (deadlines.push(ctx.deadline), { sum: req.a + req.b }) }, { queue: "c" });
    const toC = new CalculatorClient(await kit.client({ queues: { Calculator: "c" }, timeoutMs: 60_000 }));
    const seenAmbient = await relay("b", toC, () => ({ timeoutMs: 60_000 }), { asyncContext: true });
    const seenOptOut = await relay("b2", toC, () => ({ parent: null, timeoutMs: 60_000 }), { asyncContext: true });
    const seenPlain = await relay("b3", toC, () => ({ timeoutMs: 60_000 }));

    const viaAmbient = new CalculatorClient(await kit.client({ queues: { Calculator: "b" } }));
    await viaAmbient.add({ a: 1, b: 2 }, { timeoutMs: 2_000 });
    expect(deadlines[0]).toBe(seenAmbient[0]!.deadline);

    const viaOptOut = new CalculatorClient(await kit.client({ queues: { Calculator: "b2" } }));
    await viaOptOut.add({ a: 1, b: 2 }, { timeoutMs: 2_000 });
    expect(deadlines[1]).toBeGreaterThan(seenOptOut[0]!.deadline! + 30_000); // its own 60 s budget

    const viaPlain = new CalculatorClient(await kit.client({ queues: { Calculator: "b3" } }));
    await viaPlain.add({ a: 1, b: 2 }, { timeoutMs: 2_000 });
    expect(deadlines[2]).toBeGreaterThan(seenPlain[0]!.deadline! + 30_000); // no asyncContext: nothing ambient
  });

  it("are not sent once the parent's deadline has passed, and fail with timeout", async () => {
    kit = createTestKit();
    const toC = new CalculatorClient(await kit.client({ queues: { Calculator: "c" } }));
    const publishedBefore = () => kit.broker.published.filter((p) => p.routingKey === "c").length;
    const outcome = toC.add({ a: 1, b: 2 }, { parent: { deadline: Date.now() - 1 } });
    await expect(outcome).rejects.toMatchObject({ code: "timeout", message: expect.stringContaining("deadline of the request being handled passed") });
    expect(publishedBefore()).toBe(0);
  });

  it("are canceled when the parent's signal fires", async () => {
    kit = createTestKit();
    await serveCalculator(kit.server(), { ...calculatorHandlers, add: () => released.then(() => ({ sum: 0 })) }, { queue: "c" });
    const toC = new CalculatorClient(await kit.client({ queues: { Calculator: "c" } }));
    const parent = new AbortController();
    const call = toC.add({ a: 1, b: 2 }, { parent: { signal: parent.signal } });
    parent.abort(new Error("the incoming call was abandoned"));
    await expect(call).rejects.toMatchObject({ code: "canceled", message: expect.stringContaining("the incoming call was abandoned") });
  });

  it("report timeout when the parent's signal fired for its deadline", async () => {
    kit = createTestKit();
    await serveCalculator(kit.server(), { ...calculatorHandlers, add: () => released.then(() => ({ sum: 0 })) }, { queue: "c" });
    const toC = new CalculatorClient(await kit.client({ queues: { Calculator: "c" } }));
    await expect(toC.add({ a: 1, b: 2 }, { signal: AbortSignal.timeout(50) })).rejects.toMatchObject({ code: "timeout" });
  });
});

describe("nested publishes", () => {
  it("are refused, nothing published, once the parent is done with", async () => {
    kit = createTestKit();
    const orders = new OrdersPublisher(kit.events());
    const event = { orderId: "o-1", region: "eu", items: [{ sku: "a", quantity: 1 }] } as never;
    const count = () => kit.broker.published.length;
    const before = count();
    await expect(orders.publishOrderPlaced(event, { parent: { deadline: Date.now() - 1 } })).rejects.toMatchObject({ code: "timeout" });
    const done = new AbortController();
    done.abort();
    await expect(orders.publishOrderPlaced(event, { parent: { signal: done.signal } })).rejects.toMatchObject({ code: "canceled" });
    expect(count()).toBe(before);
  });
});

describe("ctx.requesterAlive()", () => {
  it("is true while the caller's reply channel is open and false once it is gone", async () => {
    kit = createTestKit();
    const answers: boolean[] = [];
    await serveCalculator(kit.server(), {
      ...calculatorHandlers,
      add: async (req, ctx) => {
        answers.push(await ctx.requesterAlive());
        await released;
        answers.push(await ctx.requesterAlive());
        return { sum: req.a + req.b };
      },
    });
    const client = await kit.client();
    const call = new CalculatorClient(client).add({ a: 1, b: 2 }).catch((err: unknown) => err);
    while (answers.length === 0) await new Promise((r) => setTimeout(r, 5));
    await client.close();
    await call;
    release();
    while (answers.length < 2) await new Promise((r) => setTimeout(r, 5));
    expect(answers).toEqual([true, false]);
  });
});
