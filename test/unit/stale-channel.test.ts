/** src/rpc/client.ts: a reply channel that answers nothing is retired (new calls on a fresh channel), without failing the calls still waiting on it. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Delivery } from "../../src/amqp/channel-source.js";
import { CONTENT_TYPE, RESULT_TYPE } from "../../src/core/protocol.js";
import { RpcClient } from "../../src/rpc/client.js";
import { Calculator } from "../../generated/calculator/index.js";
import { FakeBroker, type FakeConnection } from "../helpers/fake-channel-source.js";
import { recordingLogger } from "../helpers/broker.js";

const add = Calculator.methods.add;

let broker: FakeBroker;
let requests: Delivery[];
let reply: (req: Delivery, sum: number) => void;
let client: RpcClient;
let logger: ReturnType<typeof recordingLogger>;

beforeEach(async () => {
  vi.useFakeTimers();
  broker = new FakeBroker();
  const server: FakeConnection = broker.connect();
  const ch = await server.open();
  await ch.declareQueue("rpc.Calculator", { durable: true });
  requests = [];
  await ch.consume("rpc.Calculator", (m) => requests.push(m!), { noAck: true });
  reply = (req, sum) => ch.publish("", req.properties.replyTo as string, Buffer.from(JSON.stringify({ sum })), { contentType: CONTENT_TYPE, correlationId: req.properties.correlationId as string, type: RESULT_TYPE });
  logger = recordingLogger();
  client = new RpcClient(broker.connect(), { logger });
});
afterEach(() => vi.useRealTimers());

/** The channel number each request to the service was published on, in order. */
const channelsUsed = () => broker.published.filter((p) => p.routingKey === "rpc.Calculator").map((p) => p.channel);

describe("a reply channel that stops answering", () => {
  it("is retired after 3 calls on it time out in a row: later calls use a fresh channel, a call still waiting on the old one gets its reply", async () => {
    const waiting = client.call(add, { a: 1, b: 1 }, { timeoutMs: 60_000 });
    const timedOut = [2, 3, 4].map((a) => client.call(add, { a, b: 0 }, { timeoutMs: 1000 }).catch((e: { code: string }) => e.code));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await Promise.all(timedOut)).toEqual(["timeout", "timeout", "timeout"]);
    expect(logger.lines.join("\n")).toMatch(/3 calls in a row timed out without a single reply/);

    const next = client.call(add, { a: 5, b: 5 });
    await vi.advanceTimersByTimeAsync(0);
    const [old, ...rest] = channelsUsed();
    expect(rest.slice(0, 3)).toEqual([old, old, old]);
    expect(rest[3]).not.toBe(old); // the fresh channel

    reply(requests[0]!, 2); // the old channel still delivers the reply of the call waiting on it
    reply(requests[4]!, 10);
    await vi.advanceTimersByTimeAsync(0);
    expect(await waiting).toEqual({ sum: 2 });
    expect(await next).toEqual({ sum: 10 });
    expect(client.pendingCount).toBe(0);
    // Its last call settled: the retired channel is closed.
    expect(broker.channels().map((c) => c.id)).not.toContain(old);
  });

  it("is kept when a reply arrives between timeouts (a slow method, not a dead channel)", async () => {
    const slow = [1, 2].map((a) => client.call(add, { a, b: 0 }, { timeoutMs: 1000 }).catch((e: { code: string }) => e.code));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await Promise.all(slow)).toEqual(["timeout", "timeout"]);
    const answered = client.call(add, { a: 3, b: 0 });
    await vi.advanceTimersByTimeAsync(0);
    reply(requests[2]!, 3);
    expect(await answered).toEqual({ sum: 3 });
    const more = [4, 5].map((a) => client.call(add, { a, b: 0 }, { timeoutMs: 1000 }).catch((e: { code: string }) => e.code));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await Promise.all(more)).toEqual(["timeout", "timeout"]);
    client.call(add, { a: 6, b: 0 }).catch(() => {});
    await vi.advanceTimersByTimeAsync(0);
    expect(new Set(channelsUsed()).size).toBe(1);
    await client.close();
  });
});
