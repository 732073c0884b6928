/**
 * One subscription to one event, or to several events of one service through
 * one queue (one consumer, one prefetch; each event to its typed handler): its
 * queue (exclusive for broadcast, durable and shared for a consumer group),
 * bound to the service's exchange; each
 * delivery is decoded, validated, handled, and acknowledged only after the
 * handler succeeds. A failed event waits for its retry on the broker (a copy
 * in a wait queue whose messages expire back into the subscription's queue),
 * then is dead-lettered with the reason.
 */
import type { ChannelSource, Delivery, MessageProperties, WireChannel } from "../amqp/channel-source.js";
import { reconcileBindings } from "./bindings.js";
import { AckBatcher } from "../amqp/acks.js";
import { KeptConsumer } from "../amqp/consumer.js";
import { logInfo } from "../core/logging.js";
import { RecentKeys, seconds } from "../core/overruns.js";
import { brokerRefusal, declareDurableQueue, declareExchange, declareWaitQueue, type WaitQueueSpec } from "../amqp/queues.js";
import type { EventDescriptor, ExchangeSpec, ServiceDescriptor } from "../core/descriptor.js";
import { RpcError, describeTarget, formatIssues } from "../core/errors.js";
import {
  checkQueueType,
  resolveSubscribeLimits,
  retryDelayOf,
  retryDelaysOf,
  type QueueType,
  type ResolvedEventBusOptions,
  type ResolvedSubscribeLimits,
  type SubscribeOptions,
} from "../core/options.js";
import {
  ATTEMPT_HEADER,
  BROADCAST_DEAD_MAX_LENGTH,
  BROADCAST_DEAD_TTL_MS,
  DEAD_ERROR_HEADER,
  DEAD_QUEUE_HEADER,
  CONTRACT_VERSION_HEADER,
  DEAD_REASON_HEADER,
  ORIGIN_EXCHANGE_HEADER,
  ORIGIN_ROUTING_KEY_HEADER,
  RETRY_QUEUE_INFIX,
  decodeBody,
  describeFailedCall,
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
  /** With `handlerTimeoutMs`: when this run of the handler is abandoned (ms since the epoch). Pass the context as `parent` to calls made for the event. */
  readonly deadline?: number | undefined;
  /** With `handlerTimeoutMs`: fires when this run is abandoned (its timeout); pass it to I/O the handler starts. */
  readonly signal?: AbortSignal | undefined;
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
  /**
   * The wait queues its retries may go through, one per distinct delay,
   * shortest first (`<queue>.retry.<ms>`; a broadcast subscriber's are named
   * after its current queue and change with it). Each is declared when first
   * needed; empty with `maxAttempts: 1` or `retryDelayMs: 0`.
   */
  readonly retryQueues: readonly string[];
  /** Events currently being handled. */
  readonly inFlight: number;
  /** Messages of other event types that reached this queue (e.g. on a fanout exchange), acknowledged and skipped. */
  readonly skipped: number;
  /**
   * Stops consuming, lets in-flight handlers finish, then closes the channel.
   * Events waiting for a retry wait on the broker, not here: `close()` does
   * not wait for them, and a group's come back to its queue for the next
   * member. A broadcast queue is deleted by the broker (and its wait queues a
   * minute after their delay).
   */
  close(): Promise<void>;
}

/** One event a subscription handles: its descriptor and handler. */
export interface EventRoute {
  readonly event: EventDescriptor<any>;
  readonly handler: EventHandler<any>;
}

/** An {@link EventRoute} as the subscription keeps it: the handler inside the process interceptors (composed once), and its binding key. */
interface Route {
  readonly event: EventDescriptor<any>;
  readonly handler: ProcessNext;
  readonly bindingKey: string;
}

