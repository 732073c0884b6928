/**
 * Idempotency keys and `dedupe()` without a broker: the store contract and the
 * interceptor on the in-memory store, then through a real client and server on
 * the in-memory broker (the key on the wire, the conflict a caller receives).
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Calculator, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { RpcError } from "../../src/core/errors.js";
import { DIRECT_REPLY_TO } from "../../src/core/protocol.js";
import { memoryDedupeStore } from "../../src/rpc/dedupe-store.js";
import type { HandlerContext } from "../../src/rpc/handler.js";
import { canonicalJson, dedupe } from "../../src/rpc/idempotency.js";
import { createTestKit, type TestKit } from "../../src/testing/index.js";
import { dedupeContract, gate, storeContract, until } from "../helpers/dedupe-contract.js";

const key = () => `k-${randomBytes(6).toString("hex")}`;
storeContract("memoryDedupeStore", async () => memoryDedupeStore(), key);
dedupeContract("memoryDedupeStore", async () => memoryDedupeStore(), key);

describe("memoryDedupeStore", () => {
  it("stays bounded: past maxEntries the oldest key is dropped (and would run again)", async () => {
    const store = memoryDedupeStore({ maxEntries: 2 });
    for (const k of ["a", "b", "c"]) {
      const { token } = (await store.claim(k, "fp", 10_000)) as { token: string };
      await store.finish(k, token, `"${k}"`, 10_000);
    }
    await expect(store.claim("a", "fp", 10_000)).resolves.toMatchObject({ state: "claimed" });
    await expect(store.claim("c", "fp", 10_000)).resolves.toMatchObject({ state: "done", outcome: '"c"' });
  });

  it("refuses a maxEntries that is not a positive integer", () => {
    expect(() => memoryDedupeStore({ maxEntries: 0 })).toThrow("warren: memoryDedupeStore: maxEntries must be a positive integer, got 0");
  });
});

describe("dedupe() options", () => {
  it("refuses a missing store and out-of-range times with a clear TypeError", () => {
    expect(() => dedupe({} as never)).toThrow("warren: dedupe: `store` must be a DedupeStore, e.g. memoryDedupeStore()");
    expect(() => dedupe({ store: memoryDedupeStore(), leaseMs: 0 })).toThrow("warren: dedupe: leaseMs must be a positive number of milliseconds, got 0");
    expect(() => dedupe({ store: memoryDedupeStore(), ttlMs: Number.NaN })).toThrow(/ttlMs must be a positive number/);
  });

  it("guards only the methods it names", async () => {
    let runs = 0;
    const handle = dedupe({ store: memoryDedupeStore(), methods: ["Calculator.divide"] })(() => ({ sum: ++runs }));
    const ctx = { service: "Calculator", method: "add", idempotencyKey: "same" } as HandlerContext<any>;
    await handle({ a: 1, b: 2 }, ctx);
    await handle({ a: 1, b: 2 }, ctx);
    expect(runs).toBe(2);
  });

  it("fingerprints requests by canonical JSON: keys sorted at every depth, arrays in order", () => {
    expect(canonicalJson({ b: [{ y: 1, x: 2 }, 3], a: "é", c: undefined })).toBe('{"a":"é","b":[{"x":2,"y":1},3]}');
  });
});

describe("idempotency keys on the wire (in-memory broker)", () => {
  let kit: TestKit;
  afterEach(async () => kit?.close());

  const requests = () => kit.broker.published.filter((p) => p.routingKey === Calculator.queue);

  it("a call sends its idempotency key as message_id, the first correlation id by default, the caller's when given; handlers read it as ctx.idempotencyKey", async () => {
    kit = createTestKit();
    const seen: string[] = [];
    await serveCalculator(kit.server(), handlersWith((ctx) => seen.push(ctx.idempotencyKey)));
    const client = await kit.client();
    await client.call(Calculator.methods.add, { a: 1, b: 2 });
    await client.call(Calculator.methods.add, { a: 1, b: 2 }, { idempotencyKey: "order-42" });
    const [first, second] = requests();
    expect(first!.properties.messageId).toBe(first!.properties.correlationId);
    expect(second!.properties.messageId).toBe("order-42");
    expect(seen).toEqual([first!.properties.correlationId, "order-42"]);
  });

  it("client interceptors see the key a call is sent with", async () => {
    kit = createTestKit();
    await serveCalculator(kit.server(), handlersWith(() => {}));
    const keys: (string | undefined)[] = [];
    const client = await kit.client({ interceptors: [(next) => async (call) => {
      const result = await next(call);
      keys.push(call.idempotencyKey);
      return result;
    }] });
    await client.call(Calculator.methods.add, { a: 1, b: 2 }, { idempotencyKey: "mine" });
    await client.call(Calculator.methods.add, { a: 1, b: 2 });
    expect(keys).toEqual(["mine", requests()[1]!.properties.messageId]);
    expect(keys[1]).toMatch(/^[0-9a-f-]{36}\.\w+$/);
  });

  it("a request without message_id (another client) has its correlation id as ctx.idempotencyKey", async () => {
    kit = createTestKit();
    const seen: string[] = [];
    await serveCalculator(kit.server(), handlersWith((ctx) => seen.push(ctx.idempotencyKey)));
    const channel = await kit.connection().open();
    const replies: string[] = [];
    await channel.consume(DIRECT_REPLY_TO, (msg) => msg && replies.push(String(msg.properties.correlationId)), { noAck: true });
    const props = { contentType: "application/json", correlationId: "peer-1", replyTo: DIRECT_REPLY_TO, type: "add" };
    channel.publish("", Calculator.queue, Buffer.from('{"a":1,"b":2}'), props, true);
    channel.publish("", Calculator.queue, Buffer.from('{"a":1,"b":2}'), { ...props, correlationId: "peer-2", messageId: "" }, true);
    await until(() => replies.length === 2, "both replies");
    expect(seen).toEqual(["peer-1", "peer-2"]);
  });

  it("a retry after connection_lost gets a new correlation id and keeps the message_id", async () => {
    kit = createTestKit();
    const hold = gate();
    let runs = 0;
    await serveCalculator(kit.server(), handlersWith(async () => {
      if (++runs === 1) await hold.promise;
    }));
    const client = await kit.client();
    const call = client.call(Calculator.methods.add, { a: 1, b: 2 }, { timeoutMs: 5000 }); // add is idempotent: retried
    await until(() => runs === 1, "the first attempt to reach the handler");
    kit.disconnect(client);
    await expect(call).resolves.toEqual({ sum: 3 });
    hold.open();
    const [first, retry] = requests();
    expect(retry).toBeDefined();
    expect(retry!.properties.correlationId).not.toBe(first!.properties.correlationId);
    expect(retry!.properties.messageId).toBe(first!.properties.messageId);
    expect(first!.properties.messageId).toBe(first!.properties.correlationId);
  });

  it("refuses an empty, too long or non-string idempotencyKey with invalid_request, sending nothing", async () => {
    kit = createTestKit();
    await serveCalculator(kit.server(), handlersWith(() => {}));
    const client = await kit.client();
    const message = "Calculator.add: idempotencyKey must be a non-empty string of at most 255 bytes";
    for (const idempotencyKey of ["", "é".repeat(128), 42 as unknown as string]) {
      await expect(client.call(Calculator.methods.add, { a: 1, b: 2 }, { idempotencyKey })).rejects.toMatchObject({ code: "invalid_request", message });
    }
    await expect(client.call(Calculator.methods.add, { a: 1, b: 2 }, { idempotencyKey: "é".repeat(127) })).resolves.toEqual({ sum: 3 });
    expect(requests()).toHaveLength(1);
  });

  it("with dedupe(), a request the broker delivers twice runs once and both deliveries get its result", async () => {
    kit = createTestKit();
    let runs = 0;
    await serveCalculator(kit.server({ interceptors: [dedupe({ store: memoryDedupeStore(), pollMs: 5 })] }), handlersWith(() => void runs++));
    const client = await kit.client();
    kit.faults.on("Calculator.add").once().duplicate();
    await expect(client.call(Calculator.methods.add, { a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
    await kit.idle();
    expect(runs).toBe(1);
    const replies = kit.broker.published.filter((p) => p.properties.type === "result");
    expect(replies).toHaveLength(2);
  });

  it("with dedupe(), a caller reusing a key for another request gets a typed idempotency_conflict; a replayed declared error stays typed", async () => {
    kit = createTestKit();
    await serveCalculator(kit.server({ interceptors: [dedupe({ store: memoryDedupeStore() })] }), handlersWith(() => {}));
    const client = await kit.client();
    await client.call(Calculator.methods.add, { a: 1, b: 2 }, { idempotencyKey: "k1" });
    const err = await client.call(Calculator.methods.add, { a: 1, b: 5 }, { idempotencyKey: "k1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ code: "idempotency_conflict", service: "Calculator", method: "add", message: 'Calculator.add: idempotency key "k1" was already used for a different request' });
    for (let i = 0; i < 2; i++) {
      await expect(client.call(Calculator.methods.divide, { dividend: 4, divisor: 0 }, { idempotencyKey: "k2" })).rejects.toMatchObject({ code: "division_by_zero", data: { dividend: 4 } });
    }
  });
});

/** Calculator handlers whose `add` first calls `spy` with its context. */
function handlersWith(spy: (ctx: HandlerContext<any>) => unknown): CalculatorHandlers {
  return {
    add: async ({ a, b }, ctx) => {
      await spy(ctx);
      return { sum: a + b };
    },
    divide: ({ dividend, divisor }, ctx) => {
      if (divisor === 0) throw ctx.error("division_by_zero", { dividend });
      return { quotient: dividend / divisor };
    },
    summarize: () => ({ statistic: "mean", value: 0, count: 0, label: null }),
    centroid: () => ({ x: 0, y: 0 }),
  };
}
