/**
 * Every place warren reaches into amqplib's private internals, for speed. It
 * relies on amqplib 2.3.1 (pinned exactly in package.json); each patch checks
 * the shape it needs first and, when that shape is not there, leaves amqplib's
 * own path in place. test/integration/amqplib-internals.test.ts fails loudly
 * when an upgrade changes a shape, so the fallback is never silent in CI.
 *
 * 1. {@link coalesceWrites}: the multiplexer's pass over pending frames is
 *    corked, so a reply and its ack leave in one `writev`.
 * 2. {@link writeThrough}: a channel's frame goes straight to the socket while
 *    nothing of the channel is queued.
 * 3. {@link publishMessage}: requests, replies and events under 2048 bytes
 *    are encoded in one pass (src/amqp/frames.ts, byte for byte amqplib's
 *    frames) and written to the channel's buffer stream as amqplib's
 *    `sendMessage` would; larger or unusual ones are handed to `sendMessage`
 *    with plain headers, skipping `Args.publish`. Events are confirmed
 *    ({@link publishConfirmedMessage}, with the confirm callback registered by
 *    the channel's `pushConfirmCallback`, as `ConfirmChannel.publish` does).
 * 4. {@link closedAlready}: whether a channel closed before its creator could
 *    attach a listener (amqplib emits `close` synchronously while it reads).
 * 5. {@link recordingHandshake}: the first bytes of a connection's socket,
 *    which hold the broker's reason for refusing it (amqplib drops it).
 */
import net, { type Socket } from "node:net";
import tls from "node:tls";
import type { Readable, Writable } from "node:stream";
import type { Channel, ChannelModel, ConfirmChannel, Options } from "amqplib";
import type { MessageProperties } from "./channel-source.js";
import { encodePublish } from "./frames.js";

/** The parts of amqplib's connection that {@link coalesceWrites} and {@link writeThrough} reach into. */
interface Internals {
  stream: Socket;
  muxer: { _readIncoming: (this: unknown) => void; blocked?: boolean };
  channels: ({ buffer?: unknown } | null)[];
}

/** amqplib's connection behind a channel model, when it has the shape warren's write path relies on. */
function internalsOf(model: ChannelModel): Internals | undefined {
  const c = (model as unknown as { connection?: Partial<Internals> }).connection;
  const socket = c?.stream as Partial<Socket> | undefined;
  if (typeof c?.muxer?._readIncoming !== "function" || !Array.isArray(c.channels)) return undefined;
  if (typeof socket?.cork !== "function" || typeof socket.uncork !== "function" || typeof socket.write !== "function") return undefined;
  return c as Internals;
}

/**
 * amqplib's multiplexer writes each pending frame to the socket with its own
 * `write` (one syscall each: a reply and its ack are two). Corking the socket
 * around one multiplexer pass sends them all in a single `writev`. Applied only
 * when amqplib's internals have the expected shape; otherwise nothing changes.
 */
export function coalesceWrites(model: ChannelModel): void {
  const internals = internalsOf(model);
  if (internals === undefined) return;
  const { stream: socket, muxer } = internals;
  const readIncoming = muxer._readIncoming;
  muxer._readIncoming = function corked(this: unknown) {
    socket.cork();
    try {
      readIncoming.call(this);
    } finally {
      socket.uncork();
    }
  };
}

/**
 * amqplib queues every frame a channel sends in the channel's buffer stream;
 * its multiplexer moves it to the socket in a later `setImmediate` turn, after
 * a `nextTick` "readable" event. When that buffer is empty and the socket
 * accepts writes, a frame can go to the socket at once without changing the
 * order of anything: `writeThrough` does that for `channel`, corking the socket
 * until the end of the current tick so that the frames of one turn (a reply
 * and its ack, a burst of requests) still leave in one `writev`. Otherwise the
 * frame takes amqplib's path, which also keeps its back-pressure: a full socket
 * sends later frames through the buffer, whose `write` then reports it.
 */
export function writeThrough(model: ChannelModel, channel: Channel): void {
  const internals = internalsOf(model);
  const number = (channel as unknown as { ch?: unknown }).ch;
  if (internals === undefined || typeof number !== "number") return;
  const buffer = internals.channels[number]?.buffer as Writable & Readable | undefined;
  if (typeof buffer?.write !== "function" || typeof buffer.readableLength !== "number") return;
  const { stream: socket, muxer } = internals;
  const queued = buffer.write.bind(buffer) as (chunk: Buffer) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  buffer.write = ((chunk: Buffer) => {
    if (buffer.readableLength !== 0 || buffer.writableLength !== 0 || muxer.blocked === true || socket.writableNeedDrain || !socket.writable) {
      return queued(chunk);
    }
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    socket.write(chunk);
    return true;
  }) as typeof buffer.write;
}

