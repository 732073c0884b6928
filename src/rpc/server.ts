/**
 * The service side: consumes a service's queue with a prefetch, validates each
 * request, runs its handler, validates the result, publishes the reply, and
 * only then acknowledges the request (at-least-once).
 */
import { AckBatcher } from "../amqp/acks.js";
import type { ChannelSource, Delivery, WireChannel } from "../amqp/channel-source.js";
import { KeptConsumer } from "../amqp/consumer.js";
import { declareDurableQueue } from "../amqp/queues.js";
import type { Code } from "../core/codes.js";
import type { MethodDescriptor, ServiceDescriptor } from "../core/descriptor.js";
import { RpcError, ValidationError, formatIssues, isRpcError, type ValidationIssue } from "../core/errors.js";
import { checkQueueType, resolveServerOptions, type QueueType, type ResolvedServerOptions, type ServerOptions as BaseServerOptions } from "../core/options.js";
import {
  CONTENT_TYPE,
  CONTRACT_VERSION_HEADER,
  DEADLINE_HEADER,
  ERROR_TYPE,
  RESULT_TYPE,
  decodeBody,
  describeFailedCall,
  encodeBody,
  readDeadline,
  replyToProblem,
  serverErrorBody,
  tryEncodeBody,
} from "../core/protocol.js";
import { handleWithin } from "../core/trace.js";
import { QueueProbe } from "./presence.js";
import { SlotIndex } from "../core/slot-index.js";
import { Invalid, checksFor, type MethodChecks } from "../core/validation.js";
import { versionSkew } from "../core/versions.js";
import { Context } from "./context.js";
import type { HandlerContext, ServiceHandlers } from "./handler.js";
import { compose, type HandleNext, type ServerInterceptor } from "./interceptors.js";
import { LossLedger, MAX_LOSSES, RecentRequests, requestKey } from "./losses.js";
import { RecentKeys, earlySettleAfterMs, seconds, watchPeriodMs } from "../core/overruns.js";
import { logInfo } from "../core/logging.js";

/** Per-service options for {@link RpcServer.register}. */
export interface RegisterOptions {
  /** Queue to consume from. @default the descriptor's `queue` (`rpc.<Service>`) */
  queue?: string;
  /**
   * How the queue is declared when it does not exist yet: `classic`, or
   * `quorum` (replicated across a cluster's nodes, kept on disk; survives the
   * loss of a minority of nodes). Every server of a queue must use the same
   * type: registering with another type than the existing queue's fails with
   * an error naming both. @default "classic"
   */
  queueType?: QueueType;
}

/** A service being served; `close()` stops it gracefully. */
export interface Registration {
  /** Service name. */
  readonly service: string;
  /** The queue being consumed. */
  readonly queue: string;
  /** Requests currently being handled. */
  readonly inFlight: number;
  /** True while its consumer is active (false while it resumes after a lost channel or connection, and once closed). */
  readonly consuming: boolean;
  /** Stops consuming, lets in-flight handlers finish and reply, then closes the channel. */
  close(): Promise<void>;
}

/** What {@link RpcServer.health} reports. */
export interface ServerHealth {
  /** True when the server serves at least one service and every one of them is consuming: ready for requests. */
  readonly ok: boolean;
  /** Each registered service: its queue, whether it consumes, and how many requests it is handling. */
  readonly services: readonly { readonly service: string; readonly queue: string; readonly consuming: boolean; readonly inFlight: number }[];
}

type AnyHandler = (request: unknown, ctx: HandlerContext<any>) => unknown;

/** Options of an {@link RpcServer}. */
export interface ServerOptions extends BaseServerOptions {
  /** Run around every handler of every service registered on this server, the first outermost; see {@link ServerInterceptor}. @default none */
  interceptors?: readonly ServerInterceptor[];
}

/** Codes besides the declared ones that a handler or an interceptor may refuse a request with; anything else becomes `internal`. */
const REFUSAL_CODES: ReadonlySet<string> = new Set<Code>(["unimplemented", "unauthenticated", "permission_denied", "invalid_request", "idempotency_conflict"]);

