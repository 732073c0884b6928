/**
 * The seam between warren's logic and AMQP. `rpc/` and `events/` see the
 * broker only through these interfaces: a {@link ChannelSource} that opens
 * {@link WireChannel}s. `amqp/connection.ts` implements them over amqplib;
 * tests implement them in memory (src/testing/, warren/testing). No
 * amqplib type appears here.
 */
import type { Logger } from "../core/options.js";

/** The message properties warren sets and reads (a subset of AMQP's basic properties). */
export interface MessageProperties {
  contentType?: string | undefined;
  correlationId?: string | undefined;
  replyTo?: string | undefined;
  type?: string | undefined;
  /** Per-message TTL in ms, as a decimal string. */
  expiration?: string | undefined;
  /** Seconds since the epoch. */
  timestamp?: number | undefined;
  messageId?: string | undefined;
  headers?: Record<string, unknown> | undefined;
  /** 2 = persistent. */
  deliveryMode?: number | undefined;
}

/** One message as the broker delivered it (structurally a subset of amqplib's `ConsumeMessage`). */
export interface Delivery {
  readonly content: Buffer;
  readonly fields: {
    readonly deliveryTag: number;
    readonly redelivered: boolean;
    readonly exchange: string;
    readonly routingKey: string;
  };
  readonly properties: { readonly [K in keyof MessageProperties]: unknown };
}

/** A message returned unrouted (a `mandatory` publish no queue took). */
export interface Returned {
  readonly content: Buffer;
  readonly properties: { readonly correlationId?: unknown };
}

/** What an ack names: a delivery, or any object carrying its tag. */
export interface AckTarget {
  readonly fields: { readonly deliveryTag: number };
}

/** What a confirm channel reports when the broker refuses a message (`basic.nack`): it was not enqueued. */
export class NackError extends Error {
  constructor() {
    super("the broker refused the message (basic.nack)");
    this.name = "NackError";
  }
}

/** Why a channel closed; `undefined` for a close warren asked for. */
export type CloseReason = Error | undefined;

/**
 * One AMQP channel. Contract for implementations:
 *
 * 1. `closed` is true from the moment the channel closes, whoever closed it;
 *    `onClose` listeners registered before or after that moment each run
 *    exactly once (after the fact: on the next microtask). No close is ever
 *    missed because the listener was attached late.
 * 2. `publish` returns false when the socket buffer is full (wait for
 *    `onDrain`), and throws when the channel is closed. When it throws
 *    because the channel can send nothing more (it is closed, or its close,
 *    or its connection's, is under way), `closed` is true by then, possibly
 *    before the `onClose` listeners have run; a throw with `closed` false is
 *    a refusal of that one message (the channel stays usable).
 * 3. Operations that wait for the broker reject with the broker's error, whose
 *    `code` is the AMQP reply code (404, 403, 406, ...) when the broker refused.
 * 4. A delivery's handler runs synchronously as frames are read; `null` means
 *    the broker cancelled the consumer.
 */
export interface WireChannel {
  /** True once the channel is closed. */
  readonly closed: boolean;
  /** Runs `listener` once when the channel closes (at once, asynchronously, if it already has). */
  onClose(listener: (reason: CloseReason) => void): void;
  /** Runs `listener` for each message returned unrouted. */
  onReturn(listener: (msg: Returned) => void): void;
  /** Resolves when the socket buffer has drained or the channel closed. */
  drained(): Promise<void>;
  /** Publishes; see the contract for the return value. */
  publish(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory?: boolean): boolean;
  /** Publishes on a confirm channel; `confirmed` is called once: `null` (ack), a {@link NackError} (nack), or another Error (channel closed: outcome unknown). */
  publishConfirmed(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, confirmed: (err: Error | null) => void): boolean;
  /** Starts a consumer; resolves with its tag once the broker confirmed it. */
  consume(queue: string, deliver: (msg: Delivery | null) => void, options?: { noAck?: boolean }): Promise<string>;
  /** Stops a consumer. */
  cancel(consumerTag: string): Promise<void>;
  /** Acknowledges one delivery, or with `multiple` every one up to it. Ignored (no throw) once the channel is closed. */
  ack(target: AckTarget, multiple?: boolean): void;
  /** Sets how many unacknowledged deliveries the consumers of this channel may hold. */
  prefetch(count: number): Promise<void>;
  /** Declares a queue (empty name: server-named); resolves with its name. */
  declareQueue(name: string, options: QueueOptions): Promise<string>;
  /** Asks how many messages and consumers a queue has (a passive declare); rejects with code 404, closing the channel, when it does not exist. */
  checkQueue(name: string): Promise<{ messageCount: number; consumerCount: number }>;
  /** Declares an exchange. */
  declareExchange(name: string, type: string, options: { durable: boolean }): Promise<void>;
  /** Binds `queue` to `exchange` with `key`. */
  bindQueue(queue: string, exchange: string, key: string): Promise<void>;
  /** Removes the binding of `queue` to `exchange` with `key` (nothing happens when there is none). */
  unbindQueue(queue: string, exchange: string, key: string): Promise<void>;
  /** Takes the message at the head of `queue` (basic.get), unacknowledged: ack it, or it is requeued when the channel closes; `undefined` when the queue is empty. */
  get(queue: string): Promise<Delivery | undefined>;
  /** Closes the channel; resolves when it is closed (also when it already was). */
  close(): Promise<void>;
}

/** How a queue is declared. */
export interface QueueOptions {
  durable: boolean;
  exclusive?: boolean;
  autoDelete?: boolean;
  arguments?: Record<string, unknown>;
}

/**
 * Where `rpc/` and `events/` get channels from. Contract for implementations:
 *
 * 1. `open` waits for a reconnection in progress, then opens a channel
 *    (`confirm`: publishes are acknowledged by the broker).
 * 2. Once the source is closed for good, `open` rejects with an `RpcError`
 *    `connection_lost` and `closed` is true.
 * 3. `blocked` is true while the broker's resource alarm pauses publishing;
 *    `unblocked()` resolves when that ends or the connection is lost. A lost
 *    connection is not blocked (the next one reports its own alarm).
 */
export interface ChannelSource {
  /** Where the runtime logs. */
  readonly logger: Logger;
  /** True once closed for good. */
  readonly closed: boolean;
  /** True while the broker blocks publishing (memory or disk alarm). */
  readonly blocked: boolean;
  /** Opens a channel; see the contract. */
  open(mode?: "plain" | "confirm"): Promise<WireChannel>;
  /** Resolves when the broker unblocks publishing or the connection is lost. */
  unblocked(): Promise<void>;
}
