/**
 * amqplib's frame encoder without a connection: a real amqplib channel object
 * whose `sendMessage` encodes the method and header frames it would write.
 * Used to measure publish encoding (bench/micro.ts) and to compare warren's
 * publish path with amqplib's (test/unit/internals.test.ts).
 */
import { createRequire } from "node:module";
import path from "node:path";
import type { Channel } from "amqplib";

const require = createRequire(import.meta.url);
// amqplib exports only its entry points; its encoder is reached by file path.
const amqplibDir = path.dirname(require.resolve("amqplib"));
const defs = require(path.join(amqplibDir, "lib/defs.js"));
const { Channel: AmqplibChannel } = require(path.join(amqplibDir, "lib/channel_model.js"));
const { Connection: AmqplibConnection } = require(path.join(amqplibDir, "lib/connection.js"));
const { parseFrame, decodeFrame, makeBodyFrame } = require(path.join(amqplibDir, "lib/frame.js"));

/** An amqplib channel without a connection; `frames` collects what `publish` would write (method, then header frame). */
export function encodingChannel(keep = true): { channel: Channel; frames: Buffer[] } {
  const frames: Buffer[] = [];
  const channel = Object.create(AmqplibChannel.prototype);
  channel.sendMessage = (fields: object, properties: object, content: Buffer) => {
    const method = defs.encodeMethod(defs.BasicPublish, 1, fields) as Buffer;
    const header = defs.encodeProperties(defs.BasicProperties, 1, content.length, properties) as Buffer;
    if (keep) frames.push(method, header);
    return true;
  };
  return { channel, frames };
}

/** What a consumer sees of frames: method fields and properties, an empty headers table read as none. */
export function decodeFrames(frames: Buffer[]): unknown[] {
  return frames.map((f) => {
    const { fields } = decodeFrame(parseFrame(f, 131072));
    if (fields.headers !== undefined && Object.keys(fields.headers).length === 0) fields.headers = undefined;
    return fields;
  });
}

/**
 * The bytes amqplib's connection writes for one publish under 2048 bytes
 * (its `sendMessage`): method frame, content header frame, and a body frame
 * unless the body is empty.
 */
export function amqplibPublishFrames(channel: number, fields: object, properties: object, content: Buffer): Buffer {
  const method = defs.encodeMethod(defs.BasicPublish, channel, fields) as Buffer;
  const header = defs.encodeProperties(defs.BasicProperties, channel, content.length, properties) as Buffer;
  return Buffer.concat(content.length > 0 ? [method, header, makeBodyFrame(channel, content) as Buffer] : [method, header]);
}

/**
 * An amqplib channel numbered `number` on an amqplib connection object
 * without a socket: `publish` runs amqplib's whole encoding (its connection's
 * `sendMessage`), and what either path writes to the channel's buffer stream
 * is kept in `written` (when `keep`), as the socket would get it.
 */
export function directChannel(number = 1, keep = true): { channel: Channel; written: Buffer[]; connection: { sentSinceLastCheck: boolean } } {
  const written: Buffer[] = [];
  const channels: unknown[] = [];
  channels[number] = { buffer: { write: (chunk: Buffer) => (keep && written.push(chunk), true) } };
  const connection = Object.create(AmqplibConnection.prototype);
  connection.channels = channels;
  connection.sentSinceLastCheck = false;
  const channel = Object.create(AmqplibChannel.prototype);
  channel.ch = number;
  channel.connection = connection;
  return { channel, written, connection };
}
