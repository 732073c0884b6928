/** src/rpc/call-table.ts: the pending-call index (a ring of slots, no Map) finds every call by its correlation id, whatever the order and age of calls. */
import { beforeEach, describe, expect, it } from "vitest";
import type { Delivery } from "../../src/amqp/channel-source.js";
import { CONTENT_TYPE, RESULT_TYPE } from "../../src/core/protocol.js";
import { RpcClient } from "../../src/rpc/client.js";
import { Calculator } from "../../generated/calculator/index.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";

const add = Calculator.methods.add;
let broker: FakeBroker;
let requests: Delivery[];
let answer: (req: Delivery) => void;
let client: RpcClient;

beforeEach(async () => {
  broker = new FakeBroker();
  const ch = await broker.connect().open();
  await ch.declareQueue("rpc.Calculator", { durable: true });
  requests = [];
  await ch.consume("rpc.Calculator", (m) => requests.push(m!), { noAck: true });
  answer = (req) => {
    const { a, b } = JSON.parse(req.content.toString()) as { a: number; b: number };
    ch.publish("", req.properties.replyTo as string, Buffer.from(JSON.stringify({ sum: a + b })), { contentType: CONTENT_TYPE, correlationId: req.properties.correlationId as string, type: RESULT_TYPE });
  };
  client = new RpcClient(broker.connect());
});

describe("the pending-call index", () => {
  it("matches 3,000 pending calls answered in reverse order (the ring grows while they are pending)", async () => {
    const calls = Array.from({ length: 3000 }, (_, i) => client.call(add, { a: i, b: 1 }, { timeoutMs: 60_000 }));
    await broker.settle();
    expect(client.pendingCount).toBe(3000);
    for (const req of [...requests].reverse()) answer(req);
    expect((await Promise.all(calls)).map((r) => r.sum)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(client.pendingCount).toBe(0);
  });

  it("keeps finding an old call while thousands of others come and go (slot reuse goes to the overflow)", async () => {
    const old = client.call(add, { a: 40, b: 2 }, { timeoutMs: 60_000 });
    for (let round = 0; round < 50; round++) {
      const batch = Array.from({ length: 100 }, (_, i) => client.call(add, { a: i, b: round }, { timeoutMs: 60_000 }));
      await broker.settle();
      for (const req of requests.splice(requests.length - 100)) answer(req);
      expect((await Promise.all(batch)).map((r) => r.sum)).toEqual(Array.from({ length: 100 }, (_, i) => i + round));
    }
    expect(client.pendingCount).toBe(1);
    answer(requests[0]!);
    expect(await old).toEqual({ sum: 42 });
    expect(client.pendingCount).toBe(0);
  });

  it("ignores a reply whose correlation id is another client's or malformed", async () => {
    const call = client.call(add, { a: 1, b: 2 }, { timeoutMs: 60_000 });
    await broker.settle();
    const req = requests[0]!;
    const id = req.properties.correlationId as string;
    for (const forged of [`x${id}`, id.slice(0, -1), `${id.slice(0, id.lastIndexOf(".") + 1)}zzzz`, `${id.slice(0, id.lastIndexOf(".") + 1)}`]) {
      (req.properties as { correlationId?: unknown }).correlationId = forged;
      answer(req);
    }
    await broker.settle();
    expect(client.pendingCount).toBe(1);
    (req.properties as { correlationId?: unknown }).correlationId = id;
    answer(req);
    expect(await call).toEqual({ sum: 3 });
  });
});
