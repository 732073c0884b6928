/**
 * What every DedupeStore must do, and what `dedupe()` does on top of one:
 * declared as vitest suites, run on the in-memory store (test/unit/dedupe.test.ts)
 * and on Redis (test/integration/redis-dedupe-store.test.ts).
 */
import { describe, expect, it, vi } from "vitest";
import { RpcError } from "../../src/core/errors.js";
import type { DedupeStore } from "../../src/rpc/dedupe-store.js";
import type { HandlerContext } from "../../src/rpc/handler.js";
import { dedupe, fingerprint, type DedupeOptions } from "../../src/rpc/idempotency.js";

/** A promise with its resolve, for handlers that wait until the test lets them go on. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** Resolves once `check` holds (polled every 5 ms); fails naming `what` after 10 s. */
export async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let correlation = 0;
/** The handler context of one delivery of a request with `key` (as a server would make it; a deadline `deadlineInMs` from now if given). */
export function contextFor(key: string, options: { method?: string; deadlineInMs?: number } = {}): HandlerContext<any> {
  const deadline = options.deadlineInMs === undefined ? undefined : Date.now() + options.deadlineInMs;
  let signal: AbortSignal | undefined;
  return {
    service: "Calculator",
    method: options.method ?? "add",
    correlationId: `corr.${++correlation}`,
    idempotencyKey: key,
    replyTo: "amq.rabbitmq.reply-to",
    headers: {},
    deadline,
    get signal() {
      signal ??= options.deadlineInMs === undefined ? new AbortController().signal : AbortSignal.timeout(options.deadlineInMs);
      return signal;
    },
    redelivered: false,
    error: (code: string, data?: unknown) => new RpcError(code, code, { data }),
  } as unknown as HandlerContext<any>;
}

/** The store contract (docs: src/rpc/dedupe-store.ts). `key()` gives a key no other test uses. */
export function storeContract(name: string, makeStore: () => Promise<DedupeStore>, key: () => string): void {
  describe(`${name}: the DedupeStore contract`, () => {
    it("claims a free key, says `running` while it is held, and `done` with the outcome once finished", async () => {
      const store = await makeStore();
      const k = key();
      const first = await store.claim(k, "fp1", 10_000);
      expect(first.state).toBe("claimed");
      await expect(store.claim(k, "fp2", 10_000)).resolves.toEqual({ state: "running", fingerprint: "fp1" });
      const token = (first as { token: string }).token;
      await expect(store.renew(k, token, 10_000)).resolves.toBe(true);
      await expect(store.finish(k, token, '{"result":1}', 10_000)).resolves.toBe(true);
      await expect(store.claim(k, "fp1", 10_000)).resolves.toEqual({ state: "done", fingerprint: "fp1", outcome: '{"result":1}' });
      // The claim is gone with its outcome stored: its token acts no more.
      await expect(store.renew(k, token, 10_000)).resolves.toBe(false);
      await expect(store.finish(k, token, "other", 10_000)).resolves.toBe(false);
      await store.release(k, token);
      await expect(store.claim(k, "fp1", 10_000)).resolves.toMatchObject({ state: "done", outcome: '{"result":1}' });
    });

    it("acts on a claim only with its token; release frees the key", async () => {
      const store = await makeStore();
      const k = key();
      const { token } = (await store.claim(k, "fp", 10_000)) as { token: string };
      await expect(store.renew(k, "not-the-token", 10_000)).resolves.toBe(false);
      await expect(store.finish(k, "not-the-token", "x", 10_000)).resolves.toBe(false);
      await store.release(k, "not-the-token");
      await expect(store.claim(k, "fp", 10_000)).resolves.toEqual({ state: "running", fingerprint: "fp" });
      await store.release(k, token);
      await expect(store.claim(k, "fp", 10_000)).resolves.toMatchObject({ state: "claimed" });
    });

    it("gives a free key to exactly one of many concurrent claims", async () => {
      const store = await makeStore();
      const k = key();
      const entries = await Promise.all(Array.from({ length: 20 }, () => store.claim(k, "fp", 10_000)));
      expect(entries.filter((e) => e.state === "claimed")).toHaveLength(1);
      expect(entries.filter((e) => e.state === "running")).toHaveLength(19);
    });

    it("frees a claim whose lease ran out; the old token then acts no more", async () => {
      const store = await makeStore();
      const k = key();
      const { token } = (await store.claim(k, "fp", 30)) as { token: string };
      let next: Awaited<ReturnType<DedupeStore["claim"]>> | undefined;
      await until(async () => (next = await store.claim(k, "fp", 10_000)).state === "claimed", "the lease to run out");
      await expect(store.finish(k, token, "late", 10_000)).resolves.toBe(false);
      await expect(store.renew(k, token, 10_000)).resolves.toBe(false);
      await store.release(k, token);
      await expect(store.claim(k, "fp", 10_000)).resolves.toEqual({ state: "running", fingerprint: "fp" });
      expect(next?.state).toBe("claimed");
    });

    it("drops an outcome after its ttl", async () => {
      const store = await makeStore();
      const k = key();
      const { token } = (await store.claim(k, "fp", 10_000)) as { token: string };
      await store.finish(k, token, "{}", 30);
      await until(async () => (await store.claim(k, "fp", 10_000)).state === "claimed", "the outcome to expire");
    });
  });
}

