/**
 * Typed publish/subscribe on the same contracts as RPC: an {@link EventBus}
 * publishes validated, persistent events with publisher confirms to a
 * service's exchange and runs subscriptions (broadcast or consumer group).
 *
 * @see docs/PROTOCOL.md#events
 */
import { v4 as uuidv4 } from "uuid";
import { NackError, type ChannelSource, type MessageProperties, type WireChannel } from "../amqp/channel-source.js";
import { brokerRefusal, declareExchange } from "../amqp/queues.js";
import { FlowControl } from "../amqp/flow.js";
import type { EventDescriptor, ExchangeSpec, PayloadOf, ServiceDescriptor } from "../core/descriptor.js";
import { RpcError, ValidationError, describeTarget, isRpcError } from "../core/errors.js";
import { resolveEventBusOptions, type EventBusOptions as BaseEventBusOptions, type ResolvedEventBusOptions, type SubscribeOptions } from "../core/options.js";
import { CONTENT_TYPE, CONTRACT_VERSION_HEADER, tryEncodeBody } from "../core/protocol.js";
import { routingKeyFor } from "../core/routing.js";
import { inherit, type Parent } from "../core/parent.js";
import { ambientParent, inheritedTrace } from "../core/trace.js";
import { payloadCheck } from "../core/validation.js";
import { EventSubscription, composeEvents, type EventHandler, type EventRoute, type ProcessInterceptor, type Subscription } from "./subscription.js";

/** One event being published, as publish interceptors see it: validated, encoded, routed. */
export interface OutgoingEvent {
  /** The event published (its `service` is the contract). */
  readonly event: EventDescriptor<any>;
  /** The payload, after it passed its schema. */
  readonly payload: unknown;
  /** The exchange it goes to, after run-time overrides. */
  readonly exchange: string;
  /** Its routing key. */
  readonly routingKey: string;
  /** Its `message_id`. */
  readonly messageId: string;
  /**
   * Headers the event is sent with: the caller's, and whatever interceptors
   * add (e.g. trace context). Keys starting with `x-warren-` are the
   * protocol's: the contract version always wins over a value set here.
   * Only these headers are read back: changes to the other fields are ignored.
   */
  readonly headers: Record<string, string | number | boolean>;
}

/** The rest of a bus's publish chain: resolves once the broker confirmed the event, or rejects with an `RpcError`. */
export type PublishNext = (event: OutgoingEvent) => Promise<void>;

/**
 * Wraps each publish of an event bus, after the payload was validated and
 * before anything is sent. It may add headers, call `next` (once) and observe
 * or replace the outcome. Anything it throws that is not an `RpcError` fails
 * the publish with code `internal`, that error as `cause`.
 */
export type PublishInterceptor = (next: PublishNext) => PublishNext;

/** Options of an {@link EventBus}. */
export interface EventBusOptions extends BaseEventBusOptions {
  /** Run around every publish, the first outermost; see {@link PublishInterceptor}. @default none */
  publishInterceptors?: readonly PublishInterceptor[];
  /** Run around every handler run of every subscription of this bus, the first outermost; see {@link ProcessInterceptor}. @default none */
  processInterceptors?: readonly ProcessInterceptor[];
}

/** Per-publish options. */
export interface PublishOptions {
  /**
   * Extra AMQP headers (e.g. a `traceparent`). Keys starting with `x-warren-` are reserved.
   * Inside a handler of a request or event that carried a `traceparent`, events carry it (and its `tracestate`) unless set here.
   */
  headers?: Readonly<Record<string, string | number | boolean>>;
  /** The event's `message_id`, for subscribers that de-duplicate. @default a random UUID */
  messageId?: string;
  /**
   * The request or event this publish is made for — pass the handler's `ctx`:
   * when its deadline has passed (`timeout`) or its signal has fired
   * (`canceled`) the publish is refused and nothing is sent; once sent, it
   * waits for the broker's confirm as usual. On a server with `asyncContext:
   * true` publishes inside a handler inherit its context without this; `null`
   * opts one out.
   * @default none (or the handler's context on a server with `asyncContext: true`)
   */
  parent?: Parent | null;
}