/**
 * True when `channel` closed before anyone could listen: amqplib resolves
 * `createChannel` and then, in the same read of the socket, may close the
 * channel (a `connection.close` read together with `channel.open-ok` or
 * `confirm.select-ok`), emitting `close` before the caller's `await` resumes.
 * A closed channel is no longer in its connection's channel table. False when
 * the table does not have the expected shape (nothing to tell).
 */
export function closedAlready(channel: Channel): boolean {
  const c = channel as unknown as { ch?: unknown; connection?: { channels?: unknown } };
  const table = c.connection?.channels;
  if (typeof c.ch !== "number" || !Array.isArray(table)) return false;
  return (table[c.ch] as { channel?: unknown } | null | undefined)?.channel !== channel;
}

/** What each patch found in amqplib's internals: all true on the pinned version. */
export interface InternalsReport {
  /** The connection has the socket, multiplexer and channel table of {@link coalesceWrites} and {@link writeThrough}. */
  readonly connection: boolean;
  /** The channel has its number and a buffer stream {@link writeThrough} can take over. */
  readonly channelBuffer: boolean;
  /** The channel has the `sendMessage` {@link publishMessage} calls, and the `pushConfirmCallback` of {@link publishConfirmedMessage}. */
  readonly sendMessage: boolean;
  /** The channel's number, buffer stream and heartbeat flag are where {@link publishMessage}'s one-pass frames are written. */
  readonly directWrite: boolean;
  /** The channel is found in its connection's channel table, as {@link closedAlready} expects of an open channel. */
  readonly channelTable: boolean;
}

/** Reports which of the internals warren relies on `model` and `channel` have (for the shape test and diagnostics). */
export function inspectInternals(model: ChannelModel, channel: Channel): InternalsReport {
  const internals = internalsOf(model);
  const number = (channel as unknown as { ch?: unknown }).ch;
  const buffer = internals !== undefined && typeof number === "number" ? (internals.channels[number]?.buffer as Partial<Writable & Readable> | undefined) : undefined;
  return {
    connection: internals !== undefined,
    channelBuffer: typeof buffer?.write === "function" && typeof buffer.readableLength === "number" && typeof buffer.writableLength === "number",
    sendMessage: typeof (channel as unknown as { sendMessage?: unknown }).sendMessage === "function" && typeof (channel as unknown as { pushConfirmCallback?: unknown }).pushConfirmCallback === "function",
    directWrite: directWrite(channel, Buffer.alloc(0)) !== undefined,
    channelTable: internals !== undefined && typeof number === "number" && (internals.channels[number] as { channel?: unknown } | null)?.channel === channel,
  };
}
type SendMessage = (fields: object, properties: object, content: Buffer) => boolean;

/**
 * The hot-path publish of requests and replies. amqplib's `channel.publish`
 * first runs `Args.publish`, which wraps the caller's headers in a new object
 * whose prototype is those headers (`Object.create(headers)`); amqplib's table
 * encoder then walks that prototype chain with `for…in`, a slow path in V8
 * (`npm run bench:micro` measures both). This builds the same method fields
 * and properties itself, with the headers as a plain object. A message under
 * 2048 bytes is encoded in one pass ({@link encodePublish}) and written to
 * the channel's buffer stream, as amqplib's `sendMessage` writes it; any other
 * goes to amqplib's own `sendMessage` (the method `publish` ends in). Either
 * way the frames are amqplib's, with one difference: without headers it sends
 * no headers table, where amqplib always sends one, empty if need be. A
 * channel without `sendMessage` gets `publish`. Returns what `publish` returns
 * (false: the socket buffer is full); throws like `publish` when the channel
 * or its connection is closing or closed.
 */
export function publishMessage(channel: Channel, exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory = false): boolean {
  const direct = directWrite(channel, content);
  if (direct !== undefined) {
    const frames = encodePublish(direct.number, exchange, routingKey, mandatory, props, content);
    if (frames !== undefined) {
      direct.connection.sentSinceLastCheck = true; // what amqplib's sendMessage notes for its heartbeat
      return direct.buffer.write(frames);
    }
  }
  const send = (channel as unknown as { sendMessage?: SendMessage }).sendMessage;
  if (typeof send !== "function") return channel.publish(exchange, routingKey, content, { ...props, mandatory } as Options.Publish);
  // Same keys, same order as amqplib's Args.publish: one object serves as method fields and properties.
  const fields = {
    exchange,
    routingKey,
    mandatory,
    immediate: false,
    ticket: undefined,
    contentType: props.contentType,
    contentEncoding: undefined,
    headers: props.headers,
    deliveryMode: props.deliveryMode,
    priority: undefined,
    correlationId: props.correlationId,
    replyTo: props.replyTo,
    expiration: props.expiration,
    messageId: props.messageId,
    timestamp: props.timestamp,
    type: props.type,
    userId: undefined,
    appId: undefined,
    clusterId: undefined,
  };
  return send.call(channel, fields, fields, content);
}

