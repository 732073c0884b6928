/**
 * What the in-memory broker (memory-broker.ts) and its connections (memory-connection.ts)
 * share, with no I/O: messages as the broker holds them, what an AMQP error looks like, and
 * what "later" means (a socket read: the next tick).
 */
import type { MessageProperties } from "../amqp/channel-source.js";

/** The direct reply-to pseudo-queue. */
export const REPLY_TO = "amq.rabbitmq.reply-to";
/** Runs `fn` on a later tick, as a socket read would (`process.nextTick`: fake timers leave it alone). */
export const later = (fn: () => void) => process.nextTick(fn);
/** Resolves on a later tick. */
export const tick = () => new Promise<void>((resolve) => later(resolve));

/** An AMQP error as amqplib raises it: the reply code in `code`, the broker's text in the message. */
export function brokerError(code: number, text: string): Error & { code: number } {
  const name = text.split(" - ")[0]!.replace(/_/g, "-");
  return Object.assign(new Error(`Channel closed by server: ${code} (${name}) with message "${text}"`), { code });
}

/** A message as a queue holds it. */
export interface StoredMessage {
  /** The body. */
  readonly content: Buffer;
  /** Its properties as routed (a request's direct reply-to already rewritten to the caller's address). */
  readonly properties: MessageProperties;
  /** The exchange it was published to (`""`: the default exchange). */
  readonly exchange: string;
  /** The routing key it was published with. */
  readonly routingKey: string;
  /** True once it has been delivered and requeued (or duplicated by a fault). */
  readonly redelivered: boolean;
  /** `Date.now()` from which it is dropped instead of delivered (per-message `expiration`). */
  readonly expiresAt: number;
}

/** One call of `publish` / `publishConfirmed`, as the client made it (before the broker rewrote anything). */
export interface Published {
  /** The publishing channel's id. */
  readonly channel: number;
  /** The exchange (`""`: the default exchange). */
  readonly exchange: string;
  /** The routing key. */
  readonly routingKey: string;
  /** A copy of the body. */
  readonly content: Buffer;
  /** The properties as the publisher gave them. */
  readonly properties: MessageProperties;
  /** The `mandatory` flag (warren sets it on requests). */
  readonly mandatory: boolean;
}

/** @internal Drops the expired messages at the head of `q` (per-message `expiration`). */
export function dropExpired(q: { messages: StoredMessage[] }): void {
  while (q.messages.length > 0 && q.messages[0]!.expiresAt <= Date.now()) q.messages.shift();
}