/**
 * What generated publishers and subscribers call. Contract for implementations:
 *
 * 1. `publish` validates the payload first; an invalid one rejects with
 *    `invalid_event` and nothing is published.
 * 2. `publish` resolves once the broker has taken responsibility for the event
 *    (publisher confirm), or rejects with an `RpcError` (`connection_lost` when
 *    the outcome is unknown: the event may or may not have been routed).
 * 3. `subscribe` resolves once the subscription's queue is bound and consumed;
 *    each delivered event reaches the handler only after passing its schema.
 */
export interface EventTransport {
  /** Publishes one event. */
  publish<P>(event: EventDescriptor<P>, payload: P, options?: PublishOptions): Promise<void>;
  /** Subscribes `handler` to one event. */
  subscribe<P>(event: EventDescriptor<P>, handler: EventHandler<P>, options?: SubscribeOptions): Promise<Subscription>;
  /**
   * Subscribes several events of `service` through one queue, each to its
   * handler (`handlers` keyed by the events' TypeScript names; at least one).
   * Resolves like {@link subscribe}.
   */
  subscribeAll<S extends ServiceDescriptor>(service: S, handlers: EventHandlers<S>, options?: SubscribeOptions): Promise<Subscription>;
  /** Optional: compiles the payload checks of `service`'s events now rather than on the first publish; generated publishers call it when they are created. */
  prepare?(service: ServiceDescriptor): void;
}

/** Handlers for some of the events of a service, keyed by the events' TypeScript names (as `subscribeAll` takes them). */
export type EventHandlers<S extends ServiceDescriptor> = {
  readonly [K in keyof S["events"]]?: EventHandler<PayloadOf<S["events"][K]>>;
};

interface PublishChannel {
  readonly channel: WireChannel;
  /** Exchanges already declared on this channel. */
  readonly declared: Set<string>;
  /** Publishes on it the broker has not confirmed yet. */
  unconfirmed: number;
  /** No longer used for new publishes (the broker nacked one): closed once its last publish is confirmed. */
  retired: boolean;
}

const NO_PUBLISH_OPTIONS: PublishOptions = Object.freeze({});

/**
 * Publishes and subscribes to events on one connection. Pass it to generated
 * publishers and subscribers: `new OrdersPublisher(conn.events())`. Safe for
 * concurrent use; create one per process.
 */
export class EventBus implements EventTransport {
  readonly #source: ChannelSource;
  readonly #options: ResolvedEventBusOptions;
  readonly #subscriptions = new Set<EventSubscription>();
  #publisher: Promise<PublishChannel> | undefined;
  /** The channel `#publisher` resolved to, while it is the one new publishes use. */
  #current: PublishChannel | undefined;
  #closed = false;
  readonly #flow: FlowControl;
  /** The publish interceptors (composed per publish, around that publish's last step); `undefined` without any: publishing then runs none of this. */
  readonly #publishInterceptors: readonly PublishInterceptor[] | undefined;
  readonly #processInterceptors: readonly ProcessInterceptor[];

  /** @internal use `connection.events(options)`. */
  constructor(source: ChannelSource, options: EventBusOptions = {}) {
    this.#source = source;
    const { publishInterceptors, processInterceptors, ...base } = options;
    this.#options = resolveEventBusOptions(base, source.logger);
    this.#flow = new FlowControl(source);
    this.#publishInterceptors = publishInterceptors !== undefined && publishInterceptors.length > 0 ? publishInterceptors : undefined;
    this.#processInterceptors = processInterceptors ?? [];
  }

  /** See {@link EventTransport.prepare}. */
  prepare(service: ServiceDescriptor): void {
    for (const event of Object.values(service.events)) payloadCheck(event);
  }