/** What {@link publishMessage} writes a channel's frames to itself, as amqplib's `sendMessage` does. */
interface DirectWrite {
  readonly number: number;
  readonly buffer: Writable;
  readonly connection: { sentSinceLastCheck: boolean };
}

/**
 * Where `channel`'s frames can be written without amqplib's `sendMessage`:
 * its number and its buffer stream, while neither the channel nor its
 * connection has been closed (amqplib then replaces their `sendMessage` with
 * one that throws, which the caller must reach). `undefined` when the shape
 * is not amqplib 2.3.1's, or for content that is not a Buffer.
 */
function directWrite(channel: Channel, content: Buffer): DirectWrite | undefined {
  const c = channel as unknown as { ch?: unknown; connection?: { channels?: unknown; sentSinceLastCheck?: unknown } };
  const connection = c.connection;
  if (typeof c.ch !== "number" || connection === undefined || !Array.isArray(connection.channels) || typeof connection.sentSinceLastCheck !== "boolean") return undefined;
  if (Object.hasOwn(channel, "sendMessage") || Object.hasOwn(connection, "sendMessage") || !Buffer.isBuffer(content)) return undefined;
  const buffer = (connection.channels[c.ch] as { buffer?: Partial<Writable> } | null | undefined)?.buffer;
  if (typeof buffer?.write !== "function") return undefined;
  return { number: c.ch, buffer: buffer as Writable, connection: connection as { sentSinceLastCheck: boolean } };
}

/**
 * {@link publishMessage} on a confirm channel: what amqplib's
 * `ConfirmChannel.publish` does (publish, then queue `confirmed` for the
 * broker's ack or nack), minus `Args.publish`. A channel without
 * `sendMessage` or `pushConfirmCallback` gets `ConfirmChannel.publish`.
 */
export function publishConfirmedMessage(channel: Channel, exchange: string, routingKey: string, content: Buffer, props: MessageProperties, confirmed: (err: Error | null) => void): boolean {
  const push = (channel as unknown as { pushConfirmCallback?: (cb: (err: Error | null) => void) => void }).pushConfirmCallback;
  if (typeof push !== "function" || typeof (channel as unknown as { sendMessage?: unknown }).sendMessage !== "function") {
    return (channel as ConfirmChannel).publish(exchange, routingKey, content, props as Options.Publish, confirmed);
  }
  const flushed = publishMessage(channel, exchange, routingKey, content, props);
  push.call(channel, confirmed);
  return flushed;
}

/** Bytes of a handshake worth keeping: the broker's start, tune and close frames take a few hundred. */
const RECORDED_BYTES = 4096;

type SocketFactory = (...args: unknown[]) => net.Socket;

/**
 * Calls `open` (amqplib's connect, which creates its socket at once, with
 * `net.connect` or `tls.connect`) and records the first bytes that socket
 * receives until `open` settles. amqplib drops the broker's reason when the
 * broker refuses to open the virtual host; those bytes hold it (see
 * `brokerClose`). The two module functions are wrapped only for the
 * synchronous call, so no other code sees them, and the socket's `push` only
 * until the handshake ends. Should amqplib make its socket some other way,
 * nothing is recorded and the failure is explained from amqplib's error alone.
 */
export function recordingHandshake(open: () => Promise<ChannelModel>): { opened: Promise<ChannelModel>; received(): Buffer | undefined } {
  const modules = [net, tls] as unknown as { connect: SocketFactory }[];
  const factories = modules.map((m) => m.connect);
  let socket: net.Socket | undefined;
  modules.forEach((m, i) => {
    m.connect = function (this: unknown, ...args: unknown[]) {
      const created = factories[i]!.apply(this, args);
      socket ??= created;
      return created;
    };
  });
  let opened: Promise<ChannelModel>;
  try {
    opened = open();
  } catch (err) {
    opened = Promise.reject(err);
  } finally {
    modules.forEach((m, i) => (m.connect = factories[i]!));
  }
  const tapped = socket as net.Socket | undefined;
  if (tapped === undefined || typeof tapped.push !== "function") return { opened, received: () => undefined };
  const chunks: Buffer[] = [];
  let size = 0;
  const push = tapped.push;
  const own = Object.hasOwn(tapped, "push");
  tapped.push = function (chunk: unknown, encoding?: BufferEncoding) {
    if (Buffer.isBuffer(chunk) && size < RECORDED_BYTES) {
      const kept = Buffer.from(chunk.subarray(0, RECORDED_BYTES - size));
      chunks.push(kept);
      size += kept.length;
    }
    return push.call(this, chunk, encoding);
  };
  const untap = () => {
    if (own) tapped.push = push;
    else delete (tapped as { push?: unknown }).push;
  };
  void opened.then(untap, untap);
  return { opened, received: () => Buffer.concat(chunks) };
}