/** What `dedupe()` does on `makeStore()`'s store. */
export function dedupeContract(name: string, makeStore: () => Promise<DedupeStore>, key: () => string): void {
  describe(`${name}: dedupe()`, () => {
    const setup = async (options: Partial<DedupeOptions> = {}, handler?: (request: any, ctx: HandlerContext<any>) => unknown) => {
      const store = await makeStore();
      const runs: unknown[] = [];
      const next = handler ?? ((request: { a: number; b: number }) => (runs.push(request), { sum: request.a + request.b + runs.length * 1000 }));
      const handle = dedupe({ store, pollMs: 5, logger: { warn() {}, error() {} }, ...options })((request, ctx) => next(request, ctx));
      return { store, runs, handle };
    };

    it("runs a key once and replays its result to every duplicate", async () => {
      const { runs, handle } = await setup();
      const k = key();
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).resolves.toEqual({ sum: 1003 });
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).resolves.toEqual({ sum: 1003 });
      await expect(handle({ b: 2, a: 1 }, contextFor(k))).resolves.toEqual({ sum: 1003 }); // the same request in another key order
      expect(runs).toHaveLength(1);
      await expect(handle({ a: 1, b: 2 }, contextFor(key()))).resolves.toEqual({ sum: 2003 }); // another key runs
    });

    it("replays a declared error with its code, message and data", async () => {
      let runs = 0;
      const { handle } = await setup({}, () => {
        runs++;
        throw new RpcError("division_by_zero", "the divisor was zero", { data: { dividend: 7 } });
      });
      const k = key();
      for (let i = 0; i < 2; i++) {
        await expect(handle({ dividend: 7, divisor: 0 }, contextFor(k, { method: "divide" }))).rejects.toMatchObject({
          code: "division_by_zero",
          message: "the divisor was zero",
          data: { dividend: 7 },
        });
      }
      expect(runs).toBe(1);
    });

    it("stores no transient failure: the key is freed, so a retry runs again", async () => {
      const failures: unknown[] = [new Error("database down"), new RpcError("permission_denied", "not now"), new RpcError("timeout", "deadline")];
      let runs = 0;
      const { handle } = await setup({}, () => {
        runs++;
        if (failures.length > 0) throw failures.shift();
        return { sum: 3 };
      });
      const k = key();
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).rejects.toThrow("database down");
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).rejects.toMatchObject({ code: "permission_denied" });
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).rejects.toMatchObject({ code: "timeout" });
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).resolves.toEqual({ sum: 3 });
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).resolves.toEqual({ sum: 3 });
      expect(runs).toBe(4);
    });

    it("refuses a key that comes back with a different request with idempotency_conflict, running nothing", async () => {
      const hold = gate();
      let runs = 0;
      const { handle } = await setup({}, async (request: { a: number; b: number }) => {
        runs++;
        if (request.a === 100) await hold.promise;
        return { sum: request.a + request.b };
      });
      const done = key();
      await handle({ a: 1, b: 2 }, contextFor(done));
      const conflict = { code: "idempotency_conflict", message: expect.stringContaining(JSON.stringify(done)) };
      await expect(handle({ a: 1, b: 3 }, contextFor(done))).rejects.toMatchObject(conflict);
      await expect(handle({ a: 1, b: 2 }, contextFor(done, { method: "subtract" }))).rejects.toMatchObject({ code: "idempotency_conflict" });
      await expect(handle({ a: 1, b: 2 }, contextFor(done))).resolves.toEqual({ sum: 3 }); // the stored outcome is untouched
      // While the first run of a key is still going: refused at once, not after it.
      const running = key();
      const first = handle({ a: 100, b: 0 }, contextFor(running));
      await until(() => runs === 2, "the first run to start");
      await expect(handle({ a: 5, b: 0 }, contextFor(running))).rejects.toMatchObject({ code: "idempotency_conflict" });
      hold.open();
      await expect(first).resolves.toEqual({ sum: 100 });
      expect(runs).toBe(2);
    });

    it("makes a duplicate that arrives while the first run goes on wait, then replays its outcome", async () => {
      const hold = gate();
      let runs = 0;
      const { store, handle } = await setup({}, async () => {
        runs++;
        await hold.promise;
        return { sum: runs };
      });
      const claims = vi.spyOn(store, "claim");
      const k = key();
      const first = handle({ a: 1, b: 2 }, contextFor(k));
      await until(() => runs === 1, "the first run to start");
      const duplicates = [handle({ a: 1, b: 2 }, contextFor(k)), handle({ a: 1, b: 2 }, contextFor(k))];
      let settled = false;
      void Promise.all(duplicates).then(() => (settled = true));
      await until(() => claims.mock.calls.length >= 8, "the duplicates to look a few times");
      expect(settled).toBe(false);
      hold.open();
      await expect(Promise.all([first, ...duplicates])).resolves.toEqual([{ sum: 1 }, { sum: 1 }, { sum: 1 }]);
      expect(runs).toBe(1);
    });

    it("lets a duplicate run once the claim of a process that died has expired (leaseMs)", async () => {
      const { store, runs, handle } = await setup();
      const k = key();
      // A process claimed the key and was killed mid-handler: it never renews, finishes or releases.
      const dead = await store.claim(k, fingerprint("Calculator", "add", { a: 1, b: 2 }), 50);
      expect(dead.state).toBe("claimed");
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).resolves.toEqual({ sum: 1003 });
      await expect(handle({ a: 1, b: 2 }, contextFor(k))).resolves.toEqual({ sum: 1003 });
      expect(runs).toHaveLength(1);
      await expect(store.finish(k, (dead as { token: string }).token, "{}", 1000)).resolves.toBe(false);
    });

    it("renews the claim while the handler runs, so a duplicate waits past leaseMs instead of running too", async () => {
      const hold = gate();
      let runs = 0;
      const store = await makeStore();
      const renew = vi.spyOn(store, "renew");
      // Renewed every 200 ms: a renewal would have to be 400 ms late for the claim to lapse, even on a loaded machine.
      const handle = dedupe({ store, leaseMs: 600, pollMs: 5, logger: { warn() {}, error() {} } })(async () => {
        runs++;
        await hold.promise;
        return { sum: runs };
      });
      const k = key();
      const first = handle({ a: 1, b: 2 }, contextFor(k));
      await until(() => runs === 1, "the first run to start");
      const duplicate = handle({ a: 1, b: 2 }, contextFor(k));
      // Four renewals, one every leaseMs / 3: the first claim has outlived its lease.
      await until(() => renew.mock.calls.length >= 4, "four renewals");
      expect(runs).toBe(1);
      hold.open();
      await expect(Promise.all([first, duplicate])).resolves.toEqual([{ sum: 1 }, { sum: 1 }]);
      expect(runs).toBe(1);
    });

    it("gives up waiting at the duplicate's deadline, running nothing", async () => {
      const { store, runs, handle } = await setup({ leaseMs: 60_000 });
      const k = key();
      await store.claim(k, fingerprint("Calculator", "add", { a: 1, b: 2 }), 60_000);
      await expect(handle({ a: 1, b: 2 }, contextFor(k, { deadlineInMs: 30 }))).rejects.toThrow(/deadline passed while waiting for the first run of idempotency key/);
      expect(runs).toHaveLength(0);
    });
  });
}