/**
 * Codes of a handler's failed call or publish that this service's own setup
 * or code must fix (its permissions and credentials, the request or event it
 * built, a contract older or newer than its peer's): logged as errors. The
 * others (`timeout`, `no_server`, `connection_lost`, `canceled`, `rejected`,
 * a peer's `internal` or `invalid_response`, its declared errors) say a peer
 * or the broker failed or was slow, which that side logs: warnings.
 */
const FIX_HERE_CODES: ReadonlySet<string> = new Set<Code>([
  "setup_failed",
  "access_refused",
  "invalid_event",
  "invalid_request",
  "bad_message",
  "unknown_method",
  "incompatible_version",
  "unauthenticated",
  "permission_denied",
  "idempotency_conflict",
]);

/** A served method: its descriptor, its handler and its compiled checks. */
interface MethodEntry {
  readonly method: MethodDescriptor;
  readonly handler: AnyHandler;
  readonly checks: MethodChecks;
}

/**
 * Serves registered services. Several processes may serve one queue: the
 * broker spreads requests among them, at most `prefetch` unacknowledged each.
 */
export class RpcServer {
  readonly #source: ChannelSource;
  readonly #options: ResolvedServerOptions;
  readonly #registrations = new Set<ServiceRegistration>();
  readonly #interceptors: readonly ServerInterceptor[];

  /** @internal use `connection.server(options)`. */
  constructor(source: ChannelSource, options: ServerOptions = {}) {
    this.#source = source;
    const { interceptors, ...base } = options;
    this.#interceptors = interceptors ?? [];
    this.#options = resolveServerOptions(base, source.logger);
  }

