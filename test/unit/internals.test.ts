/** src/amqp/internals.ts: publishMessage encodes what amqplib's channel.publish would. */
import type { Channel } from "amqplib";
import { describe, expect, it } from "vitest";
import type { Options } from "amqplib";
import type { MessageProperties } from "../../src/amqp/channel-source.js";
import { publishMessage } from "../../src/amqp/internals.js";
import { decodeFrames as decoded, encodingChannel } from "../../bench/lib/amqplib-frames.js";

const cases: [string, MessageProperties, boolean][] = [
  ["a request", { contentType: "application/json", correlationId: "c.1", replyTo: "amq.rabbitmq.reply-to", type: "add", expiration: "30000", timestamp: 1764000000, headers: { "x-warren-deadline": 1764000030000, traceparent: "00-ab-cd-01" } }, true],
  ["a reply", { contentType: "application/json", correlationId: "c.1", type: "result" }, false],
  ["a reply without correlation id", { contentType: "application/json", correlationId: undefined, type: "error" }, false],
  ["a persistent message", { contentType: "application/json", deliveryMode: 2, headers: {} }, false],
];

describe("publishMessage", () => {
  it.each(cases)("encodes %s as amqplib's channel.publish does (byte for byte when it has headers)", (_name, props, mandatory) => {
    const body = Buffer.from('{"a":1}');
    const viaPublish = encodingChannel();
    viaPublish.channel.publish("ex", "rk", body, { ...props, mandatory } as Options.Publish);
    const viaFast = encodingChannel();
    expect(publishMessage(viaFast.channel, "ex", "rk", body, props, mandatory)).toBe(true);
    expect(decoded(viaFast.frames)).toEqual(decoded(viaPublish.frames));
    expect(decoded(viaFast.frames)[0]).toMatchObject({ exchange: "ex", routingKey: "rk", mandatory });
    // amqplib always sends a headers table, empty if need be; without headers warren sends none.
    if (props.headers !== undefined) expect(viaFast.frames).toEqual(viaPublish.frames);
  });

  it("falls back to channel.publish when the channel has no sendMessage", () => {
    const seen: unknown[] = [];
    const channel = { publish: (...args: unknown[]) => (seen.push(args), false) } as unknown as Channel;
    expect(publishMessage(channel, "", "q", Buffer.from("{}"), { contentType: "application/json", type: "add" }, true)).toBe(false);
    expect(seen).toEqual([["", "q", Buffer.from("{}"), { contentType: "application/json", type: "add", mandatory: true }]]);
  });
});
