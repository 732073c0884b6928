/**
 * One subscription to one event: its queue (exclusive for broadcast, durable
 * and shared for a consumer group), bound to the service's exchange; each
 * delivery is decoded, validated, handled, and acknowledged only after the
 * handler succeeds. Failures are retried by re-queueing a copy, then
 * dead-lettered with the reason.
 */
import type { ChannelSource, Delivery, MessageProperties, WireChannel } from "../amqp/channel-source.js";
import { KeptConsumer } from "../amqp/consumer.js";
import { declareDurableQueue, declareExchange } from "../amqp/queues.js";
import type { EventDescriptor, ExchangeSpec } from "../core/descriptor.js";
import { describeTarget, formatIssues } from "../core/errors.js";
import {
  checkQueueType,
  resolveSubscribeLimits,
  type QueueType,
  type ResolvedEventBusOptions,
  type ResolvedSubscribeLimits,
  type SubscribeOptions,
} from "../core/options.js";
import {
  ATTEMPT_HEADER,
  DEAD_ERROR_HEADER,
  DEAD_QUEUE_HEADER,
  CONTRACT_VERSION_HEADER,
  DEAD_REASON_HEADER,
  ORIGIN_EXCHANGE_HEADER,
  ORIGIN_ROUTING_KEY_HEADER,
  decodeBody,
  readAttempt,
} from "../core/protocol.js";
import { checkBindingKey, defaultBindingKey } from "../core/routing.js";
import { handleTraced } from "../core/trace.js";
import { Invalid, payloadReceive } from "../core/validation.js";
import { versionSkew } from "../core/versions.js";

/** What an event handler knows about the event it handles. */
export interface EventContext {
  /** Service name. */
  readonly service: string;
  /** Event (wire) name. */
  readonly event: string;
  /** The exchange it was published to. */
  readonly exchange: string;
  /** The routing key it was published with. */
  readonly routingKey: string;
  /** The publisher's `message_id` (de-duplicate on it: delivery is at-least-once). */
  readonly messageId: string | undefined;
  /** Send time (whole seconds, as AMQP carries it), as a Date; undefined when absent. */
  readonly publishedAt: Date | undefined;
  /** 1 on the first try; higher when an earlier handler run failed. */
  readonly attempt: number;
  /** True when the broker delivered this message before (a subscriber died mid-event). */
  readonly redelivered: boolean;
  /** The message's AMQP headers, as received. */
  readonly headers: Readonly<Record<string, unknown>>;
  /** The consumer group of the subscription it reached; absent for a broadcast subscription (and from contexts built by hand). */
  readonly group?: string | undefined;
  /** The queue it was consumed from (server-named for broadcast); absent from contexts built by hand. */
  readonly queue?: string;
  /** The binding key of the subscription it reached (e.g. `orders.*.placed`); absent from contexts built by hand. */
  readonly bindingKey?: string;
}

/** Handles one event; throwing (or rejecting) means "try again later". */
export type EventHandler<P> = (payload: P, ctx: EventContext) => void | Promise<void>;

/** The rest of a subscription's chain for one event: the handler, or the next interceptor. */
export type ProcessNext = (payload: unknown, ctx: EventContext) => void | Promise<void>;

/**
 * Wraps each handler run of a subscription (each attempt of each event), after
 * the payload passed its schema. It sees the payload and the event's context
 * (its `headers`, `group`, `queue`, `attempt`); it may observe the outcome,
 * and what it throws counts as a handler failure (retried, then
 * dead-lettered). The first of a list is the outermost.
 */
export type ProcessInterceptor = (next: ProcessNext) => ProcessNext;

/** `interceptors` around `last`, the first outermost (the event layer's twin of the RPC one). */
export function composeEvents<F>(interceptors: readonly ((next: F) => F)[], last: F): F {
  let chain = last;
  for (let i = interceptors.length - 1; i >= 0; i--) chain = interceptors[i]!(chain);
  return chain;
}

/** A running subscription; `close()` stops it gracefully. */
export interface Subscription {
  /** The queue being consumed (server-named for broadcast; it changes after a reconnection). */
  readonly queue: string;
  /** Where events this subscription cannot handle go. */
  readonly deadLetterQueue: string;
  /** Events currently being handled. */
  readonly inFlight: number;
  /** Messages of other event types that reached this queue (e.g. on a fanout exchange), acknowledged and skipped. */
  readonly skipped: number;
  /** Stops consuming, lets in-flight handlers finish, then closes the channel. A broadcast queue is deleted by the broker. */
  close(): Promise<void>;
}

