/**
 * The hot-path publish of requests and replies. amqplib's `channel.publish`
 * first runs `Args.publish`, which wraps the caller's headers in a new object
 * whose prototype is those headers (`Object.create(headers)`); amqplib's table
 * encoder then walks that prototype chain with `for…in`, a slow path in V8.
 * `npm run bench:micro` measures both ways of encoding a request.
 *
 * {@link publishMessage} builds the same method fields and properties itself,
 * with the headers as a plain object, and hands them to amqplib's own
 * `sendMessage` (the method `publish` ends in), so the frames are amqplib's.
 * One difference: without headers it sends no headers table, where amqplib
 * always sends one, empty if need be. When a channel has no `sendMessage` it
 * falls back to `publish`.
 */
import type { Channel, Options } from "amqplib";

/** The message properties warren sets (a subset of AMQP's basic properties). */
export interface MessageProperties {
  contentType: string;
  correlationId?: string | undefined;
  replyTo?: string | undefined;
  type?: string | undefined;
  /** Per-message TTL in ms, as a decimal string. */
  expiration?: string | undefined;
  /** Seconds since the epoch. */
  timestamp?: number | undefined;
  headers?: Record<string, unknown> | undefined;
  /** 2 = persistent. */
  deliveryMode?: number | undefined;
}

type SendMessage = (fields: object, properties: object, content: Buffer) => boolean;

/**
 * Publishes `content` to `exchange` with `routingKey`; returns what amqplib's
 * `publish` returns (false: the socket buffer is full, wait for "drain").
 * Throws like `publish` when the channel is closed.
 */
export function publishMessage(channel: Channel, exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory = false): boolean {
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
    messageId: undefined,
    timestamp: props.timestamp,
    type: props.type,
    userId: undefined,
    appId: undefined,
    clusterId: undefined,
  };
  return send.call(channel, fields, fields, content);
}
