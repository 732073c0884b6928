/** src/amqp/frames.ts: one-pass publish frames, byte for byte amqplib's, and when it leaves a message to amqplib. */
import { IllegalOperationError } from "amqplib";
import { describe, expect, it } from "vitest";
import type { MessageProperties } from "../../src/amqp/channel-source.js";
import { encodePublish } from "../../src/amqp/frames.js";
import { publishMessage } from "../../src/amqp/internals.js";
import { amqplibPublishFrames, directChannel } from "../../bench/lib/amqplib-frames.js";

/** What amqplib's channel.publish hands its connection: method fields and properties in one object. */
function fieldsOf(exchange: string, routingKey: string, mandatory: boolean, props: MessageProperties): object {
  return { exchange, routingKey, mandatory, immediate: false, ticket: undefined, ...props };
}

const body = Buffer.from('{"orderId":"o-1","total":12.5}');
const every = { "x-warren-contract-version": "1.0.0", t: true, f: false };
const numbers = { zero: 0, minusOne: -1, b127: 127, b128: 128, bMinus128: -128, bMinus129: -129, s32767: 32767, s32768: 32768, sMinus32769: -32769, i: 2 ** 31 - 1, i2: 2 ** 31, iMinus: -(2 ** 31) - 1, deadline: 1764000030000, big: Number.MAX_SAFE_INTEGER, half: 1.5, small: -0.25, negZero: -0 };

/** Bytes of the method and header frames of publishing to "ex"/"rk" with only a content type: what a body of the size limit is measured against. */
const frameBytes = amqplibPublishFrames(6, fieldsOf("ex", "rk", false, { contentType: "application/json" }), { contentType: "application/json" }, Buffer.alloc(0)).length;

const cases: [string, number, string, string, boolean, MessageProperties, Buffer][] = [
  ["an event", 1, "events.Orders", "orders.eu.placed", false, { deliveryMode: 2, contentType: "application/json", type: "order_placed", messageId: "8f14e45f-ceea-4672-9b1c-2f0a6c1d3e21", timestamp: 1764690000, headers: every }, body],
  ["a request", 7, "", "rpc.Calculator", true, { contentType: "application/json", correlationId: "c.1a", replyTo: "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAAexgAAAAFrD7ff.CNkpC+B0xBFxIy8J3iIpeg==", type: "add", expiration: "30000", timestamp: 1764000000, headers: { "x-warren-deadline": 1764000030000, "x-warren-contract-version": "2.1.0", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } }, body],
  ["a reply without headers", 65535, "", "amq.rabbitmq.reply-to.abc", false, { contentType: "application/json", correlationId: "c.1a", type: "result" }, body],
  ["every kind of number amqplib guesses", 2, "x", "y", false, { contentType: "application/json", headers: numbers }, body],
  ["UTF-8 names and values, an undefined header skipped", 3, "événements", "commandes.ü.🚀", false, { contentType: "application/json; charset=utf-8", type: "commande_passée", headers: { clé: "ünïcödé 🚀", gone: undefined } }, body],
  ["an empty headers table", 4, "ex", "rk", false, { contentType: "application/json", deliveryMode: 1, headers: {} }, body],
  ["an empty body (no body frame)", 5, "ex", "rk", false, { contentType: "application/json" }, Buffer.alloc(0)],
  ["a body just under the limit", 6, "ex", "rk", false, { contentType: "application/json" }, Buffer.alloc(2047 - 8 - frameBytes, 0x61)],
  ["no properties at all", 1, "", "q", false, {}, body],
];