/** @internal created by {@link EventBus.subscribe}. */
export class EventSubscription<P> implements Subscription {
  readonly deadLetterQueue: string;
  readonly #event: EventDescriptor<P>;
  readonly #exchange: ExchangeSpec;
  /** The handler, inside the process interceptors (composed once). */
  readonly #handler: ProcessNext;
  readonly #group: string | undefined;
  readonly #bus: ResolvedEventBusOptions;
  readonly #limits: ResolvedSubscribeLimits;
  readonly #groupQueue: string | undefined;
  readonly #queueType: QueueType;
  readonly #bindingKey: string;
  readonly #consumer: KeptConsumer;
  readonly #what: string;
  #inFlight = 0;
  #skipped = 0;
  /** Publishers' contract versions seen, and why each is refused (`undefined`: compatible). */
  readonly #versions = new Map<string, string | undefined>();
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    source: ChannelSource,
    event: EventDescriptor<P>,
    exchange: ExchangeSpec,
    handler: EventHandler<P>,
    options: SubscribeOptions,
    bus: ResolvedEventBusOptions,
    interceptors: readonly ProcessInterceptor[],
    private readonly onClosed: () => void,
  ) {
    this.#event = event;
    this.#exchange = exchange;
    this.#handler = interceptors.length === 0 ? (handler as ProcessNext) : composeEvents<ProcessNext>(interceptors, handler as ProcessNext);
    this.#group = options.group;
    this.#bus = bus;
    this.#limits = resolveSubscribeLimits(options);
    this.#bindingKey = checkBindingKey(options.bindingKey ?? defaultBindingKey(event, exchange.type), exchange.type);
    if (options.queue !== undefined && options.group === undefined) {
      throw new TypeError(`warren: ${describeTarget({ service: event.service.name, method: event.name })} subscriber: "queue" names a consumer group's shared queue; give "group" too (a subscriber without a group gets a queue of its own, named by the broker)`);
    }
    this.#groupQueue = options.group === undefined ? undefined : (options.queue ?? `${exchange.name}.${event.name}.${options.group}`);
    this.deadLetterQueue = options.deadLetterQueue ?? (this.#groupQueue === undefined ? `${exchange.name}.${event.name}.dead` : `${this.#groupQueue}.dead`);
    this.#what = `${describeTarget({ service: event.service.name, method: event.name })} subscriber${options.group === undefined ? "" : ` (group ${options.group})`}`;
    this.#queueType = checkQueueType(this.#what, options.queueType);
    payloadReceive(event); // compile now, not on the first event
    this.#consumer = new KeptConsumer(
      this.#what,
      {
        open: () => source.open("confirm"),
        prepare: (channel) => this.#prepare(channel),
        deliver: (channel, msg) => this.#onDelivery(channel, msg),
        connectionClosed: () => source.closed,
      },
      bus.logger,
    );
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get skipped(): number {
    return this.#skipped;
  }

  /** Declares exchange, queue and dead-letter queue, binds, and starts consuming. */
  start(): Promise<void> {
    return this.#consumer.start();
  }

  async #prepare(channel: WireChannel): Promise<string> {
    await declareExchange(channel, this.#what, this.#exchange.name, this.#exchange.type);
    let queue = this.#groupQueue;
    if (queue === undefined) queue = await channel.declareQueue("", { exclusive: true, autoDelete: true, durable: false });
    else await declareDurableQueue(channel, this.#what, queue, this.#queueType);
    await declareDurableQueue(channel, this.#what, this.deadLetterQueue, this.#queueType);
    await channel.bindQueue(queue, this.#exchange.name, this.#bindingKey);
    await channel.prefetch(this.#limits.prefetch);
    return queue;
  }

  #onDelivery(channel: WireChannel, msg: Delivery): void {
    this.#inFlight++;
    void this.#handle(channel, msg).finally(() => {
      if (--this.#inFlight === 0) this.#idle?.();
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#consumer.cancel();
      if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      await this.#consumer.close();
      this.onClosed();
    })();
    return this.#closing;
  }

  async #handle(channel: WireChannel, msg: Delivery): Promise<void> {
    const props = msg.properties;
    if (typeof props.type !== "string" || props.type === "") {
      // Nothing says which event it is: not dropped unrecorded, but kept with why.
      return this.#deadLetter(channel, msg, "bad_message", "the message has no type (the event's name), so no subscriber can tell which event it is");
    }
    if (props.type !== this.#event.name) {
      // Another event of the same exchange (fanout, or a broad binding key): it is not ours to handle or to dead-letter.
      this.#skipped++;
      return settle(channel, msg);
    }
    const headers = (props.headers as Record<string, unknown> | undefined) ?? {};
    const skew = versionSkew(this.#event.service.name, this.#event.service.version, headers[CONTRACT_VERSION_HEADER], this.#versions);
    if (skew !== undefined) return this.#deadLetter(channel, msg, "incompatible_version", skew);
    const decoded = decodeBody(msg.content, props.contentType as string | undefined, this.#bus.maxMessageBytes);
    if (!decoded.ok) return this.#deadLetter(channel, msg, "bad_message", decoded.reason);
    const payload = payloadReceive(this.#event)(decoded.value);
    if (payload instanceof Invalid) return this.#deadLetter(channel, msg, "invalid_event", `invalid payload: ${formatIssues(payload.issues)}`);
    const attempt = readAttempt(headers);
    const ctx: EventContext = {
      service: this.#event.service.name,
      event: this.#event.name,
      exchange: origin(headers, ORIGIN_EXCHANGE_HEADER, msg.fields.exchange),
      routingKey: origin(headers, ORIGIN_ROUTING_KEY_HEADER, msg.fields.routingKey),
      messageId: typeof props.messageId === "string" ? props.messageId : undefined,
      publishedAt: typeof props.timestamp === "number" ? new Date(props.timestamp * 1000) : undefined,
      attempt,
      redelivered: msg.fields.redelivered,
      headers,
      group: this.#group,
      queue: this.queue,
      bindingKey: this.#bindingKey,
    };
    try {
      await handleTraced(headers, this.#handler, payload, ctx);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (attempt >= this.#limits.maxAttempts) {
        this.#bus.logger.error({ service: this.#event.service.name, event: this.#event.name, subject: this.#what, queue: this.deadLetterQueue, code: "handler_failed", attempt, err }, `handler failed ${attempt} time(s), dead-lettering to "${this.deadLetterQueue}": ${reason}`);
        return this.#deadLetter(channel, msg, "handler_failed", reason);
      }
      this.#bus.logger.warn({ service: this.#event.service.name, event: this.#event.name, subject: this.#what, attempt, err }, `handler failed (attempt ${attempt} of ${this.#limits.maxAttempts}), retrying: ${reason}`);
      return this.#retry(channel, msg, attempt);
    }
    settle(channel, msg);
  }

  /** Waits, then puts a copy with the next attempt number at the back of the queue, then acknowledges the original. */
  async #retry(channel: WireChannel, msg: Delivery, attempt: number): Promise<void> {
    const delay = Math.min(30_000, this.#limits.retryDelayMs * 2 ** (attempt - 1));
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    // After a reconnection a broadcast queue has a new name; the old channel is closed then and the original is redelivered or gone with its queue.
    await this.#republish(channel, msg, this.queue, { [ATTEMPT_HEADER]: attempt + 1 });
  }

  /** Publishes the event to the dead-letter queue with why, then acknowledges the original. */
  async #deadLetter(channel: WireChannel, msg: Delivery, reason: string, error: string): Promise<void> {
    this.#bus.logger.warn({ service: this.#event.service.name, event: this.#event.name, subject: this.#what, queue: this.deadLetterQueue, code: reason }, `dead-lettered an event to "${this.deadLetterQueue}" (${reason}: ${error.slice(0, 200)})`);
    // Declared again first: a publish to a queue deleted since subscribing would be confirmed and dropped. Dead letters are rare.
    try {
      await declareDurableQueue(channel, this.#what, this.deadLetterQueue, this.#queueType);
    } catch (err) {
      this.#bus.logger.error({ service: this.#event.service.name, event: this.#event.name, subject: this.#what, queue: this.deadLetterQueue, err }, `cannot declare "${this.deadLetterQueue}" (${(err as Error).message}); the broker will redeliver the event`);
      return;
    }
    return this.#republish(channel, msg, this.deadLetterQueue, {
      [DEAD_REASON_HEADER]: reason,
      [DEAD_ERROR_HEADER]: error.slice(0, 1000),
      [DEAD_QUEUE_HEADER]: this.queue,
      [ATTEMPT_HEADER]: readAttempt(msg.properties.headers as Record<string, unknown> | undefined),
    });
  }

  /**
   * Copies `msg` to `queue` with extra headers and acknowledges the original
   * only once the broker confirms the copy: if anything fails in between, the
   * original is redelivered (a duplicate, never a loss).
   */
  async #republish(channel: WireChannel, msg: Delivery, queue: string, extra: Record<string, unknown>): Promise<void> {
    const p = msg.properties;
    const headers = (p.headers as Record<string, unknown> | undefined) ?? {};
    const props: MessageProperties = {
      headers: {
        ...headers,
        [ORIGIN_EXCHANGE_HEADER]: origin(headers, ORIGIN_EXCHANGE_HEADER, msg.fields.exchange),
        [ORIGIN_ROUTING_KEY_HEADER]: origin(headers, ORIGIN_ROUTING_KEY_HEADER, msg.fields.routingKey),
        ...extra,
      },
      deliveryMode: p.deliveryMode === 2 ? 2 : 1,
      contentType: p.contentType as string | undefined,
      type: p.type as string | undefined,
      messageId: p.messageId as string | undefined,
      timestamp: p.timestamp as number | undefined,
    };
    try {
      await new Promise<void>((resolve, reject) => channel.publishConfirmed("", queue, msg.content, props, (err) => (err ? reject(err) : resolve())));
      settle(channel, msg);
    } catch (err) {
      this.#bus.logger.error({ service: this.#event.service.name, event: this.#event.name, subject: this.#what, queue, err }, `could not move an event to "${queue}" (${(err as Error).message}); the broker will redeliver it`);
    }
  }
}

/** Where the event was first published: the origin header a retry copy carries, else the delivery's own field. */
function origin(headers: Record<string, unknown>, name: string, delivered: string): string {
  const value = headers[name];
  return typeof value === "string" ? value : delivered;
}

/** Acknowledges `msg`; on a channel that has closed meanwhile the broker redelivers it instead. */
function settle(channel: WireChannel, msg: Delivery): void {
  channel.ack(msg);
}