/** @internal created by {@link EventBus.subscribe} (one event) and {@link EventBus.subscribeAll} (several). */
export class EventSubscription implements Subscription {
  readonly deadLetterQueue: string;
  readonly #service: ServiceDescriptor;
  /** By event wire name (the message's `type`). */
  readonly #routes = new Map<string, Route>();
  /** Names derived names start with: `<exchange>.<event>` for one event, `<exchange>` for several. */
  readonly #base: string;
  readonly #exchange: ExchangeSpec;
  readonly #group: string | undefined;
  readonly #bus: ResolvedEventBusOptions;
  readonly #limits: ResolvedSubscribeLimits;
  readonly #groupQueue: string | undefined;
  readonly #queueType: QueueType;
  readonly #consumer: KeptConsumer;
  readonly #source: ChannelSource;
  readonly #what: string;
  /** True for the default dead-letter queue of broadcast subscribers: shared, bounded, declared when first needed. */
  readonly #sharedDeadLetters: boolean;
  /** Delays whose wait queue this group subscription declared (declared again on each resume, so a mismatch stops it there, not in a loop). */
  readonly #waitDelays = new Set<number>();
  /** The shared dead-letter queue turned out to exist with other arguments (logged once). */
  #deadArgsWarned = false;
  #inFlight = 0;
  #skipped = 0;
  /** Publishers' contract versions seen, and why each is refused (`undefined`: compatible). */
  readonly #versions = new Map<string, string | undefined>();
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** The events being handled. */
  readonly #runs = new Set<EventRun>();
  /** Per channel (delivery tags are per channel): its acks, batched per turn; the channel's loss is watched from its first delivery (see {@link orphan}). */
  readonly #acks = new WeakMap<WireChannel, AckBatcher<Delivery>>();
  /** The batcher of the latest channel, flushed before a graceful close. */
  #currentAcks: AckBatcher<Delivery> | undefined;
  /** By event key: runs whose channel was lost, waiting for their redelivered copy. */
  readonly #orphans = new Map<string, EventRun>();
  /** Events handled after their channel was lost: a redelivered copy is acknowledged, not run again. */
  readonly #handledAfterLoss = new RecentKeys();