describe("encodePublish", () => {
  it.each(cases)("encodes %s byte for byte as amqplib does", (_name, channel, exchange, routingKey, mandatory, props, content) => {
    const fields = fieldsOf(exchange, routingKey, mandatory, props);
    const expected = amqplibPublishFrames(channel, fields, fields, content);
    expect(expected.length).toBeLessThan(2048);
    expect(encodePublish(channel, exchange, routingKey, mandatory, props, content)).toEqual(expected);
  });

  const refused: [string, string, MessageProperties, Buffer][] = [
    ["a body of 2048 bytes", "rk", {}, Buffer.alloc(2048)],
    ["frames of 2048 bytes in all", "rk", { contentType: "application/json" }, Buffer.alloc(2048 - 8 - frameBytes)],
    ["a header of null", "rk", { headers: { n: null } }, body],
    ["a nested table", "rk", { headers: { t: { a: 1 } } }, body],
    ["an array header", "rk", { headers: { a: [1] } }, body],
    ["a Buffer header", "rk", { headers: { b: Buffer.from("x") } }, body],
    ["NaN", "rk", { headers: { n: Number.NaN } }, body],
    ["an infinity", "rk", { headers: { n: -Infinity } }, body],
    ["an unsafe integer", "rk", { headers: { n: 2 ** 60 } }, body],
    ["a bigint", "rk", { headers: { n: 1n } }, body],
    ["a 256-byte header name", "rk", { headers: { ["k".repeat(256)]: 1 } }, body],
    ["a 256-byte type", "rk", { type: "é".repeat(128) }, body],
    ["a 256-byte routing key", "r".repeat(256), {}, body],
    ["a header table past the limit", "rk", { headers: { big: "x".repeat(3000) } }, body],
    ["a negative timestamp", "rk", { timestamp: -1 }, body],
    ["a fractional timestamp", "rk", { timestamp: 1.5 }, body],
    ["a delivery mode of 256", "rk", { deliveryMode: 256 }, body],
    ["a priority (never sent by warren)", "rk", { priority: 1 } as MessageProperties, body],
    ["an app id (never sent by warren)", "rk", { appId: "a" } as MessageProperties, body],
  ];
  it.each(refused)("leaves %s to amqplib", (_name, routingKey, props, content) => {
    expect(encodePublish(1, "ex", routingKey, false, props, content)).toBeUndefined();
  });

  it("leaves a message that fills its encoding room to amqplib at every size, without throwing", () => {
    for (let size = 2900; size < 3100; size++) {
      const props: MessageProperties = { headers: { big: "x".repeat(size), n: 2 ** 40 }, deliveryMode: 2, timestamp: 1764690000, type: "t" };
      expect(encodePublish(1, "ex", "rk", false, props, body)).toBeUndefined();
    }
  });

  it("is not thrown off by a message it left to amqplib: the next one is whole", () => {
    expect(encodePublish(1, "ex", "rk", false, { headers: { big: "x".repeat(5000) } }, body)).toBeUndefined();
    const props: MessageProperties = { contentType: "application/json", headers: { a: "b" } };
    const fields = fieldsOf("ex", "rk", false, props);
    expect(encodePublish(1, "ex", "rk", false, props, body)).toEqual(amqplibPublishFrames(1, fields, fields, body));
  });
});

describe("publishMessage on amqplib's channel shape", () => {
  it("writes the one-pass frames to the channel's buffer, as amqplib's connection would, and notes the write for the heartbeat", () => {
    const { channel, written, connection } = directChannel(9);
    const props: MessageProperties = { contentType: "application/json", type: "add", correlationId: "c.1", replyTo: "amq.rabbitmq.reply-to", headers: { "x-warren-deadline": 1764000030000 } };
    expect(publishMessage(channel, "", "rpc.Calculator", body, props, true)).toBe(true);
    const fields = fieldsOf("", "rpc.Calculator", true, props);
    expect(written).toEqual([amqplibPublishFrames(9, fields, fields, body)]);
    expect(connection.sentSinceLastCheck).toBe(true);
  });

  it("reaches amqplib's refusal on a closing or closed channel or connection (amqplib's throwing sendMessage)", () => {
    const closing = directChannel(1);
    const refusal = new IllegalOperationError("Channel closing", "");
    (closing.channel as unknown as { sendMessage: () => never }).sendMessage = () => {
      throw refusal;
    };
    expect(() => publishMessage(closing.channel, "", "q", body, { contentType: "application/json" })).toThrow(refusal);
    expect(closing.written).toEqual([]);
    const closed = directChannel(1);
    (closed.connection as unknown as { sendMessage: () => never }).sendMessage = () => {
      throw new IllegalOperationError("Connection closing", "");
    };
    expect(() => publishMessage(closed.channel, "", "q", body, { contentType: "application/json" })).toThrow("Connection closing");
    expect(closed.written).toEqual([]);
  });

  it("hands what it does not encode to amqplib's sendMessage", () => {
    const { channel, written } = directChannel(1);
    const seen: unknown[] = [];
    const big = Buffer.alloc(4096);
    const proto = Object.getPrototypeOf(channel) as { sendMessage: (...a: unknown[]) => boolean };
    const original = proto.sendMessage;
    proto.sendMessage = function (...args: unknown[]) {
      seen.push(args[2]);
      return true;
    };
    try {
      expect(publishMessage(channel, "", "q", big, { contentType: "application/json" })).toBe(true);
    } finally {
      proto.sendMessage = original;
    }
    expect(seen).toEqual([big]);
    expect(written).toEqual([]);
  });
});