  /**
   * Starts serving `service` with `handlers`: declares its queue (durable) and
   * resolves once the consumer is active. After a lost connection or a
   * consumer cancelled by the broker it re-declares and resumes by itself.
   * @throws Error naming the method when a handler is missing.
   */
  async register<S extends ServiceDescriptor>(service: S, handlers: ServiceHandlers<S>, options: RegisterOptions = {}): Promise<Registration> {
    const byWireName = new Map<string, MethodEntry>();
    for (const [key, method] of Object.entries(service.methods)) {
      const handler = (handlers as Record<string, unknown>)[key];
      if (typeof handler !== "function") throw new TypeError(`warren: ${service.name}.${key}: no handler function was given`);
      // Compiled now, not on the first request, and kept with the method: no lookup per request.
      const bound: AnyHandler = (handler as AnyHandler).bind(handlers);
      byWireName.set(method.name, { method, handler: compose<HandleNext>(this.#interceptors, bound), checks: checksFor(method) });
    }
    const queueType = checkQueueType(service.name, options.queueType);
    const registration: ServiceRegistration = new ServiceRegistration(
      service.name,
      service.version,
      options.queue ?? service.queue,
      queueType,
      this.#source,
      byWireName,
      this.#options,
      () => this.#registrations.delete(registration),
    );
    await registration.start();
    this.#registrations.add(registration);
    return registration;
  }

  /**
   * The server's state for a readiness probe; cheap, no I/O. Not ok before the
   * first service is registered, while a service's consumer is resuming after a
   * lost channel or connection, and once closed.
   */
  health(): ServerHealth {
    const services = [...this.#registrations].map((r) => ({ service: r.service, queue: r.queue, consuming: r.consuming, inFlight: r.inFlight }));
    return { ok: services.length > 0 && services.every((s) => s.consuming), services };
  }

  /** Gracefully stops every registered service. */
  async close(): Promise<void> {
    await Promise.all([...this.#registrations].map((r) => r.close()));
  }
}

type Reply = { type: string; body: unknown };

/** A request ready for its handler: method found, body decoded and valid. */
interface Admitted {
  readonly entry: MethodEntry;
  readonly request: unknown;
  readonly ctx: Context;
}

/** One delivered request, from its arrival to its ack: what the server reads of it and where its reply and ack go. */
class Inbound {
  readonly replyTo: string | undefined;
  readonly correlationId: string | undefined;
  readonly wireName: string | undefined;
  /** The delivery tag (per channel). */
  readonly tag: number;
  /** When it was delivered (ms since the epoch): the broker's consumer timeout counts from here. */
  readonly receivedAt = Date.now();
  /** When its handler started: {@link receivedAt}, or for a redelivered copy taken over, the first delivery's. */
  startedAt = this.receivedAt;
  /** Acknowledged before its reply (its caller's deadline passed, or the broker's consumer timeout neared): never acked again. */
  settledEarly = false;
  /** The redelivered copy that took its place after its channel was lost while its handler ran: its reply and ack go there. */
  adoptedBy: Inbound | undefined;
  /** The handler's context, once admitted: told when the reply cannot be published. */
  ctx: Context | undefined = undefined;

  constructor(
    readonly channel: WireChannel,
    /** The state of the channel it came on: its acks, unfinished and recent requests. */
    readonly state: ChannelState,
    readonly msg: Delivery,
  ) {
    const props = msg.properties;
    this.tag = msg.fields.deliveryTag;
    this.replyTo = typeof props.replyTo === "string" && props.replyTo !== "" ? props.replyTo : undefined;
    this.correlationId = typeof props.correlationId === "string" ? props.correlationId : undefined;
    this.wireName = typeof props.type === "string" ? props.type : undefined;
  }

  /** Identifies the message across redeliveries (the broker redelivers the same properties). */
  get key(): string {
    return requestKey(this.correlationId, this.replyTo);
  }
}

/** The state of one consumer channel: its ack batcher, the requests delivered on it and not yet finished, and the last ones finished. */
interface ChannelState {
  readonly channel: WireChannel;
  readonly acks: AckBatcher;
  /** The requests still running when the channel was lost (for the log line of a consumer timeout). */
  lost: Inbound[];
  /** By delivery tag, in a {@link SlotIndex} (no Map churn per request). */
  readonly unfinished: SlotIndex<Inbound>;
  /** Acked just now, so perhaps not by the broker: a reply can close the connection before the broker reads the ack behind it. */
  readonly recent: RecentRequests;
}

class ServiceRegistration implements Registration {
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  readonly #consumer: KeptConsumer;
  /** Per channel: delivery tags are per channel. */
  readonly #channels = new WeakMap<WireChannel, ChannelState>();
  /** The state of the current channel, whose acks are flushed before a graceful close. */
  #current: ChannelState | undefined;
  readonly #losses = new LossLedger();
  /** The last reply_to that passed {@link replyToProblem}. */
  #checkedReplyTo: string | undefined;
  /** Callers' contract versions seen, and why each is refused (`undefined`: compatible). */
  readonly #versions = new Map<string, string | undefined>();
  /** By request key: requests whose channel was lost while their handler ran on, not yet redelivered here nor answered. */
  readonly #orphans = new Map<string, Inbound>();
  /** Requests answered after their channel was lost: a redelivered copy is acked, not run again. */
  readonly #answered = new RecentKeys();
  /** Replies of handlers that outlived their channel and finished before the next one opened: sent on it. */
  readonly #heldReplies: { inbound: Inbound; type: string; body: Buffer }[] = [];
  /** Looks for requests to acknowledge early; see {@link settleOverdue}. */
  #watch: NodeJS.Timeout | undefined;
  /** Answers `ctx.requesterAlive()`; its channel opens on the first question. */
  #requesters: QueueProbe | undefined;
  readonly #probe = (): QueueProbe => (this.#requesters ??= new QueueProbe(this.source));

  constructor(
    readonly service: string,
    /** The contract version served. */
    readonly version: string,
    readonly queue: string,
    queueType: QueueType,
    private readonly source: ChannelSource,
    private readonly methods: Map<string, MethodEntry>,
    private readonly options: ResolvedServerOptions,
    private readonly onClosed: () => void,
  ) {
    this.#consumer = new KeptConsumer(
      service,
      {
        open: () => source.open(),
        prepare: async (channel) => {
          await declareDurableQueue(channel, service, queue, queueType);
          await channel.prefetch(options.prefetch);
          const state: ChannelState = { channel, acks: new AckBatcher(channel), lost: [], unfinished: new SlotIndex<Inbound>((request) => request.tag), recent: new RecentRequests() };
          this.#channels.set(channel, state);
          this.#current = state;
          this.#sendHeldReplies(channel);
          // What was unfinished (or only just acked) when the channel closed comes back redelivered: count the loss against each.
          channel.onClose(() => {
            const unfinished = state.unfinished.drain();
            if (this.#closing !== undefined) return;
            this.#losses.record([...unfinished, ...state.recent.keys()]);
            // Their handlers run on: each reply goes out on the next channel, and a redelivered copy is taken over, not run again.
            for (const inbound of unfinished) this.#orphans.set(inbound.key, inbound);
            state.lost = unfinished;
          });
          return queue;
        },
        deliver: (channel, msg) => this.#onDelivery(channel, msg),
        connectionClosed: () => source.closed,
        overran: (channel, timeout) => this.#overrun(channel, timeout.timeoutMs),
      },
      options.logger,
    );
    const limit = options.consumerTimeoutMs ?? Infinity;
    for (const { method } of methods.values()) {
      if (method.timeoutMs === undefined || method.timeoutMs < earlySettleAfterMs(limit)) continue;
      options.logger.warn(
        { service, method: method.name, queue, code: "consumer_timeout" },
        `its timeoutMs (${method.timeoutMs}) is not well below the broker's consumer_timeout (consumerTimeoutMs ${limit}): a request still running after ${Math.round(earlySettleAfterMs(limit))} ms is acknowledged early, and is lost if this process dies before it replies; raise consumer_timeout on the broker (docs/FAILURES.md#long-handlers-and-consumer_timeout)`,
      );
    }
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get consuming(): boolean {
    return this.#closing === undefined && this.#consumer.consuming;
  }

  /** Declares the queue, sets the prefetch and consumes; resumes by itself after a lost channel. */
  async start(): Promise<void> {
    this.#watch ??= setInterval(() => this.#settleOverdue(), watchPeriodMs(this.options.consumerTimeoutMs)).unref();
    try {
      await this.#consumer.start();
    } catch (err) {
      this.#stopWatch();
      throw err;
    }
  }

  #stopWatch(): void {
    clearInterval(this.#watch);
    this.#watch = undefined;
  }

  /**
   * Acknowledges, before their replies, the requests of the current channel
   * whose caller's deadline has passed (a redelivered copy would be dropped
   * unrun: acking loses nothing) and, with `consumerTimeoutMs`, those about to
   * outlast the broker's consumer timeout (which would close the channel).
   * Their handlers run on and their replies still go out.
   */
  #settleOverdue(): void {
    const state = this.#current;
    if (state === undefined || state.unfinished.size === 0 || state.channel.closed) return;
    const now = Date.now();
    const limit = this.options.consumerTimeoutMs;
    for (const inbound of state.unfinished.values()) {
      const fields = { service: this.service, method: inbound.wireName, correlationId: inbound.correlationId, queue: this.queue };
      const deadline = readDeadline(inbound.msg.properties.headers as Record<string, unknown> | undefined);
      if (typeof deadline === "number" && deadline <= now) {
        logInfo(this.options.logger, fields, `handler still running ${seconds(now - deadline)} past its caller's deadline; acknowledged the request (the caller has given up)`);
        this.#settleEarly(inbound);
      } else if (limit !== undefined && now - inbound.receivedAt >= earlySettleAfterMs(limit)) {
        this.options.logger.warn(
          { ...fields, code: "consumer_timeout" },
          `handler still running after ${seconds(now - inbound.startedAt)}, near the broker's consumer_timeout (consumerTimeoutMs ${limit}); acknowledged the request now so the broker keeps the channel: if this process dies before it replies, it is not redelivered`,
        );
        this.#settleEarly(inbound);
      }
    }
  }

  #settleEarly(inbound: Inbound): void {
    inbound.settledEarly = true;
    inbound.state.unfinished.delete(inbound);
    inbound.state.acks.done(inbound.tag, inbound.msg);
  }

  /** What overran on `channel`, which the broker closed for its consumer timeout: for the one log line of {@link KeptConsumer}. */
  #overrun(channel: WireChannel, timeoutMs: number | undefined): string {
    const lost = this.#channels.get(channel)?.lost ?? [];
    const now = Date.now();
    const hint = this.options.consumerTimeoutMs === undefined && timeoutMs !== undefined ? `; with the server option consumerTimeoutMs: ${timeoutMs} warren acknowledges such requests before the broker's limit` : "";
    if (lost.length === 0) return `no request of ${this.service} was unfinished on it${hint}`;
    const oldest = lost.reduce((a, b) => (b.receivedAt < a.receivedAt ? b : a));
    const others = lost.length - 1;
    return (
      `${this.service}.${oldest.wireName ?? "?"} (correlation_id ${oldest.correlationId ?? "none"}) had run for ${seconds(now - oldest.startedAt)}` +
      (others > 0 ? ` and ${others} other request(s) were in flight on the channel` : "") +
      `; the handlers run on: this process answers ${others > 0 ? "them" : "it"} and does not run the redelivered ${others > 0 ? "copies" : "copy"} again${hint}`
    );
  }

  /**
   * A redelivered request that this process still runs (its channel was lost
   * while its handler ran) or has answered since: taken over or acked, not run
   * again. True when it was one of those.
   */
  #takeOver(inbound: Inbound): boolean {
    const key = inbound.key;
    const running = this.#orphans.get(key);
    if (running !== undefined) {
      this.#orphans.delete(key);
      running.adoptedBy = inbound;
      inbound.startedAt = running.startedAt;
      return true; // unfinished on this channel until the handler, still running, replies
    }
    if (!this.#answered.take(key)) return false;
    logInfo(this.options.logger, { service: this.service, method: inbound.wireName, correlationId: inbound.correlationId }, "a redelivered request was answered already (its channel was lost while its handler ran); acknowledged, not run again");
    this.#finish(inbound);
    return true;
  }

  /** `inbound`, answered after its channel was lost: a redelivered copy is acked, not run again. */
  #answeredAfterLoss(inbound: Inbound): void {
    if (this.#orphans.get(inbound.key) !== inbound) return;
    this.#orphans.delete(inbound.key);
    this.#answered.add(inbound.key);
  }

  /**
   * Sends the replies that waited for a channel (their handlers finished while
   * the consumer resumed, or their channel was closing) on `channel`, just
   * opened. A channel that closed again before it could take them (even in the
   * read that completed its setup) leaves them to the next one: marked
   * answered without going out, they would have the redelivered copies acked
   * unanswered.
   */
  #sendHeldReplies(channel: WireChannel): void {
    if (channel.closed) return;
    for (const held of this.#heldReplies.splice(0)) {
      const { type, body } = held;
      let inbound = held.inbound;
      // A copy redelivered since it was held took its place (its channel closed too): that copy is answered and acked.
      while (inbound.adoptedBy !== undefined) inbound = inbound.adoptedBy;
      try {
        channel.publish("", inbound.replyTo!, body, { contentType: CONTENT_TYPE, correlationId: inbound.correlationId, type });
      } catch (err) {
        if (channel.closed) {
          this.#heldReplies.push(held);
          continue;
        }
        this.options.logger.error({ service: this.service, method: inbound.wireName, correlationId: inbound.correlationId, err }, `could not reply to ${JSON.stringify(inbound.replyTo)} (${(err as Error).message}); dropped`);
      }
      this.#answeredAfterLoss(inbound);
      this.#finish(inbound);
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#consumer.cancel();
      if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      this.#current?.acks.flush(); // the last replies' acks go out before the channel closes
      this.#stopWatch();
      await this.#consumer.close();
      await this.#requesters?.close();
      this.onClosed();
    })();
    return this.#closing;
  }

  /**
   * One request: checks, handler, reply, then ack. Runs synchronously to the
   * reply when the handler returns a plain value; only a promise makes it async.
   * Nothing thrown here escapes: whatever fails, the request gets an answer or
   * is dropped with a log line, and is acked either way.
   */
  #onDelivery(channel: WireChannel, msg: Delivery): void {
    const state = this.#channels.get(channel)!;
    state.acks.delivered(msg.fields.deliveryTag);
    const inbound = new Inbound(channel, state, msg);
    state.unfinished.add(inbound);
    if (msg.fields.redelivered && this.#takeOver(inbound)) return;
    const drop = this.#refusal(inbound);
    if (drop !== undefined) {
      this.options.logger.warn({ service: this.service, method: inbound.wireName, correlationId: inbound.correlationId }, `dropped a request (correlation_id ${inbound.correlationId ?? "none"}): ${drop}`);
      this.#finish(inbound);
      return;
    }
    let admitted: Admitted | Reply | undefined;
    try {
      admitted = this.#admit(inbound);
    } catch (err) {
      admitted = this.#unexpected(inbound.wireName, err);
    }
    if (admitted === undefined) {
      this.#finish(inbound); // the caller has already given up; running it would be wasted work
      return;
    }
    if (!("ctx" in admitted)) {
      this.#send(inbound, admitted.type, admitted.body);
      return;
    }
    const { entry, request, ctx } = admitted;
    inbound.ctx = ctx;
    let result: unknown;
    try {
      result = handleWithin(ctx.headers, this.options.asyncContext ? ctx : undefined, entry.handler, request, ctx);
    } catch (err) {
      ctx.dispose();
      this.#replyError(inbound, entry, err);
      return;
    }
    if (!isPromiseLike(result)) {
      ctx.dispose();
      this.#replyResult(inbound, entry, result);
      return;
    }
    this.#inFlight++;
    Promise.resolve(result)
      .then(
        (value) => this.#replyResult(inbound, entry, value),
        (err: unknown) => this.#replyError(inbound, entry, err),
      )
      .finally(() => {
        ctx.dispose();
        if (--this.#inFlight === 0) this.#idle?.();
      });
  }

  /**
   * Why a request must not run at all, or `undefined`. No usable reply_to:
   * nobody could receive the outcome, and a reply to an address the broker did
   * not make can close the whole connection. A redelivered request that was
   * unfinished at {@link MAX_LOSSES} channel losses: running it again would
   * likely cost another (a poison request; see docs/FAILURES.md).
   */
  #refusal(inbound: Inbound): string | undefined {
    const replyTo = inbound.replyTo;
    if (replyTo === undefined) return "it came without reply_to";
    // A caller sends all its requests with one reply_to: checked once, remembered (a string compare per request).
    if (replyTo !== this.#checkedReplyTo) {
      const problem = replyToProblem(replyTo);
      if (problem !== undefined) return problem;
      this.#checkedReplyTo = replyTo;
    }
    if (inbound.msg.fields.redelivered && this.#losses.count(inbound.key) >= MAX_LOSSES) {
      return `it was unfinished when the channel was lost ${MAX_LOSSES} times; not running it again`;
    }
    return undefined;
  }

  /**
   * Everything before the handler: deadline, correlation id, method, body,
   * request validation. Returns the error reply for a bad request, `undefined`
   * for an expired one, else what the handler needs.
   */
  #admit(inbound: Inbound): Admitted | Reply | undefined {
    const { msg, correlationId } = inbound;
    const deadline = readDeadline(msg.properties.headers as Record<string, unknown> | undefined);
    if (typeof deadline === "number" && deadline <= Date.now()) return undefined;
    if (correlationId === undefined || correlationId === "") return this.#errorReply(new RpcError("bad_message", "the request has no correlation_id"));
    if (deadline === null) return this.#errorReply(new RpcError("bad_message", `header ${DEADLINE_HEADER} must be a number (ms since the epoch)`));
    const theirs = (msg.properties.headers as Record<string, unknown> | undefined)?.[CONTRACT_VERSION_HEADER];
    if (theirs !== undefined && theirs !== this.version) {
      const known = this.#versions.has(theirs as string);
      const skew = versionSkew(this.service, this.version, theirs, this.#versions);
      if (skew !== undefined) {
        if (!known) this.options.logger.warn({ service: this.service, method: inbound.wireName, code: "incompatible_version", callerVersion: theirs }, `refusing requests: ${skew}`);
        return this.#errorReply(new RpcError("incompatible_version", skew));
      }
    }
    const entry = inbound.wireName === undefined ? undefined : this.methods.get(inbound.wireName);
    if (entry === undefined) return this.#errorReply(new RpcError("unknown_method", `service ${this.service} has no method ${JSON.stringify(inbound.wireName ?? null)}`));
    const method = entry.method;
    const decoded = decodeBody(msg.content, msg.properties.contentType as string | undefined, this.options.maxMessageBytes);
    if (!decoded.ok) return this.#errorReply(new RpcError("bad_message", decoded.reason));
    const request = entry.checks.receiveRequest(decoded.value);
    if (request instanceof Invalid) return this.#errorReply(new ValidationError("invalid_request", "server", request.issues, { service: this.service, method: method.name }));
    return { entry, request, ctx: new Context(this.service, method, correlationId, msg, deadline, this.#probe) };
  }

  /** Replies with the handler's result once it passes the response schema (a schema check that throws is answered `internal`). */
  #replyResult(inbound: Inbound, entry: MethodEntry, result: unknown): void {
    let issues: ValidationIssue[] | undefined;
    try {
      issues = entry.checks.response(result);
    } catch (err) {
      const reply = this.#unexpected(inbound.wireName, err);
      return this.#send(inbound, reply.type, reply.body);
    }
    // The common case, without a Reply object: a valid result goes out as it is.
    if (issues === undefined) return this.#send(inbound, RESULT_TYPE, result);
    const target = { service: this.service, method: entry.method.name };
    this.options.logger.error({ ...target, correlationId: inbound.correlationId, code: "invalid_response" }, `handler returned an invalid response: ${formatIssues(issues)}`);
    const reply = this.#errorReply(new ValidationError("invalid_response", "server", issues, target));
    this.#send(inbound, reply.type, reply.body);
  }

  /** Replies with what the handler threw, as the caller may see it. */
  #replyError(inbound: Inbound, entry: MethodEntry, err: unknown): void {
    const deadline = readDeadline(inbound.msg.properties.headers as Record<string, unknown> | undefined);
    if (typeof deadline === "number" && deadline <= Date.now()) {
      // The caller has timed out (or does within its timer's slack): an error now, often the handler's own signal firing, would only race its timeout.
      const reason = err instanceof Error ? err.message : String(err);
      logInfo(this.options.logger, { service: this.service, method: inbound.wireName, correlationId: inbound.correlationId }, `handler failed after its caller's deadline (${reason}); not replied to: the caller has timed out`);
      this.#finish(inbound);
      return;
    }
    let reply: Reply;
    try {
      reply = this.#errorReply(this.#toWireError(err, entry.method, inbound.correlationId));
    } catch (unexpected) {
      reply = this.#unexpected(inbound.wireName, unexpected);
    }
    this.#send(inbound, reply.type, reply.body);
  }

  /**
   * Publishes the reply, then acks the request: if we die in between it is
   * redelivered, never lost. A body JSON cannot encode is answered with
   * `internal` instead; a reply the channel refuses while it is still open is
   * dropped with a log line and the request acked (it would fail the same way
   * again). A channel that can send nothing more (closed, or closing) leaves
   * the request unacked, and the reply goes out on the next channel; see
   * {@link #unsent}.
   */
  #send(inbound: Inbound, type: string, body: unknown): void {
    let encoded = tryEncodeBody(body);
    if (!encoded.ok) {
      const what = type === RESULT_TYPE ? "result" : "error reply";
      this.options.logger.error({ service: this.service, method: inbound.wireName, correlationId: inbound.correlationId, code: "internal" }, `the handler's ${what} ${encoded.reason}; answering internal`);
      type = ERROR_TYPE;
      encoded = { ok: true, body: encodeBody(new RpcError("internal", "internal server error").toJSON()) };
    }
    const ctx = inbound.ctx;
    // A copy redelivered while the handler ran on took its place: the reply and the ack go there.
    while (inbound.adoptedBy !== undefined) inbound = inbound.adoptedBy;
    let channel = inbound.channel;
    let redirected = false;
    if (channel.closed && (inbound.settledEarly || this.#orphans.get(inbound.key) === inbound)) {
      // The handler outlived its channel, and the caller may still wait: any channel reaches a reply_to; if none is open, the next one.
      const current = this.#current?.channel;
      if (current === undefined || current.closed) {
        this.#heldReplies.push({ inbound, type, body: encoded.body });
        return;
      }
      channel = current;
      redirected = true;
    }
    try {
      channel.publish("", inbound.replyTo!, encoded.body, { contentType: CONTENT_TYPE, correlationId: inbound.correlationId, type });
    } catch (err) {
      if (this.#unsent(inbound, ctx, channel, type, encoded.body, err)) return;
    }
    // Answered (or dropped for good) only now: a copy that comes back is acked, not run again.
    if (redirected) this.#answeredAfterLoss(inbound);
    this.#finish(inbound);
  }

  /**
   * `channel` threw when publishing the reply to `inbound`. Open, it refused
   * this reply: dropped, and false (the caller acks). Closed or closing (its
   * close listener may not have run yet), the broker redelivers the request,
   * which stays unacked (true): the reply is held for the next channel, and the
   * copy, when it comes back here, is answered by it, not run again; the
   * handler has finished, so nothing else would answer a copy taken over. With
   * no next channel (this service or the connection is closing) the copy runs
   * on another server.
   */
  #unsent(inbound: Inbound, ctx: Context | undefined, channel: WireChannel, type: string, body: Buffer, err: unknown): boolean {
    const fields = { service: this.service, method: inbound.wireName, correlationId: inbound.correlationId, err };
    const reason = (err as Error)?.message ?? String(err);
    if (!channel.closed) {
      // For the request's span (telemetry reads it once the reply should be out); allocated only on this path.
      if (ctx !== undefined) ctx.replyFailure = { error: err, redelivered: false };
      this.options.logger.error(fields, `could not reply to ${JSON.stringify(inbound.replyTo)} (${reason}); dropped`);
      return false;
    }
    if (this.#closing !== undefined || this.source.closed) {
      if (ctx !== undefined) ctx.replyFailure = { error: err, redelivered: true };
      this.options.logger.error(fields, `could not reply (${reason}); the broker will redeliver the request`);
      return true;
    }
    this.#heldReplies.push({ inbound, type, body });
    logInfo(this.options.logger, fields, `could not reply on a closing channel (${reason}); the reply goes out on the next channel, and the redelivered request is acknowledged, not run again`);
    return true;
  }

  /** The request is done with (replied to or dropped on purpose): ack it. */
  #finish(inbound: Inbound): void {
    const state = inbound.state;
    state.unfinished.delete(inbound);
    state.recent.add(inbound.correlationId, inbound.replyTo);
    if (!inbound.settledEarly) state.acks.done(inbound.tag, inbound.msg);
  }

  #unexpected(wireName: string | undefined, err: unknown): Reply {
    this.options.logger.error({ service: this.service, method: wireName, code: "internal", err }, `unexpected failure: ${(err as Error)?.message ?? String(err)}`);
    return { type: ERROR_TYPE, body: new RpcError("internal", "internal server error").toJSON() };
  }

