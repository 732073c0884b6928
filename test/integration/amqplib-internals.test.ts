/**
 * The shapes of amqplib's private internals that src/amqp/internals.ts relies
 * on, checked on a real connection. warren falls back to amqplib's own path at
 * run time when a shape is missing, so without this test an amqplib upgrade
 * could silently cost the write path its speed or the channels their
 * early-close detection. If it fails after an upgrade: re-check every patch in
 * internals.ts against the new amqplib before changing the pinned version.
 */
import { describe, expect, it } from "vitest";
import type { Channel, ChannelModel, GetMessage } from "amqplib";
import type { WireChannel } from "../../src/amqp/channel-source.js";
import { AmqpChannel } from "../../src/amqp/channel.js";
import { closedAlready, inspectInternals, publishMessage } from "../../src/amqp/internals.js";
import { connect } from "../../src/index.js";
import { onTeardown, openConnection, recordingLogger, uniqueName } from "../helpers/broker.js";
import { startFrameProxy } from "../helpers/frame-proxy.js";

/** amqplib's ChannelModel behind a warren connection's raw channel. */
function modelOf(channel: Channel): ChannelModel {
  return { connection: (channel as unknown as { connection: unknown }).connection } as unknown as ChannelModel;
}

describe("amqplib internals (pinned version)", () => {
  it("a plain and a confirm channel have every shape warren's patches use", async () => {
    const conn = await openConnection();
    for (const raw of [await conn.channel(), await conn.confirmChannel()]) {
      expect(inspectInternals(modelOf(raw), raw)).toEqual({ connection: true, channelBuffer: true, sendMessage: true, directWrite: true, channelTable: true });
      await raw.close();
    }
  });

  it("the broker takes the one-pass frames of publishMessage, small and large, and delivers them with every property and header as sent", async () => {
    const conn = await openConnection();
    const raw = await conn.channel();
    const queue = uniqueName("frames");
    await raw.assertQueue(queue, { exclusive: true });
    const headers = { "x-warren-deadline": 1764000030000, "x-warren-contract-version": "1.2.0", clé: "ünïcödé 🚀", n: -129, half: 1.5, yes: true };
    const props = { contentType: "application/json", correlationId: "c.1", replyTo: "replies.here", type: "commande_passée", expiration: "60000", messageId: "8f14e45f-ceea-4672-9b1c-2f0a6c1d3e21", timestamp: 1764690000, deliveryMode: 2, headers };
    const small = Buffer.from('{"a":1}');
    const large = Buffer.from(JSON.stringify({ pad: "x".repeat(5000) })); // over 2048 bytes: amqplib's sendMessage
    for (const body of [small, large, Buffer.alloc(0)]) expect(publishMessage(raw, "", queue, body, props, true)).toBe(true);
    for (const body of [small, large, Buffer.alloc(0)]) {
      let got: GetMessage | false = false;
      for (let i = 0; i < 100 && got === false; i++) {
        got = await raw.get(queue, { noAck: true });
        if (got === false) await new Promise((r) => setTimeout(r, 10));
      }
      expect(got && got.content).toEqual(body);
      expect(got && got.properties).toMatchObject({ ...props, headers });
    }
  });

  it("a closed channel is no longer in its connection's channel table, so closedAlready sees it", async () => {
    const conn = await openConnection();
    const raw = await conn.channel();
    expect(closedAlready(raw)).toBe(false);
    await raw.close();
    expect(closedAlready(raw)).toBe(true);
  });

  it("a channel wrapped after amqplib closed it is closed, and a late onClose listener still runs once", async () => {
    const conn = await openConnection();
    const raw = await conn.channel();
    await raw.close();
    const channel = new AmqpChannel(raw);
    expect(channel.closed).toBe(true);
    const calls: unknown[] = [];
    channel.onClose((reason) => calls.push(reason));
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([undefined]);
  });

  it("a publish amqplib refuses while the close of the channel, or of its connection, is under way marks the channel closed at once; its close listeners run when the close comes", async () => {
    const conn = await openConnection();
    for (const close of [(channel: WireChannel) => channel.close(), () => conn.close()]) {
      const channel = await conn.open();
      const closes: unknown[] = [];
      channel.onClose((reason) => closes.push(reason));
      const closed = close(channel);
      expect(channel.closed).toBe(false); // closing: nothing has said so yet
      expect(() => channel.publish("", "nowhere", Buffer.from("{}"), {})).toThrow(/(Channel|Connection) closing/);
      expect([channel.closed, closes]).toEqual([true, []]); // a server holds the reply for the next channel from here
      await closed;
      expect(closes).toEqual([undefined]);
    }
  });

  it("closing a channel settles when the connection is lost before the broker's close-ok (amqplib's close() alone never would)", async () => {
    const proxy = await startFrameProxy();
    onTeardown(() => proxy.close());
    const conn = await connect(proxy.url, { name: uniqueName("close-lost"), logger: recordingLogger(), reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    onTeardown(() => conn.close());
    const channel = await conn.open();
    const closes: unknown[] = [];
    channel.onClose((reason) => closes.push(reason));
    const closing = channel.close(); // channel.close is written; its close-ok cannot arrive before the socket goes
    expect(proxy.dropAll()).toBe(1);
    const outcome = await Promise.race([closing.then(() => "settled"), new Promise((r) => setTimeout(r, 3000, "still pending after 3 s"))]);
    expect(outcome).toBe("settled");
    expect([channel.closed, closes.length]).toEqual([true, 1]);
  });

  it("closing a connection settles when its socket is lost before the broker's close-ok", async () => {
    const proxy = await startFrameProxy();
    onTeardown(() => proxy.close());
    const conn = await connect(proxy.url, { name: uniqueName("close-lost"), logger: recordingLogger() });
    const closing = conn.close(); // connection.close is written; its close-ok cannot arrive before the socket goes
    expect(proxy.dropAll()).toBe(1);
    const outcome = await Promise.race([closing.then(() => "settled"), new Promise((r) => setTimeout(r, 3000, "still pending after 3 s"))]);
    expect(outcome).toBe("settled");
  });

  it("acks on a channel the broker closed are ignored, not thrown (the broker requeues the delivery)", async () => {
    const conn = await openConnection();
    const channel = await conn.open();
    await channel.close();
    expect(() => channel.ack({ fields: { deliveryTag: 1 } })).not.toThrow();
  });
});
