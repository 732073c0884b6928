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
const { parseFrame, decodeFrame } = require(path.join(amqplibDir, "lib/frame.js"));

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
