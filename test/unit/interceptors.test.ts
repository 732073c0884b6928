/** src/rpc/interceptors.ts through a real RpcClient and RpcServer over the in-memory broker. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RpcError, ValidationError } from "../../src/core/errors.js";
import { RpcClient } from "../../src/rpc/client.js";
import type { ClientInterceptor, ServerInterceptor } from "../../src/rpc/interceptors.js";
import { RpcServer } from "../../src/rpc/server.js";
import { Calculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";

const add = Calculator.methods.add;
let broker: FakeBroker;
let seen: { request: unknown; headers: Readonly<Record<string, unknown>> }[];
const handlers: CalculatorHandlers = {
  add: (req, ctx) => (seen.push({ request: req, headers: ctx.headers }), { sum: req.a + req.b }),
  divide: ({ dividend, divisor }, ctx) => {
    if (divisor === 0) throw ctx.error("division_by_zero", { dividend });
    return { quotient: dividend / divisor };
  },
  summarize: () => ({ statistic: "mean", value: 0, count: 0, label: null }),
  centroid: () => ({ x: 0, y: 0 }),
};

async function serve(interceptors: ServerInterceptor[] = []) {
  await new RpcServer(broker.connect(), { interceptors, logger: { warn() {}, error() {} } }).register(Calculator, handlers);
}
const clientWith = (interceptors: ClientInterceptor[]) => new RpcClient(broker.connect(), { interceptors });

beforeEach(() => {
  broker = new FakeBroker();
  seen = [];
});
afterEach(() => vi.useRealTimers());

describe("client interceptors", () => {
  it("run in order around the call, the first outermost, and see its outcome", async () => {
    await serve();
    const log: string[] = [];
    const named = (name: string): ClientInterceptor => (next) => async (call) => {
      log.push(`${name} > ${call.method.service.name}.${call.method.name}`);
      try {
        const result = await next(call);
        log.push(`${name} < ${JSON.stringify(result)}`);
        return result;
      } catch (err) {
        log.push(`${name} ! ${(err as RpcError).code}`);
        throw err;
      }
    };
    const client = clientWith([named("a"), named("b")]);
    await expect(client.call(add, { a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
    await expect(client.call(Calculator.methods.divide, { dividend: 1, divisor: 0 })).rejects.toMatchObject({ code: "division_by_zero" });
    expect(log).toEqual([
      "a > Calculator.add", "b > Calculator.add", 'b < {"sum":3}', 'a < {"sum":3}',
      "a > Calculator.divide", "b > Calculator.divide", "b ! division_by_zero", "a ! division_by_zero",
    ]);
  });

  it("add headers the server's handler sees; x-warren- headers stay the protocol's", async () => {
    await serve();
    const auth: ClientInterceptor = (next) => (call) => {
      call.headers.authorization = "Bearer t0ken";
      call.headers["x-warren-deadline"] = 1;
      return next(call);
    };
    await clientWith([auth]).call(add, { a: 1, b: 1 }, { headers: { tenant: "t1" } });
    expect(seen[0]!.headers).toMatchObject({ authorization: "Bearer t0ken", tenant: "t1" });
    expect(seen[0]!.headers["x-warren-deadline"]).toBeGreaterThan(Date.now());
  });

  it("may answer without calling next: nothing is published", async () => {
    const cache: ClientInterceptor = () => async () => ({ sum: 42 });
    await expect(clientWith([cache]).call(add, { a: 1, b: 1 })).resolves.toEqual({ sum: 42 });
    expect(broker.published).toEqual([]);
  });

  it("an interceptor that throws an RpcError fails the call with it; anything else becomes internal with the error as cause", async () => {
    const refuse: ClientInterceptor = () => () => Promise.reject(new RpcError("canceled", "not now"));
    await expect(clientWith([refuse]).call(add, { a: 1, b: 1 })).rejects.toMatchObject({ code: "canceled", message: "not now" });
    const boom = new Error("token store down");
    const broken: ClientInterceptor = () => () => {
      throw boom;
    };
    const err = await clientWith([broken]).call(add, { a: 1, b: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ code: "internal", message: expect.stringContaining("a client interceptor failed: token store down"), cause: boom });
  });

  it("the request is still validated after the interceptors, and the budget runs from the call, interceptors included", async () => {
    await serve();
    const client = clientWith([(next) => (call) => next({ ...call, request: { a: "one" } })]);
    await expect(client.call(add, { a: 1, b: 2 })).rejects.toBeInstanceOf(ValidationError);
    vi.useFakeTimers();
    const slow: ClientInterceptor = (next) => async (call) => {
      await new Promise((resolve) => setTimeout(resolve, 80));
      return next(call);
    };
    broker.swallow("rpc.Calculator");
    const call = clientWith([slow]).call(add, { a: 1, b: 2 }, { timeoutMs: 100 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(99);
    expect(broker.published).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(await call).toMatchObject({ code: "timeout" });
  });
});

describe("client interceptors and the call's deadline", () => {
  it("a stuck interceptor cannot keep the caller past the deadline, and an abort while it runs cancels at once", async () => {
    vi.useFakeTimers();
    const stuck: ClientInterceptor = () => () => new Promise(() => {});
    const call = clientWith([stuck]).call(add, { a: 1, b: 2 }, { timeoutMs: 100 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    expect(await call).toMatchObject({ code: "timeout" });
    const controller = new AbortController();
    const slow: ClientInterceptor = (next) => async (c) => {
      await new Promise((resolve) => setTimeout(resolve, 150));
      return next(c);
    };
    const aborted = clientWith([slow]).call(add, { a: 1, b: 2 }, { timeoutMs: 1000, signal: controller.signal }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(20);
    controller.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(await aborted).toMatchObject({ code: "canceled" });
    await expect(clientWith([slow]).call(add, { a: 1, b: 2 }, { timeoutMs: 3e9 })).rejects.toMatchObject({ code: "invalid_request", message: expect.stringContaining("at most 2147483647") });
  });
});

describe("server interceptors", () => {
  const requireAuth: ServerInterceptor = (next) => (request, ctx) => {
    if (ctx.headers.authorization !== "Bearer t0ken") throw new RpcError("unauthenticated", "a bearer token is required");
    return next(request, ctx);
  };

  it("refuse with unauthenticated before the handler runs; the caller gets that code and message", async () => {
    await serve([requireAuth]);
    const client = new RpcClient(broker.connect());
    await expect(client.call(add, { a: 1, b: 1 })).rejects.toMatchObject({ code: "unauthenticated", message: expect.stringContaining("a bearer token is required") });
    expect(seen).toEqual([]);
    await expect(client.call(add, { a: 1, b: 1 }, { headers: { authorization: "Bearer t0ken" } })).resolves.toEqual({ sum: 2 });
  });

  it("run in order around the handler with its context, may refuse with a declared error, and turn anything else into internal", async () => {
    const log: string[] = [];
    const named = (name: string): ServerInterceptor => (next) => async (request, ctx) => {
      log.push(`${name} > ${ctx.service}.${ctx.method}`);
      const result = await next(request, ctx);
      log.push(`${name} < ${JSON.stringify(result)}`);
      return result;
    };
    const declared: ServerInterceptor = (next) => (request, ctx) => {
      if (ctx.method === "divide" && (request as { dividend: number }).dividend === 13) throw ctx.error("division_by_zero", { dividend: 13 });
      if (ctx.method === "divide" && (request as { dividend: number }).dividend === 7) throw new Error("secret detail");
      return next(request, ctx);
    };
    await serve([named("a"), named("b"), declared]);
    const client = new RpcClient(broker.connect());
    await client.call(add, { a: 2, b: 3 });
    expect(log).toEqual(["a > Calculator.add", "b > Calculator.add", 'b < {"sum":5}', 'a < {"sum":5}']);
    await expect(client.call(Calculator.methods.divide, { dividend: 13, divisor: 1 })).rejects.toMatchObject({ code: "division_by_zero", data: { dividend: 13 } });
    const internal = await client.call(Calculator.methods.divide, { dividend: 7, divisor: 1 }).catch((e: unknown) => e);
    expect(internal).toMatchObject({ code: "internal" });
    expect((internal as Error).message).not.toContain("secret");
  });
});
