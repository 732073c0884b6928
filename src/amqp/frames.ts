/**
 * The frames of one small `basic.publish` (method, content header, one body
 * frame), encoded in one pass into one buffer. They are byte for byte the
 * frames amqplib 2.3.1 builds for the same method fields and properties
 * (test/unit/frames.test.ts compares them), at a fraction of the cost:
 * amqplib encodes each frame into its own zero-filled buffer, measures every
 * string twice and copies the three into a fourth (`npm run bench:micro`).
 *
 * Only what warren sends takes this path; anything else — a message of 2048
 * bytes or more (amqplib then writes it in pieces), a header value that is not
 * a string, boolean or plain number, a string too long for its field, a
 * property of the wrong type — gets `undefined`, and the caller hands the
 * message to amqplib, which sends it or throws its own error.
 */
import type { MessageProperties } from "./channel-source.js";

/** Below this many bytes in all, amqplib writes a message's frames as one buffer; so does {@link encodePublish}. */
export const SINGLE_BUFFER_LIMIT = 2048;

/** Room to encode into: the limit, and more than any one string write can overrun it by before it is noticed. */
const scratch = Buffer.allocUnsafe(SINGLE_BUFFER_LIMIT + 1024);
/** Any encoding that gets this far is too big for one buffer (or a string write may have been cut short). */
const FULL = scratch.length - 8;

const FRAME_END = 206;
/** Class 60 (basic), method 40 (publish). */
const BASIC_PUBLISH = 0x003c0028;
/** Class 60 (basic), weight 0. */
const BASIC_HEADER = 0x003c0000;
const TWO_POW_32 = 4294967296;

/** Writes `value` as a short string (length octet, UTF-8) at `at`; the offset after it, or -1 when it does not fit. */
function shortString(value: unknown, at: number): number {
  if (typeof value !== "string" || at >= FULL) return -1;
  const length = scratch.write(value, at + 1, "utf8");
  if (length > 255 || at + 1 + length >= FULL) return -1;
  scratch[at] = length;
  return at + 1 + length;
}

/** Writes a field table the way amqplib does (same keys in the same order, same type tags); the offset after it, or -1. */
function table(value: object, at: number): number {
  let offset = at + 4;
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (item === undefined) continue;
    offset = shortString(key, offset);
    if (offset < 0) return -1;
    offset = fieldValue(item, offset);
    if (offset < 0) return -1;
  }
  scratch.writeUInt32BE(offset - at - 4, at);
  return offset;
}

/** One table value: a string, a boolean or a number, typed as amqplib guesses it; -1 for anything else. */
function fieldValue(value: unknown, at: number): number {
  if (at >= FULL) return -1;
  switch (typeof value) {
    case "string": {
      scratch[at] = 0x53; // S: long string
      const length = scratch.write(value, at + 5, "utf8");
      if (at + 5 + length >= FULL) return -1;
      scratch.writeUInt32BE(length, at + 1);
      return at + 5 + length;
    }
    case "boolean":
      scratch[at] = 0x74; // t
      scratch[at + 1] = value ? 1 : 0;
      return at + 2;
    case "number":
      if (Number.isSafeInteger(value)) {
        if (value >= -128 && value < 128) {
          scratch[at] = 0x62; // b
          scratch.writeInt8(value, at + 1);
          return at + 2;
        }
        if (value >= -0x8000 && value < 0x8000) {
          scratch[at] = 0x73; // s
          scratch.writeInt16BE(value, at + 1);
          return at + 3;
        }
        if (value >= -0x80000000 && value < 0x80000000) {
          scratch[at] = 0x49; // I
          scratch.writeInt32BE(value, at + 1);
          return at + 5;
        }
        scratch[at] = 0x6c; // l
        scratch.writeBigInt64BE(BigInt(value), at + 1);
        return at + 9;
      }
      // amqplib's rule for a double; other numbers (NaN, infinities, huge ones) are left to amqplib.
      if (Number.isFinite(value) && Math.abs(value) < 0x4000000000000) {
        scratch[at] = 0x64; // d
        scratch.writeDoubleBE(value, at + 1);
        return at + 9;
      }
      return -1;
    default:
      return -1;
  }
}

/** The property flags and the write offset of the content header being encoded (encoding is synchronous: one at a time). */
let flags = 0;
let cursor = 0;

