/**
 * A → B → C on the real broker, where A's caller gives up at A's deadline:
 * B's call to C carries A's deadline, so C drops the request unrun when it
 * waited past it, cancels it through `ctx.signal` when it is running, and B
 * does not send it at all once the deadline has passed. Nobody waits for
 * their own, longer budget.
 */
import { describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import type { Connection, HandlerContext } from "../../src/index.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";
import { deleteAfter, onTeardown, openConnection, sleep, uniqueName, until } from "../helpers/broker.js";

/** What one server of the chain saw of one request. */
interface Seen {
  a: number;
  deadline: number | undefined;
  outcome?: string;
  settledAt?: number;
}

/** Serves Calculator on `queue` with `add` from `make`, recording every request it runs in `seen`. */
async function hop(conn: Connection, queue: string, seen: Seen[], add: (req: { a: number; b: number }, ctx: HandlerContext<any>, entry: Seen) => Promise<{ sum: number }>, options: { prefetch?: number; asyncContext?: boolean } = {}) {
  const server = conn.server(options);
  onTeardown(() => server.close());
  const handlers: CalculatorHandlers = {
    ...calculatorHandlers,
    add: async (req, ctx) => {
      const entry: Seen = { a: req.a, deadline: ctx.deadline };
      seen.push(entry);
      try {
        const result = await add(req, ctx, entry);
        entry.outcome = "ok";
        return result;
      } catch (err) {
        entry.outcome = (err as { code?: string }).code ?? String(err);
        throw err;
      } finally {
        entry.settledAt = Date.now();
      }
    },
  };
  await serveCalculator(server, handlers, { queue });
}

/** A → B → C with fresh queues; B's handler runs `b` (given the client to C); C's handler runs `c`. */
async function chain(b: (toC: CalculatorClient, req: { a: number; b: number }, ctx: HandlerContext<any>) => Promise<{ sum: number }>, c: (ctx: HandlerContext<any>, entry: Seen) => Promise<{ sum: number }>, bOptions: { asyncContext?: boolean } = {}) {
  const conn = await openConnection();
  const [qa, qb, qc] = ["a", "b", "c"].map((n) => deleteAfter(uniqueName(`chain-${n}`)));
  const seen = { a: [] as Seen[], b: [] as Seen[], c: [] as Seen[] };
  // Every hop's own budget is a minute: only the inherited deadline can end them sooner.
  const toB = new CalculatorClient(await conn.client({ queues: { Calculator: qb! } }));
  const toC = new CalculatorClient(await conn.client({ queues: { Calculator: qc! } }));
  await hop(conn, qc!, seen.c, (_req, ctx, entry) => c(ctx, entry), { prefetch: 1 });
  await hop(conn, qb!, seen.b, (req, ctx) => b(toC, req, ctx), bOptions);
  await hop(conn, qa!, seen.a, (req, ctx) => toB.add(req, { parent: ctx, timeoutMs: 60_000 }));
  const caller = new CalculatorClient(await conn.client({ queues: { Calculator: qa! } }));
  return { conn, seen, caller, qc: qc! };
}

/** Resolves when `signal` fires, with its reason's code. */
const aborted = (signal: AbortSignal) => new Promise<string>((resolve) => signal.addEventListener("abort", () => resolve((signal.reason as { code?: string }).code ?? "aborted"), { once: true }));

describe("nested calls on the broker: A → B → C", () => {
  it("C, running when A's caller gives up, is canceled through ctx.signal, and every hop settles with timeout by A's deadline", async () => {
    const { seen, caller } = await chain(
      (toC, req, ctx) => toC.add(req, { parent: ctx, timeoutMs: 60_000 }),
      async (ctx, entry) => {
        entry.outcome = await aborted(ctx.signal);
        throw new Error(`C gave up: ${entry.outcome}`);
      },
    );
    await expect(caller.add({ a: 1, b: 2 }, { timeoutMs: 1_500 })).rejects.toMatchObject({ code: "timeout" });
    await until(() => seen.c[0]?.settledAt !== undefined && seen.b[0]?.settledAt !== undefined && seen.a[0]?.settledAt !== undefined, "every hop settled");
    const deadline = seen.a[0]!.deadline!;
    // One deadline all the way down: the caller's.
    expect(seen.b[0]!.deadline).toBe(deadline);
    expect(seen.c[0]!.deadline).toBe(deadline);
    expect(seen.c[0]!.outcome).toMatch(/^timeout|C gave up: timeout/);
    expect(seen.b[0]!.outcome).toBe("timeout");
    expect(seen.a[0]!.outcome).toBe("timeout");
    // Each hop's own budget was a minute; they all ended at the caller's deadline instead (generous slack for a loaded machine).
    for (const hopSeen of [seen.a[0]!, seen.b[0]!]) expect(hopSeen.settledAt! - deadline).toBeLessThan(10_000);
  });

  it("C, busy when the request reaches its queue, drops it unrun once A's deadline has passed", async () => {
    let releaseBlocker!: () => void;
    const blocker = new Promise<void>((r) => (releaseBlocker = r));
    const { conn, seen, caller, qc } = await chain(
      (toC, req, ctx) => toC.add(req, { parent: ctx, timeoutMs: 60_000 }),
      async (_ctx, entry) => {
        if (entry.a === -1) await blocker; // occupies C's only prefetch slot
        return { sum: 0 };
      },
    );
    const direct = new CalculatorClient(await conn.client({ queues: { Calculator: qc } }));
    const blocking = direct.add({ a: -1, b: 0 }, { timeoutMs: 60_000 });
    await until(() => seen.c.length === 1, "the blocker runs on C");

    await expect(caller.add({ a: 1, b: 2 }, { timeoutMs: 1_000 })).rejects.toMatchObject({ code: "timeout" });
    await until(() => seen.b[0]?.settledAt !== undefined, "B settled");
    expect(seen.b[0]!.outcome).toBe("timeout");
    // The request for C is now past its deadline: once C is free, it must not run it.
    await sleep(200);
    releaseBlocker();
    await expect(blocking).resolves.toEqual({ sum: 0 });
    await expect(direct.add({ a: 2, b: 0 })).resolves.toEqual({ sum: 0 }); // C goes on serving, behind where the expired request was
    expect(seen.c.map((s) => s.a)).toEqual([-1, 2]);
  });

  it("B does not call C at all once A's deadline has passed; with asyncContext it inherits without being told", async () => {
    const { seen, caller } = await chain(
      async (toC, req) => {
        await sleep(1_500); // past the caller's 800 ms
        return toC.add(req, { timeoutMs: 60_000 }); // no parent: the server's asyncContext supplies it
      },
      async () => ({ sum: 0 }),
      { asyncContext: true },
    );
    await expect(caller.add({ a: 1, b: 2 }, { timeoutMs: 800 })).rejects.toMatchObject({ code: "timeout" });
    await until(() => seen.b[0]?.settledAt !== undefined, "B settled");
    expect(seen.b[0]!.outcome).toBe("timeout");
    await sleep(200);
    expect(seen.c).toEqual([]);
  });
});
