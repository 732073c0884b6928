/** src/core/options.ts: defaults applied once, nonsense refused with the option's name, URLs redacted. */
import { describe, expect, it } from "vitest";
import {
  callTimeout,
  checkQueueType,
  redactUrl,
  resolveClientOptions,
  resolveEventBusOptions,
  resolveReconnect,
  resolveServerOptions,
  resolveSubscribeLimits,
} from "../../src/core/options.js";

const logger = { warn() {}, error() {} };

describe("redactUrl", () => {
  it("redacts passwords in URLs, and in text that is not one", () => {
    expect(redactUrl("amqp://user:hunter2@host:5672/vh")).toBe("amqp://user:***@host:5672/vh");
    expect(redactUrl("amqps://user:p%40ss@host")).not.toContain("p%40ss");
    expect(redactUrl("not a url user:pw@x")).not.toContain(":pw@");
    expect(redactUrl("amqp://host:5672")).toBe("amqp://host:5672");
  });
});

describe("callTimeout", () => {
  it("takes the per-call timeout, else the method's, else the client's", () => {
    expect(callTimeout(10, 20, 30)).toBe(10);
    expect(callTimeout(undefined, 20, 30)).toBe(20);
    expect(callTimeout(undefined, undefined, 30)).toBe(30);
    expect(() => callTimeout(0, 20, 30)).toThrow("timeoutMs must be a positive number");
  });
});

describe("client, server, event bus and reconnect options", () => {
  it("applies defaults once", () => {
    expect(resolveServerOptions({}, logger)).toMatchObject({ prefetch: 32, maxMessageBytes: 1048576, exposeInternalErrors: false, logger });
    expect(resolveClientOptions({}, logger)).toMatchObject({ timeoutMs: 30000, replyQueue: "direct", queues: {}, logger });
    expect(resolveEventBusOptions({}, logger)).toMatchObject({ confirm: true, persistent: true, exchanges: {}, maxMessageBytes: 1048576 });
    expect(resolveReconnect()).toEqual({ initialDelayMs: 100, maxDelayMs: 5000 });
  });

  it("refuses nonsense with the option's name", () => {
    expect(() => resolveServerOptions({ prefetch: -1 }, logger)).toThrow("prefetch must be a positive number");
    expect(() => resolveClientOptions({ timeoutMs: Number.NaN }, logger)).toThrow("timeoutMs must be a positive number");
    expect(() => resolveEventBusOptions({ maxMessageBytes: 0 }, logger)).toThrow("maxMessageBytes must be a positive number");
    expect(() => resolveReconnect({ maxDelayMs: Infinity })).toThrow("reconnect.maxDelayMs");
  });

  it("accepts classic or quorum queues only", () => {
    expect(checkQueueType("Calculator", undefined)).toBe("classic");
    expect(checkQueueType("Calculator", "quorum")).toBe("quorum");
    expect(() => checkQueueType("Calculator", "stream")).toThrow(/Calculator: queueType must be "classic" or "quorum", got "stream"/);
  });
});

describe("subscription options", () => {
  it("applies defaults", () => {
    expect(resolveSubscribeLimits({})).toEqual({ prefetch: 16, ackDelayMs: 10, maxAttempts: 5, retryDelayMs: 200 });
    expect(resolveSubscribeLimits({ ackDelayMs: 0 })).toMatchObject({ ackDelayMs: 0 });
    expect(resolveSubscribeLimits({ retryDelayMs: 0, maxAttempts: 1 })).toMatchObject({ retryDelayMs: 0, maxAttempts: 1 });
  });

  it("refuses nonsense with the option's name", () => {
    expect(() => resolveSubscribeLimits({ maxAttempts: 0 })).toThrow(/maxAttempts must be a positive number/);
    expect(() => resolveSubscribeLimits({ maxAttempts: 1.5 })).toThrow(/maxAttempts must be an integer/);
    expect(() => resolveSubscribeLimits({ prefetch: -1 })).toThrow(/prefetch/);
    expect(() => resolveSubscribeLimits({ group: "has space" })).toThrow(/group "has space" must be/);
    expect(() => resolveSubscribeLimits({ ackDelayMs: -1 })).toThrow(/ackDelayMs must be a positive number/);
    expect(() => resolveSubscribeLimits({ ackDelayMs: 5000 })).toThrow(/ackDelayMs must be at most 1000/);
  });
});