/** Writes one property if it is set, with `write`, and sets its flag; false when it cannot be written. */
function property(value: unknown, flag: number, write: (value: never, at: number) => number): boolean {
  if (value == null) return true;
  if (cursor >= FULL) return false; // the writers below may write up to 8 bytes unchecked
  flags |= flag;
  cursor = write(value as never, cursor);
  return cursor >= 0;
}

/** The headers property: a field table. */
function headersTable(value: unknown, at: number): number {
  return typeof value === "object" && value !== null ? table(value, at) : -1;
}

/** The timestamp property: seconds as a 64-bit unsigned integer (a safe, non-negative integer here, else -1). */
function timestamp(value: unknown, at: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) return -1;
  scratch.writeUInt32BE(Math.floor(value / TWO_POW_32), at);
  scratch.writeUInt32BE(value >>> 0, at + 4);
  return at + 8;
}

/** The delivery-mode octet: an integer 0–255, else -1. */
function octet(value: unknown, at: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 255) return -1;
  scratch[at] = value;
  return at + 1;
}

/**
 * The method, header and body frames of publishing `content` with `props` on
 * channel number `channel`, in one new buffer; `undefined` when amqplib should
 * encode it instead (see the module comment). The returned buffer is the
 * caller's; nothing of it is shared.
 */
export function encodePublish(channel: number, exchange: string, routingKey: string, mandatory: boolean, props: MessageProperties, content: Buffer): Buffer | undefined {
  if (content.length >= SINGLE_BUFFER_LIMIT || hasOtherProperties(props)) return undefined;
  // Method frame: type 1, channel, size (patched), class/method, ticket 0, exchange, routing key, bits (mandatory), end.
  scratch[0] = 1;
  scratch.writeUInt16BE(channel, 1);
  scratch.writeUInt32BE(BASIC_PUBLISH, 7);
  scratch.writeUInt16BE(0, 11);
  let offset = shortString(exchange, 13);
  if (offset < 0) return undefined;
  offset = shortString(routingKey, offset);
  if (offset < 0) return undefined;
  scratch[offset++] = mandatory ? 1 : 0;
  scratch[offset] = FRAME_END;
  scratch.writeUInt32BE(offset - 7, 3);
  offset++;
  // Content header frame: type 2, channel, size (patched), class/weight, body size (8 bytes), flags (patched), properties, end.
  const header = offset;
  scratch[header] = 2;
  scratch.writeUInt16BE(channel, header + 1);
  scratch.writeUInt32BE(BASIC_HEADER, header + 7);
  scratch.writeUInt32BE(0, header + 11);
  scratch.writeUInt32BE(content.length, header + 15);
  // In the order of the AMQP property list (flag bits from the top down).
  flags = 0;
  cursor = header + 21;
  if (
    !property(props.contentType, 0x8000, shortString) ||
    !property(props.headers, 0x2000, headersTable) ||
    !property(props.deliveryMode, 0x1000, octet) ||
    !property(props.correlationId, 0x0400, shortString) ||
    !property(props.replyTo, 0x0200, shortString) ||
    !property(props.expiration, 0x0100, shortString) ||
    !property(props.messageId, 0x0080, shortString) ||
    !property(props.timestamp, 0x0040, timestamp) ||
    !property(props.type, 0x0020, shortString)
  ) {
    return undefined;
  }
  // The header frame ends at `cursor`; a body frame (none for an empty body: its size, 0, is in the header) follows.
  const total = cursor + 1 + (content.length === 0 ? 0 : content.length + 8);
  if (total >= SINGLE_BUFFER_LIMIT) return undefined;
  offset = cursor;
  scratch.writeUInt16BE(flags, header + 19);
  scratch[offset] = FRAME_END;
  scratch.writeUInt32BE(offset - header - 7, header + 3);
  offset++;
  // Body frame: type 3, channel, size, content, end.
  const frames = Buffer.allocUnsafe(total);
  scratch.copy(frames, 0, 0, offset);
  if (content.length === 0) return frames;
  frames[offset] = 3;
  frames.writeUInt16BE(channel, offset + 1);
  frames.writeUInt32BE(content.length, offset + 3);
  content.copy(frames, offset + 7);
  frames[total - 1] = FRAME_END;
  return frames;
}

/** Properties warren never sends (content encoding, priority, user and app id, cluster id): left to amqplib. */
function hasOtherProperties(props: MessageProperties): boolean {
  const p = props as Record<string, unknown>;
  return p.contentEncoding != null || p.priority != null || p.userId != null || p.appId != null || p.clusterId != null;
}