  /** The exchange `service` publishes to, after run-time overrides. */
  exchangeOf(service: ServiceDescriptor): ExchangeSpec {
    const name = this.#options.exchanges[service.name];
    return name === undefined ? service.exchange : { name, type: service.exchange.type };
  }

  /** See {@link EventTransport.publish}. Publishes persistent events (delivery mode 2) unless the bus says otherwise. */
  publish<P>(event: EventDescriptor<P>, payload: P, options: PublishOptions = NO_PUBLISH_OPTIONS): Promise<void> {
    // Not an async function: the publish's one promise is returned as it is, without another wrapped around it.
    try {
      return this.#publish(event, payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** {@link publish}: throws what the publisher should see before anything is sent. */
  #publish<P>(event: EventDescriptor<P>, payload: P, options: PublishOptions): Promise<void> {
    const target = { service: event.service.name, method: event.name };
    if (this.#closed) throw new RpcError("canceled", `${describeTarget(target)}: the event bus is closed`, target);
    const parent = options.parent === undefined ? ambientParent() : options.parent;
    if (parent != null) inherit(parent, target, Infinity, undefined, Date.now()); // throws when the parent is done with: nothing published
    const issues = payloadCheck(event)(payload);
    if (issues !== undefined) throw new ValidationError("invalid_event", "client", issues, target);
    const reserved = options.headers === undefined ? undefined : Object.keys(options.headers).find((h) => h.toLowerCase().startsWith("x-warren-"));
    if (reserved !== undefined) throw new RpcError("invalid_event", `${describeTarget(target)}: header "${reserved}" is reserved for the protocol`, target);
    const routingKey = routingKeyFor(event, payload);
    const exchange = this.exchangeOf(event.service);
    const encoded = tryEncodeBody(payload);
    if (!encoded.ok) throw new RpcError("invalid_event", `${describeTarget(target)}: the payload ${encoded.reason}`, target);
    const messageId = options.messageId ?? uuidv4();
    const deliver = (headers: PublishOptions["headers"]) => this.#deliver(target, exchange, routingKey, encoded.body, event.name, messageId, eventHeaders(headers, event.service.version));
    const interceptors = this.#publishInterceptors;
    if (interceptors === undefined) return deliver(options.headers);
    const outgoing: OutgoingEvent = { event, payload, exchange: exchange.name, routingKey, messageId, headers: { ...options.headers } };
    const failed = (err: unknown): never => {
      throw isRpcError(err) ? err : new RpcError("internal", `${describeTarget(target)}: a publish interceptor failed: ${(err as Error)?.message ?? String(err)}`, { ...target, cause: err });
    };
    let chained: Promise<void>;
    try {
      chained = Promise.resolve(composeEvents<PublishNext>(interceptors, (o) => deliver(o.headers))(outgoing));
    } catch (err) {
      return failed(err);
    }
    return chained.then(undefined, failed);
  }

  /** Sends one encoded event: once, and once more after a nack; rejects with what the publisher should see. */
  #deliver(target: Target, exchange: ExchangeSpec, routingKey: string, body: Buffer, type: string, messageId: string, headers: Record<string, unknown>): Promise<void> {
    const properties: MessageProperties = {
      deliveryMode: this.#options.persistent ? 2 : 1,
      contentType: CONTENT_TYPE,
      type,
      messageId,
      timestamp: Math.floor(Date.now() / 1000),
      headers,
    };
    // One promise per publish, settled from the confirm callback: no promise chain per step on the hot path.
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const outcome = (err: unknown, retry: boolean): void => {
        if (settled) return; // without confirms the publish resolved when sent; its later confirm changes nothing
        if (err === null) {
          settled = true;
          resolve();
        } else if (retry && err instanceof NackError) {
          // A nack says the event was not enqueued, and the nacked channel is retired: sending it once more, on a fresh channel, cannot duplicate it.
          this.#send(target, exchange, routingKey, body, properties, (again) => outcome(again, false));
        } else {
          settled = true;
          reject(isRpcError(err) ? err : unconfirmed(err, target, exchange.name));
        }
      };
      this.#send(target, exchange, routingKey, body, properties, (err) => outcome(err, true));
    });
  }

  /**
   * Publishes one event on the current publish channel and calls `done` with
   * `null` once confirmed (at once without confirms), a setup error
   * (`RpcError`), or the raw confirm failure. While the channel is open, its
   * exchange declared and publishing not held back, it publishes at once.
   */
  #send(target: Target, exchange: ExchangeSpec, routingKey: string, body: Buffer, properties: MessageProperties, done: (err: unknown) => void): void {
    const open = this.#current;
    if (open !== undefined && open.declared.has(exchange.name) && this.#flow.open) this.#publishOn(open, exchange.name, routingKey, body, properties, done);
    else void this.#sendAfterSetup(target, exchange, routingKey, body, properties, done).catch(done);
  }

  /** {@link #send} when the channel must be opened, the exchange declared, or publishing waits for flow control first. */
  async #sendAfterSetup(target: Target, exchange: ExchangeSpec, routingKey: string, body: Buffer, properties: MessageProperties, done: (err: unknown) => void): Promise<void> {
    let open: PublishChannel;
    try {
      open = await this.#publishChannel();
      if (!open.declared.has(exchange.name)) {
        await declareExchange(open.channel, describeTarget(target), exchange.name, exchange.type);
        open.declared.add(exchange.name);
      }
    } catch (err) {
      if (isRpcError(err) && err.code !== "connection_lost") return done(err);
      return done(new RpcError("connection_lost", `${describeTarget(target)}: cannot publish to exchange "${exchange.name}": ${(err as Error).message}`, { ...target, cause: err }));
    }
    // Back-pressure: wait while the socket buffer is full or the broker blocks the connection (resource alarm).
    if (!this.#flow.open) await this.#flow.wait();
    this.#publishOn(open, exchange.name, routingKey, body, properties, done);
  }

  /** Publishes on `open`; `done` as for {@link #send}. */
  #publishOn(open: PublishChannel, exchange: string, routingKey: string, body: Buffer, properties: MessageProperties, done: (err: unknown) => void): void {
    let flushed: boolean;
    try {
      flushed = open.channel.publishConfirmed(exchange, routingKey, body, properties, (err) => {
        this.#confirmed(open, err);
        done(err);
      });
    } catch (err) {
      return done(err);
    }
    open.unconfirmed++;
    this.#flow.published(open.channel, flushed);
    if (!this.#options.confirm) done(null);
  }

  /**
   * See {@link EventTransport.subscribe}. The subscription acknowledges an
   * event after its handler succeeds, retries a failing handler up to
   * `maxAttempts`, dead-letters what it cannot handle, and resumes by itself
   * after a lost connection.
   * @throws TypeError / RangeError for unusable options (bad binding key, group or queueType).
   */
  subscribe<P>(event: EventDescriptor<P>, handler: EventHandler<P>, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closed) return Promise.reject(new RpcError("canceled", `${describeTarget({ service: event.service.name, method: event.name })}: the event bus is closed`));
    return this.#start(event.service, [{ event, handler }], options);
  }

  /**
   * See {@link EventTransport.subscribeAll}: one queue (`<exchange>.<group>`
   * for a group) bound with each handled event's routing key, one consumer and
   * one prefetch; each event goes to its own handler, and events of the
   * service without a handler here are acknowledged and skipped.
   */
  subscribeAll<S extends ServiceDescriptor>(service: S, handlers: EventHandlers<S>, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closed) return Promise.reject(new RpcError("canceled", `${service.name}: the event bus is closed`));
    const routes: EventRoute[] = [];
    for (const [key, handler] of Object.entries(handlers as Record<string, EventHandler<any> | undefined>)) {
      if (handler === undefined) continue;
      const event = service.events[key];
      if (event === undefined) return Promise.reject(new TypeError(`warren: ${service.name} has no event "${key}" (its events: ${Object.keys(service.events).join(", ") || "none"})`));
      if (typeof handler !== "function") return Promise.reject(new TypeError(`warren: ${service.name}.${key}: the handler is not a function`));
      routes.push({ event, handler });
    }
    return this.#start(service, routes, options);
  }

  async #start(service: ServiceDescriptor, routes: readonly EventRoute[], options: SubscribeOptions): Promise<Subscription> {
    const subscription: EventSubscription = new EventSubscription(this.#source, service, routes, this.exchangeOf(service), options, this.#options, this.#processInterceptors, () =>
      this.#subscriptions.delete(subscription),
    );
    await subscription.start();
    this.#subscriptions.add(subscription);
    return subscription;
  }

  /** @internal Sends every subscription's held acks now (see {@link SubscribeOptions.ackDelayMs}); for warren/testing's `idle()`. */
  flushAcks(): void {
    for (const subscription of this.#subscriptions) subscription.flushAcks();
  }

  /** Stops every subscription gracefully (in-flight handlers finish), then closes the publish channel. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
    const publisher = this.#publisher;
    this.#publisher = undefined;
    if (publisher) await publisher.then(({ channel }) => channel.close()).catch(() => {});
  }

  /**
   * One publish on `open` was confirmed (`err` null) or not. After a nack the
   * channel is retired: a channel opened while a quorum queue's leader was
   * being elected can nack every publish for as long as it lives, while a
   * fresh one works. New publishes go out on a fresh channel; the retired one
   * closes once its last publish is confirmed.
   */
  #confirmed(open: PublishChannel, err: Error | null): void {
    open.unconfirmed--;
    if (err instanceof NackError && !open.retired) {
      open.retired = true;
      this.#options.logger.warn({}, "event bus: the broker refused an event (basic.nack); new events go out on a fresh channel");
      if (this.#current === open) {
        this.#publisher = undefined;
        this.#current = undefined;
      }
    }
    if (open.retired && open.unconfirmed === 0) void open.channel.close();
  }

  /** The confirm channel publishes go out on, opened on first use and again after it closes or is retired. */
  #publishChannel(): Promise<PublishChannel> {
    if (this.#publisher === undefined) {
      const opening = this.#source.open("confirm").then((channel): PublishChannel => {
        const open: PublishChannel = { channel, declared: new Set(), unconfirmed: 0, retired: false };
        channel.onClose(() => {
          if (this.#publisher === opening) this.#publisher = undefined;
          if (this.#current === open) this.#current = undefined;
        });
        if (this.#publisher === opening) this.#current = open;
        return open;
      });
      this.#publisher = opening;
      opening.catch(() => {
        if (this.#publisher === opening) this.#publisher = undefined;
      });
    }
    return this.#publisher;
  }
}

type Target = { service: string; method: string };

/** Why an event was not confirmed, as the publisher should see it: refused (`rejected`, `access_refused`) or unknown (`connection_lost`). */
function unconfirmed(err: unknown, target: Target, exchange: string): RpcError {
  const what = describeTarget(target);
  if (err instanceof NackError) {
    return new RpcError("rejected", `${what}: the broker refused the event (basic.nack); it was not enqueued, publishing it again later may succeed`, { ...target, cause: err });
  }
  const refused = brokerRefusal(err);
  if (refused?.code === 403) {
    return new RpcError("access_refused", `${what}: the broker refused to take the event on exchange "${exchange}" (${refused.detail}); the user needs the "write" permission on it`, { ...target, cause: err });
  }
  return new RpcError("connection_lost", `${what}: the broker did not confirm the event (${(err as Error).message}); it may or may not have been published`, { ...target, cause: err });
}

/** The headers of an event: the caller's, the trace headers of the handler publishing it unless the caller set a traceparent, and the contract version. */
function eventHeaders(headers: PublishOptions["headers"], version: string): Record<string, unknown> {
  return { ...inheritedTrace(headers), ...headers, [CONTRACT_VERSION_HEADER]: version };
}