  #toWireError(err: unknown, method: MethodDescriptor, correlationId: string | undefined): RpcError {
    const target = { service: this.service, method: method.name };
    const fields = { ...target, correlationId };
    if (isRpcError(err)) {
      const dataCheck = checksFor(method).errors.get(err.code);
      if (dataCheck !== undefined) {
        const issues = dataCheck(err.data);
        if (issues === undefined) return err;
        this.options.logger.error({ ...fields, code: "invalid_response", declared: err.code }, `declared error "${err.code}" has invalid data: ${formatIssues(issues)}`);
        return new ValidationError("invalid_response", "server", issues, { ...target, what: `data of error "${err.code}"` });
      }
    }
    const failedCall = describeFailedCall(err, target);
    if (failedCall === undefined && isRpcError(err) && REFUSAL_CODES.has(err.code)) return new RpcError(err.code, err.message, err.data === undefined ? {} : { data: err.data });
    if (failedCall !== undefined) {
      // Answered `internal`, not with the code it carries: that code is about a call this handler made, not about the caller's request (a nested
      // call's invalid_request or permission_denied is this service's problem, not its caller's), and a caller retries timeout, no_server and
      // connection_lost (RETRYABLE_CODES), so each caller up a chain of calls would retry what the one below it retried already. Logged as what
      // it is, without a stack: the line names the call and why it failed.
      const cause = (err as RpcError).code;
      const level = FIX_HERE_CODES.has(cause) ? "error" : "warn";
      this.options.logger[level]({ ...fields, code: "internal", cause }, `${failedCall}; answering internal (correlation_id ${correlationId ?? "none"})`);
      return new RpcError("internal", "internal server error", { cause: err });
    }
    this.options.logger.error({ ...fields, code: "internal", err }, `handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return new RpcError("internal", "internal server error", { cause: err });
  }

  #errorReply(err: RpcError): Reply {
    return { type: ERROR_TYPE, body: serverErrorBody(err, this.options.exposeInternalErrors) };
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