  constructor(
    source: ChannelSource,
    service: ServiceDescriptor,
    routes: readonly EventRoute[],
    exchange: ExchangeSpec,
    options: SubscribeOptions,
    bus: ResolvedEventBusOptions,
    interceptors: readonly ProcessInterceptor[],
    private readonly onClosed: () => void,
  ) {
    this.#source = source;
    this.#service = service;
    this.#exchange = exchange;
    const single = routes.length === 1 ? routes[0]!.event.name : undefined;
    this.#what =
      single === undefined
        ? `${service.name} events (${routes.map((r) => r.event.name).join(", ")}) subscriber${options.group === undefined ? "" : ` (group ${options.group})`}`
        : `${describeTarget({ service: service.name, method: single })} subscriber${options.group === undefined ? "" : ` (group ${options.group})`}`;
    if (routes.length === 0) throw new TypeError(`warren: ${service.name} subscriber: no event handler was given`);
    if (single === undefined && options.bindingKey !== undefined) {
      throw new TypeError(`warren: ${this.#what}: "bindingKey" applies to a subscription to one event; a subscription to several binds each event's routing key`);
    }
    for (const { event, handler } of routes) {
      if (event.service !== service) throw new TypeError(`warren: ${this.#what}: event ${event.name} is not an event of ${service.name}`);
      this.#routes.set(event.name, {
        event,
        handler: interceptors.length === 0 ? (handler as ProcessNext) : composeEvents<ProcessNext>(interceptors, handler as ProcessNext),
        bindingKey: checkBindingKey(options.bindingKey ?? defaultBindingKey(event, exchange.type), exchange.type),
      });
      payloadReceive(event); // compile now, not on the first event
    }
    this.#base = single === undefined ? exchange.name : `${exchange.name}.${single}`;
    this.#group = options.group;
    this.#bus = bus;
    this.#limits = resolveSubscribeLimits(options);
    if (options.queue !== undefined && options.group === undefined) {
      throw new TypeError(`warren: ${this.#what}: "queue" names a consumer group's shared queue; give "group" too (a subscriber without a group gets a queue of its own, named by the broker)`);
    }
    this.#groupQueue = options.group === undefined ? undefined : (options.queue ?? `${this.#base}.${options.group}`);
    this.deadLetterQueue = options.deadLetterQueue ?? (this.#groupQueue === undefined ? `${this.#base}.dead` : `${this.#groupQueue}.dead`);
    this.#sharedDeadLetters = options.deadLetterQueue === undefined && this.#groupQueue === undefined;
    this.#queueType = checkQueueType(this.#what, options.queueType);
    this.#consumer = new KeptConsumer(
      this.#what,
      {
        open: () => source.open("confirm"),
        prepare: (channel) => this.#prepare(channel),
        deliver: (channel, msg) => this.#onDelivery(channel, msg),
        connectionClosed: () => source.closed,
        overran: (channel) => this.#overrun(channel),
      },
      bus.logger,
    );
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  /** Log fields of this subscription, and of the event `msg` when given. */
  #fields(msg?: Delivery): Record<string, unknown> {
    const single = this.#routes.size === 1 ? this.#routes.keys().next().value : undefined;
    const event = typeof msg?.properties.type === "string" ? msg.properties.type : single;
    return { service: this.#service.name, ...(event === undefined ? {} : { event }), subject: this.#what };
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get skipped(): number {
    return this.#skipped;
  }

  get retryQueues(): readonly string[] {
    const queue = this.queue;
    return queue === "" ? [] : retryDelaysOf(this.#limits).map((delay) => this.#waitQueueOf(queue, delay));
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
    // The broadcast subscribers' shared dead-letter queue outlives them all: it is created by the first dead letter, not by every subscriber.
    if (!this.#sharedDeadLetters) await declareDurableQueue(channel, this.#what, this.deadLetterQueue, this.#queueType);
    for (const delay of this.#waitDelays) await declareWaitQueue(channel, this.#what, this.#waitQueueOf(queue, delay), this.#waitSpec(queue, delay));
    const keys = [...new Set([...this.#routes.values()].map((r) => r.bindingKey))];
    if (this.#groupQueue === undefined) for (const key of keys) await channel.bindQueue(queue, this.#exchange.name, key);
    else {
      // A group queue is bound to what its subscriptions ask for now, not to everything they ever asked for (src/events/bindings.ts).
      const changed = await reconcileBindings(this.#source, this.#what, queue, this.#queueType, this.#exchange.name, keys);
      if (changed !== undefined) logInfo(this.#bus.logger, { ...this.#fields(), queue }, changed);
    }
    await channel.prefetch(this.#limits.prefetch);
    return queue;
  }

  /** One delivery (`again`: one recorded before, whose handling was left to this copy). */
  #onDelivery(channel: WireChannel, msg: Delivery, again = false): void {
    let acks = this.#acks.get(channel);
    if (acks === undefined) {
      // A quarter of the prefetch at most: held acks leave most of the broker's window for this consumer open
      // (measured: holding half of 16 cost small events at 128 in flight up to 8%; a quarter cost nothing).
      acks = new AckBatcher<Delivery>(channel, { count: this.#limits.prefetch / 4, delayMs: this.#limits.ackDelayMs });
      this.#acks.set(channel, acks);
      this.#currentAcks = acks;
      channel.onClose(() => this.#orphan(channel));
    }
    if (!again) acks.delivered(msg.fields.deliveryTag);
    if (msg.fields.redelivered && this.#takeOver(channel, msg)) return;
    const run: EventRun = { channel, msg, first: msg, key: undefined, startedAt: Date.now(), redirected: false };
    this.#runs.add(run);
    this.#inFlight++;
    // Synchronous from delivery to ack when the handler is: no promise per event unless something awaits.
    let pending: Promise<void> | undefined;
    try {
      pending = this.#handle(run);
    } catch (err) {
      // A failure of warren's own checks, not of the handler: retried, then dead-lettered, like one.
      pending = this.#failed(run, readAttempt(msg.properties.headers as Record<string, unknown> | undefined), err);
    }
    if (pending === undefined) this.#finished(run);
    else void pending.finally(() => this.#finished(run));
  }

  /** `run` is over (handled, retried, dead-lettered, or given up on). */
  #finished(run: EventRun): void {
    this.#runs.delete(run);
    // Lost and never redelivered here: its copy, when it comes, is handled anew.
    if (run.key !== undefined && this.#orphans.get(run.key) === run) this.#orphans.delete(run.key);
    // A copy took its place but got no outcome (the run ended before its handler): handle the copy now.
    if (run.msg !== run.first && !run.redirected && !run.channel.closed) this.#onDelivery(run.channel, run.msg, true);
    if (--this.#inFlight === 0) this.#idle?.();
  }

  /**
   * `channel` closed: its events still being handled become orphans, whose
   * redelivered copies are taken over instead of run again; those handled but
   * whose ack was still held are acknowledged unrun when they come back.
   */
  #orphan(channel: WireChannel): void {
    const held = this.#acks.get(channel)?.discard() ?? [];
    if (this.#closing !== undefined) return;
    for (const msg of held) {
      const key = eventKey(msg);
      if (key !== undefined) this.#handledAfterLoss.add(key);
    }
    for (const run of this.#runs) {
      if (run.channel !== channel) continue;
      // Computed now, not per event: an event's key matters only once its channel is lost.
      run.key ??= eventKey(run.msg);
      if (run.key !== undefined) this.#orphans.set(run.key, run);
    }
  }

  /**
   * A redelivered event that this subscriber is still handling (its channel
   * was lost meanwhile) or has handled since: taken over or acknowledged, not
   * run again. True when it was one of those.
   */
  #takeOver(channel: WireChannel, msg: Delivery): boolean {
    if (this.#orphans.size === 0 && this.#handledAfterLoss.size === 0) return false;
    const key = eventKey(msg);
    if (key === undefined) return false;
    const run = this.#orphans.get(key);
    if (run !== undefined) {
      this.#orphans.delete(key);
      run.channel = channel; // the handler's outcome goes to this copy
      run.msg = msg;
      return true;
    }
    if (!this.#handledAfterLoss.take(key)) return false;
    logInfo(this.#bus.logger, this.#fields(msg), "a redelivered event was handled already (its channel was lost while its handler ran); acknowledged, not run again");
    this.#settle(channel, msg);
    return true;
  }

  /**
   * `run`'s handler is done: its outcome goes to `run.channel`/`run.msg` from
   * now on (the copy that took its place if one did, else its first
   * delivery). A lost event not redelivered yet is let go of: when `handled`,
   * its copy will be acknowledged unrun; otherwise handled anew.
   */
  #outcome(run: EventRun, handled: boolean): void {
    run.redirected = true;
    if (run.key !== undefined && this.#orphans.get(run.key) === run) {
      this.#orphans.delete(run.key);
      if (handled) this.#handledAfterLoss.add(run.key);
    }
  }

  /** What was being handled on `channel`, which the broker closed for its consumer timeout: for the one log line of {@link KeptConsumer}. */
  #overrun(channel: WireChannel): string {
    const runs = [...this.#runs].filter((run) => run.channel === channel);
    if (runs.length === 0) return "no event of this subscriber was unfinished on it";
    const oldest = runs.reduce((a, b) => (b.startedAt < a.startedAt ? b : a));
    const others = runs.length - 1;
    return (
      `the ${String(oldest.msg.properties.type ?? "event")} handler had run for ${seconds(Date.now() - oldest.startedAt)} (message_id ${String(oldest.msg.properties.messageId ?? "none")})` +
      (others > 0 ? ` and ${others} other event(s) were in flight on the channel` : "") +
      `; the handlers run on, and their redelivered copies are acknowledged or retried by their outcome, not run again`
    );
  }

  /** Acknowledges `msg` (with others finished in this turn: one `multiple` ack); on a channel that has closed meanwhile the broker redelivers it instead. */
  #settle(channel: WireChannel, msg: Delivery): void {
    const acks = this.#acks.get(channel);
    if (acks === undefined) channel.ack(msg);
    else acks.done(msg.fields.deliveryTag, msg);
  }

  /** @internal Sends the acks held for handled events now (warren/testing's `idle()`: finished handlers leave nothing unacknowledged). */
  flushAcks(): void {
    this.#currentAcks?.flush();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#consumer.cancel();
      if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      this.#currentAcks?.flush(); // the last events' acks go out before the channel closes
      await this.#consumer.close();
      this.onClosed();
    })();
    return this.#closing;
  }

  /**
   * Decodes, checks and handles `run`'s event, then acknowledges, retries or
   * dead-letters it. Returns undefined when all of it happened now (a
   * synchronous handler that succeeded, an event of another type), else a
   * promise that settles once it has.
   */
  #handle(run: EventRun): Promise<void> | undefined {
    const { channel, msg } = run;
    const props = msg.properties;
    if (typeof props.type !== "string" || props.type === "") {
      // Nothing says which event it is: not dropped unrecorded, but kept with why.
      return this.#deadLetter(channel, msg, "bad_message", "the message has no type (the event's name), so no subscriber can tell which event it is");
    }
    const route = this.#routes.get(props.type);
    if (route === undefined) {
      // Another event of the same exchange (fanout, or a broad binding key): it is not ours to handle or to dead-letter.
      this.#skipped++;
      this.#settle(channel, msg);
      return undefined;
    }
    const headers = (props.headers as Record<string, unknown> | undefined) ?? {};
    const skew = versionSkew(this.#service.name, this.#service.version, headers[CONTRACT_VERSION_HEADER], this.#versions);
    if (skew !== undefined) return this.#deadLetter(channel, msg, "incompatible_version", skew);
    const decoded = decodeBody(msg.content, props.contentType as string | undefined, this.#bus.maxMessageBytes);
    if (!decoded.ok) return this.#deadLetter(channel, msg, "bad_message", decoded.reason);
    const payload = payloadReceive(route.event)(decoded.value);
    if (payload instanceof Invalid) return this.#deadLetter(channel, msg, "invalid_event", `invalid payload: ${formatIssues(payload.issues)}`);
    const attempt = readAttempt(headers);
    const timeoutMs = this.#limits.handlerTimeoutMs;
    const abandon = timeoutMs === undefined ? undefined : new AbortController();
    // One literal, every key always present: the same shape for every event.
    const ctx: EventContext = {
      service: this.#service.name,
      event: route.event.name,
      exchange: origin(headers, ORIGIN_EXCHANGE_HEADER, msg.fields.exchange),
      routingKey: origin(headers, ORIGIN_ROUTING_KEY_HEADER, msg.fields.routingKey),
      messageId: typeof props.messageId === "string" ? props.messageId : undefined,
      publishedAt: typeof props.timestamp === "number" ? new Date(props.timestamp * 1000) : undefined,
      attempt,
      redelivered: msg.fields.redelivered,
      headers,
      group: this.#group,
      queue: this.queue,
      bindingKey: route.bindingKey,
      deadline: abandon === undefined ? undefined : Date.now() + timeoutMs!,
      signal: abandon?.signal,
    };
    let result: void | Promise<void>;
    try {
      result = handleTraced(headers, route.handler, payload, ctx);
    } catch (err) {
      return this.#failed(run, attempt, err);
    }
    if (abandon !== undefined) result = withTimeout(result, abandon, timeoutMs!, route.event.name);
    else if (!isThenable(result)) {
      this.#succeeded(run);
      return undefined;
    }
    return (result as Promise<void>).then(
      () => this.#succeeded(run),
      (err: unknown) => this.#failed(run, attempt, err),
    );
  }

  /** The handler succeeded: acknowledge (the copy that took the event's place, if one did). */
  #succeeded(run: EventRun): void {
    this.#outcome(run, true);
    this.#settle(run.channel, run.msg);
  }

  /** The handler failed on `attempt`: retry, or dead-letter after the last attempt. */
  #failed(run: EventRun, attempt: number, err: unknown): Promise<void> {
    this.#outcome(run, false);
    const { channel, msg } = run;
    const reason = err instanceof Error ? err.message : String(err);
    // A call or publish the handler made failed: the line says so, with its code as a field and no stack (it names the call and why).
    const failedCall = describeFailedCall(err);
    const about = failedCall === undefined ? { err } : { cause: (err as RpcError).code };
    if (attempt >= this.#limits.maxAttempts) {
      this.#bus.logger.error({ ...this.#fields(msg), queue: this.deadLetterQueue, code: "handler_failed", attempt, ...about }, `handler failed ${attempt} time(s), dead-lettering to "${this.deadLetterQueue}": ${failedCall ?? reason}`);
      return this.#deadLetter(channel, msg, "handler_failed", reason);
    }
    this.#bus.logger.warn({ ...this.#fields(msg), attempt, ...about }, `handler failed (attempt ${attempt} of ${this.#limits.maxAttempts}), retrying: ${failedCall ?? reason}`);
    return this.#retry(channel, msg, attempt);
  }

  /**
   * Puts a copy with the next attempt number in the wait queue of its delay
   * (or, with no delay, at the back of the queue), then acknowledges the
   * original: the broker holds the wait, so the event takes no prefetch slot
   * meanwhile, and a group's retry outlives this subscriber.
   */
  async #retry(channel: WireChannel, msg: Delivery, attempt: number): Promise<void> {
    const delay = retryDelayOf(this.#limits, attempt);
    // After a reconnection a broadcast queue has a new name; the old channel is closed then and the original is redelivered or gone with its queue.
    const queue = this.queue;
    const next = { [ATTEMPT_HEADER]: attempt + 1 };
    if (delay === 0) return this.#republish(channel, msg, queue, next);
    const wait = this.#waitQueueOf(queue, delay);
    // Remembered before the declaration: one refused (closing the channel) is declared again at the resume, which then stops with setup_failed.
    if (this.#groupQueue !== undefined) this.#waitDelays.add(delay);
    // Declared each time: a publish to a queue deleted meanwhile would be confirmed and dropped (and a broadcast wait queue's lease is renewed).
    try {
      await declareWaitQueue(channel, this.#what, wait, this.#waitSpec(queue, delay));
    } catch (err) {
      this.#bus.logger.error({ ...this.#fields(msg), queue: wait, err }, `cannot declare "${wait}" (${(err as Error).message}); the broker will redeliver the event`);
      return;
    }
    return this.#republish(channel, msg, wait, next);
  }

  /** The wait queue for `delay` of `queue`: `<queue>.retry.<delay>`; a broadcast queue's name (`amq.gen-…`, a prefix clients may not declare) is put after the event's. */
  #waitQueueOf(queue: string, delay: number): string {
    const base = this.#groupQueue === undefined ? `${this.#base}.${queue.replace(/^amq\./, "")}` : queue;
    return `${base}${RETRY_QUEUE_INFIX}${delay}`;
  }

  #waitSpec(queue: string, delay: number): WaitQueueSpec {
    return { delayMs: delay, target: queue, kind: this.#groupQueue === undefined ? "exclusive" : this.#queueType };
  }

  /**
   * Declares the dead-letter queue before a dead letter goes there. The shared
   * one of broadcast subscribers is bounded, and declared on a channel of its
   * own: if it exists with other arguments (made by an older warren, without
   * bounds) it is used as it is, and the refusal costs a spare channel, not
   * the subscription's.
   */
  async #declareDeadLetterQueue(channel: WireChannel): Promise<void> {
    if (!this.#sharedDeadLetters) return declareDurableQueue(channel, this.#what, this.deadLetterQueue, this.#queueType);
    const spare = await this.#source.open();
    try {
      await declareDurableQueue(spare, this.#what, this.deadLetterQueue, this.#queueType, { "x-max-length": BROADCAST_DEAD_MAX_LENGTH, "x-message-ttl": BROADCAST_DEAD_TTL_MS });
    } catch (err) {
      if (!(err instanceof RpcError && err.code === "setup_failed")) throw err;
      if (!this.#deadArgsWarned) {
        this.#deadArgsWarned = true;
        this.#bus.logger.warn({ ...this.#fields(), queue: this.deadLetterQueue }, `"${this.deadLetterQueue}" exists with other arguments than the bounded dead-letter queue of broadcast subscribers (${brokerRefusal(err.cause)?.detail ?? err.message}); dead letters go there as it is (delete it once empty to get the bounds)`);
      }
    } finally {
      await spare.close().catch(() => {});
    }
  }

  /** Publishes the event to the dead-letter queue with why, then acknowledges the original. */
  async #deadLetter(channel: WireChannel, msg: Delivery, reason: string, error: string): Promise<void> {
    this.#bus.logger.warn({ ...this.#fields(msg), queue: this.deadLetterQueue, code: reason }, `dead-lettered an event to "${this.deadLetterQueue}" (${reason}: ${error.slice(0, 200)})`);
    // Declared again first: a publish to a queue deleted since subscribing would be confirmed and dropped. Dead letters are rare.
    try {
      await this.#declareDeadLetterQueue(channel);
    } catch (err) {
      this.#bus.logger.error({ ...this.#fields(msg), queue: this.deadLetterQueue, err }, `cannot declare "${this.deadLetterQueue}" (${(err as Error).message}); the broker will redeliver the event`);
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
        ...withoutBrokerHeaders(headers),
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
      this.#settle(channel, msg);
    } catch (err) {
      this.#bus.logger.error({ ...this.#fields(msg), queue, err }, `could not move an event to "${queue}" (${(err as Error).message}); the broker will redeliver it`);
    }
  }
}

/** One event being handled: where its outcome goes (a redelivered copy replaces the first delivery after a channel loss). */
interface EventRun {
  /** Where its outcome goes: the channel and delivery of its copy after a take-over, else of its first delivery. */
  channel: WireChannel;
  msg: Delivery;
  /** The delivery that started it. */
  readonly first: Delivery;
  /** {@link eventKey} of the delivery, computed once its channel is lost (undefined before, and without a `message_id`). */
  key: string | undefined;
  readonly startedAt: number;
  /** Its handler is done and its outcome went to {@link channel}/{@link msg} (see `#outcome`). */
  redirected: boolean;
}

/** An event's identity across redeliveries: its `message_id` and attempt (a retry copy keeps the id, with the next attempt); undefined without a `message_id`. */
function eventKey(msg: Delivery): string | undefined {
  const id = msg.properties.messageId;
  if (typeof id !== "string" || id === "") return undefined;
  return `${id}\u0000${readAttempt(msg.properties.headers as Record<string, unknown> | undefined)}\u0000${msg.properties.type as string}`;
}

/**
 * Headers the broker sets on one hop of a message (dead-lettering's `x-death`
 * and `x-first-death-*`, a quorum queue's `x-delivery-count`): a copy warren
 * publishes is a new message, so they are left out of it. The attempt number
 * is warren's own header.
 */
const BROKER_HOP_HEADERS = new Set(["x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count"]);

function withoutBrokerHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) if (!BROKER_HOP_HEADERS.has(name)) kept[name] = value;
  return kept;
}

/** Where the event was first published: the origin header a retry copy carries, else the delivery's own field. */
function origin(headers: Record<string, unknown>, name: string, delivered: string): string {
  const value = headers[name];
  return typeof value === "string" ? value : delivered;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === "function";
}

/**
 * `run`, or a `timeout` failure once `ms` have passed (aborting `abandon`,
 * the handler's `ctx.signal`): the run then counts as failed (retried, then
 * dead-lettered) and what it does later is ignored.
 */
async function withTimeout(run: void | Promise<void>, abandon: AbortController, ms: number, event: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new RpcError("timeout", `the ${event} handler did not finish within handlerTimeoutMs (${ms} ms)`);
      reject(err); // first: a handler that settles as its signal fires must not win the race
      abandon.abort(err);
    }, ms);
  });
  try {
    await Promise.race([run, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}


