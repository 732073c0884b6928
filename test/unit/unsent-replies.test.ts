/**
 * src/rpc/server.ts: a reply that cannot go out because its channel is closing or closed. The handler
 * has finished, so its result goes out on the next channel and the redelivered copy is acknowledged,
 * not run again nor taken over by a handler that will never reply (docs/FAILURES.md#long-handlers-and-consumer_timeout).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RpcError } from "../../src/core/errors.js";
import type { HandlerContext } from "../../src/rpc/handler.js";
import { RpcClient } from "../../src/rpc/client.js";
import { RpcServer } from "../../src/rpc/server.js";
import { Calculator } from "../../generated/calculator/index.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";
import { FakeBroker, type FakeChannel, type FakeConnection } from "../helpers/fake-channel-source.js";

let broker: FakeBroker;
let serverConn: FakeConnection;
/** The redelivered flag of each run of `add`. */
let runs: boolean[];
let release: () => void;

beforeEach(async () => {
  vi.useFakeTimers();
  broker = new FakeBroker();
  serverConn = broker.connect();
  runs = [];
  const add = (_req: unknown, ctx: HandlerContext<any>) => (runs.push(ctx.redelivered), new Promise<{ sum: number }>((resolve) => (release = () => resolve({ sum: 3 }))));
  await new RpcServer(serverConn).register(Calculator, { ...calculatorHandlers, add });
});
afterEach(() => vi.useRealTimers());

/** A call of `add`, once its handler runs: `outcome`, what it settles with (the result, or the error's code). */
async function callRunning(): Promise<{ outcome: Promise<unknown> }> {
  const outcome = new RpcClient(broker.connect()).call(Calculator.methods.add, { a: 1, b: 2 }, { timeoutMs: 5000 }).then(
    (result) => result,
    (err: RpcError) => err.code,
  );
  while (runs.length === 0) await broker.settle();
  return { outcome };
}

/**
 * What the caller got by its deadline, which handler runs there were, and what the queue held just
 * before (later the server acknowledges requests whose caller's deadline passed, copies included).
 */
async function afterDeadline(outcome: Promise<unknown>) {
  await broker.settle();
  const { ready, unacked } = broker.queue("rpc.Calculator")!;
  await vi.advanceTimersByTimeAsync(5000);
  return { outcome: await outcome, runs, ready, unacked };
}

/** The caller got the handler's result; it ran once; the copy was acknowledged (no prefetch slot held). */
const answeredOnce = { outcome: { sum: 3 }, runs: [false], ready: 0, unacked: 0 };

/**
 * `channel` as AmqpChannel reports amqplib's window between a close under way (the channel's or its
 * connection's) and the close itself: a publish throws and marks the channel closed at once; its
 * close listeners run only when the close comes.
 */
function closing(channel: FakeChannel): void {
  const closed = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(channel), "closed")!.get!;
  let refused = false;
  vi.spyOn(channel, "closed", "get").mockImplementation(() => refused || (closed.call(channel) as boolean));
  vi.spyOn(channel, "publish").mockImplementation(() => {
    refused = true;
    throw new Error("Channel closing");
  });
}

/** Lets `patch` change the next channel the server opens (the one it resumes on). */
function onNextChannel(patch: (channel: FakeChannel) => void): void {
  const open = serverConn.open.bind(serverConn);
  vi.spyOn(serverConn, "open").mockImplementationOnce(async (mode) => {
    const channel = await open(mode);
    patch(channel);
    return channel;
  });
}

/** The channel the server consumes on. */
const serverChannel = () => broker.channels("rpc.Calculator")[0]!;

describe("a reply that cannot go out on its channel", () => {
  it("published while its channel is closing (before its close listeners ran): goes out on the next channel; the redelivered copy is acknowledged, not taken over by the finished handler", async () => {
    const { outcome } = await callRunning();
    const first = serverChannel();
    closing(first);
    release();
    await broker.settle();
    first.failByBroker(); // the close comes: the request goes back to the queue, redelivered
    expect(await afterDeadline(outcome)).toEqual(answeredOnce);
  });

  it("of a handler that outlived its channel, sent on the current channel while that one is closing: held for the next, not counted as answered", async () => {
    const { outcome } = await callRunning();
    onNextChannel((second) => {
      const consume = second.consume.bind(second);
      vi.spyOn(second, "consume").mockImplementationOnce((...args) => {
        // The handler finishes once the second channel is current, before its copy is delivered there, as that channel's close begins.
        closing(second);
        release();
        return consume(...args);
      });
    });
    serverChannel().failByBroker();
    await broker.settle();
    // Its copy came on the closing channel: taken over, it waits for the held reply (acked before it, the request could be lost).
    expect(broker.queue("rpc.Calculator")).toMatchObject({ ready: 0, unacked: 1 });
    serverChannel().failByBroker(); // the close comes
    expect(await afterDeadline(outcome)).toEqual(answeredOnce);
  });

  it("held while no channel was open, when the next channel closes before it could take it (in the read that completed its setup): waits for the one after", async () => {
    const { outcome } = await callRunning();
    onNextChannel((second) => {
      const prefetch = second.prefetch.bind(second);
      vi.spyOn(second, "prefetch").mockImplementationOnce(async (count) => {
        await prefetch(count);
        second.failByBroker();
      });
    });
    serverChannel().failByBroker();
    release(); // the channel is gone and none is open yet: the reply is held
    await broker.settle();
    await vi.advanceTimersByTimeAsync(1000); // the second channel failed; the server resumes after a backoff
    expect(await afterDeadline(outcome)).toEqual(answeredOnce);
  });
});
