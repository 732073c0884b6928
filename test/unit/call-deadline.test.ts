/** src/rpc/client.ts: a call's budget runs from the moment it is made, whatever its checks cost; generated clients compile validators when they are created. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { Ajv2020 } from "ajv/dist/2020.js";
import { DEADLINE_HEADER } from "../../src/core/protocol.js";
import { defineService, method } from "../../src/core/descriptor.js";
import { RpcClient } from "../../src/rpc/client.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";

afterEach(() => vi.restoreAllMocks());

/** A one-method service, new each time, so its validators are not compiled yet. */
function freshService() {
  return defineService({
    name: "Slow",
    version: "1.0.0",
    queue: "rpc.Slow",
    methods: { run: method<{ n: number }, { n: number }>({ name: "run", request: { type: "object", properties: { n: { type: "number" } } }, response: {}, timeoutMs: 1000 }) },
  });
}

describe("call deadlines", () => {
  it("start when the call is made, even when its checks take 250 ms (the first call of a method compiles them)", async () => {
    const broker = new FakeBroker();
    const client = new RpcClient(broker.connect());
    const Slow = freshService();
    const t0 = 1_700_000_000_000;
    let now = t0;
    // Every reading of the clock after the first is 250 ms later: as if compiling the validators took that long.
    vi.spyOn(Date, "now").mockImplementation(() => {
      const value = now;
      now = t0 + 250;
      return value;
    });
    client.call(Slow.methods.run, { n: 1 }).catch(() => {});
    await broker.settle();
    const sent = broker.published.find((p) => p.routingKey === "rpc.Slow")!;
    expect(sent.properties.headers?.[DEADLINE_HEADER]).toBe(t0 + 1000);
    await client.close();
  });

  it("prepare() compiles every method's validators, so that the first call compiles nothing", async () => {
    const compile = vi.spyOn(Ajv2020.prototype, "compile");
    const broker = new FakeBroker();
    const client = new RpcClient(broker.connect());
    const Slow = freshService();
    client.prepare(Slow);
    const atPrepare = compile.mock.calls.length;
    expect(atPrepare).toBeGreaterThanOrEqual(2); // request and response
    client.call(Slow.methods.run, { n: 1 }).catch(() => {});
    await broker.settle();
    expect(compile.mock.calls.length).toBe(atPrepare);
    await client.close();
  });
});
