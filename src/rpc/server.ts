/**
 * The service side: consumes a service's queue with a prefetch, validates each
 * request, runs its handler, validates the result, publishes the reply, and
 * only then acknowledges the request (at-least-once).
 */
import { AckBatcher } from "../amqp/acks.js";
import type { ChannelSource, Delivery, WireChannel } from "../amqp/channel-source.js";
import { KeptConsumer } from "../amqp/consumer.js";
import { declareDurableQueue } from "../amqp/queues.js";
import type { MethodDescriptor, ServiceDescriptor } from "../core/descriptor.js";
import { RpcError, ValidationError, describeTarget, formatIssues, isRpcError } from "../core/errors.js";
import { checkQueueType, resolveServerOptions, type QueueType, type ResolvedServerOptions, type ServerOptions } from "../core/options.js";
import { CONTENT_TYPE, DEADLINE_HEADER, ERROR_TYPE, RESULT_TYPE, decodeBody, encodeBody, readDeadline, serverErrorBody } from "../core/protocol.js";
import { handleTraced } from "../core/trace.js";
import { checksFor, type MethodChecks } from "../core/validation.js";
import type { HandlerContext, ServiceHandlers } from "./handler.js";

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
  /** Stops consuming, lets in-flight handlers finish and reply, then closes the channel. */
  close(): Promise<void>;
}

type AnyHandler = (request: unknown, ctx: HandlerContext<any>) => unknown;

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

  /** @internal use `connection.server(options)`. */
  constructor(source: ChannelSource, options: ServerOptions = {}) {
    this.#source = source;
    this.#options = resolveServerOptions(options, source.logger);
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
      byWireName.set(method.name, { method, handler: (handler as AnyHandler).bind(handlers), checks: checksFor(method) });
    }
    const queueType = checkQueueType(service.name, options.queueType);
    const registration: ServiceRegistration = new ServiceRegistration(
      service.name,
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

class ServiceRegistration implements Registration {
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  readonly #consumer: KeptConsumer;
  /** One ack batcher per channel: delivery tags are per channel. */
  readonly #acks = new WeakMap<WireChannel, AckBatcher>();
  /** The batcher of the current channel, flushed before a graceful close. */
  #currentAcks: AckBatcher | undefined;

  constructor(
    readonly service: string,
    readonly queue: string,
    queueType: QueueType,
    source: ChannelSource,
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
          this.#currentAcks = new AckBatcher(channel);
          this.#acks.set(channel, this.#currentAcks);
          return queue;
        },
        deliver: (channel, msg) => this.#onDelivery(channel, msg),
        connectionClosed: () => source.closed,
      },
      options.logger,
    );
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Declares the queue, sets the prefetch and consumes; resumes by itself after a lost channel. */
  start(): Promise<void> {
    return this.#consumer.start();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#consumer.cancel();
      if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      this.#currentAcks?.flush(); // the last replies' acks go out before the channel closes
      await this.#consumer.close();
      this.onClosed();
    })();
    return this.#closing;
  }

  /**
   * One request: checks, handler, reply, then ack. Runs synchronously to the
   * reply when the handler returns a plain value; only a promise makes it async.
   */
  #onDelivery(channel: WireChannel, msg: Delivery): void {
    const acks = this.#acks.get(channel)!;
    acks.delivered(msg.fields.deliveryTag);
    const props = msg.properties;
    const replyTo = typeof props.replyTo === "string" && props.replyTo !== "" ? props.replyTo : undefined;
    const correlationId = typeof props.correlationId === "string" ? props.correlationId : undefined;
    const wireName = typeof props.type === "string" ? props.type : undefined;
    if (replyTo === undefined) {
      // Nobody could receive the outcome, so running the handler would be a side effect nobody asked to observe.
      this.options.logger.warn(`warren: ${describeTarget({ service: this.service, method: wireName })}: dropped a request without reply_to (correlation_id ${correlationId ?? "none"})`);
      acks.done(msg.fields.deliveryTag, msg);
      return;
    }
    let admitted: Admitted | Reply | undefined;
    try {
      admitted = this.#admit(msg, wireName, correlationId);
    } catch (err) {
      admitted = this.#unexpected(wireName, err);
    }
    if (admitted === undefined) {
      acks.done(msg.fields.deliveryTag, msg); // the caller has already given up; running it would be wasted work
      return;
    }
    if (!("ctx" in admitted)) {
      this.#send(channel, acks, msg, replyTo, correlationId, admitted.type, admitted.body);
      return;
    }
    const { entry, request, ctx } = admitted;
    const method = entry.method;
    let result: unknown;
    try {
      result = handleTraced(ctx.headers, entry.handler, request, ctx);
    } catch (err) {
      ctx.dispose();
      const reply = this.#errorReply(this.#toWireError(err, method));
      this.#send(channel, acks, msg, replyTo, correlationId, reply.type, reply.body);
      return;
    }
    if (!isPromiseLike(result)) {
      ctx.dispose();
      // The common case, without a Reply object: a valid result goes out as it is.
      if (entry.checks.response(result) === undefined) this.#send(channel, acks, msg, replyTo, correlationId, RESULT_TYPE, result);
      else {
        const reply = this.#resultReply(entry, result);
        this.#send(channel, acks, msg, replyTo, correlationId, reply.type, reply.body);
      }
      return;
    }
    this.#inFlight++;
    Promise.resolve(result)
      .then(
        (value) => this.#resultReply(entry, value),
        (err: unknown) => this.#errorReply(this.#toWireError(err, method)),
      )
      .then(
        (reply) => this.#send(channel, acks, msg, replyTo, correlationId, reply.type, reply.body),
        (err: unknown) => {
          const reply = this.#unexpected(wireName, err);
          this.#send(channel, acks, msg, replyTo, correlationId, reply.type, reply.body);
        },
      )
      .finally(() => {
        ctx.dispose();
        if (--this.#inFlight === 0) this.#idle?.();
      });
  }

  /**
   * Everything before the handler: deadline, correlation id, method, body,
   * request validation. Returns the error reply for a bad request, `undefined`
   * for an expired one, else what the handler needs.
   */
  #admit(msg: Delivery, wireName: string | undefined, correlationId: string | undefined): Admitted | Reply | undefined {
    const deadline = readDeadline(msg.properties.headers as Record<string, unknown> | undefined);
    if (typeof deadline === "number" && deadline <= Date.now()) return undefined;
    const target = () => ({ service: this.service, method: wireName });
    if (correlationId === undefined || correlationId === "") {
      return this.#errorReply(new RpcError("bad_message", `${describeTarget(target())}: the request has no correlation_id`));
    }
    if (deadline === null) {
      return this.#errorReply(new RpcError("bad_message", `${describeTarget(target())}: header ${DEADLINE_HEADER} must be a number (ms since the epoch)`));
    }
    const entry = wireName === undefined ? undefined : this.methods.get(wireName);
    if (entry === undefined) {
      return this.#errorReply(new RpcError("unknown_method", `${this.service} has no method ${JSON.stringify(wireName ?? null)}`));
    }
    const method = entry.method;
    const decoded = decodeBody(msg.content, msg.properties.contentType as string | undefined, this.options.maxMessageBytes);
    if (!decoded.ok) return this.#errorReply(new RpcError("bad_message", `${describeTarget(target())}: ${decoded.reason}`));
    const issues = entry.checks.request(decoded.value);
    if (issues !== undefined) return this.#errorReply(new ValidationError("invalid_request", "server", issues, { service: this.service, method: method.name }));
    return { entry, request: decoded.value, ctx: new Context(this.service, method, correlationId, msg, deadline) };
  }

  /** Publishes the reply, then acks the request: if we die in between it is redelivered, never lost. */
  #send(channel: WireChannel, acks: AckBatcher, msg: Delivery, replyTo: string, correlationId: string | undefined, type: string, body: unknown): void {
    try {
      channel.publish("", replyTo, encodeBody(body), { contentType: CONTENT_TYPE, correlationId, type });
      acks.done(msg.fields.deliveryTag, msg);
    } catch (err) {
      const target = { service: this.service, method: msg.properties.type as string | undefined };
      this.options.logger.error(`warren: ${describeTarget(target)}: could not reply (${(err as Error).message}); the broker will redeliver the request`);
    }
  }

  #resultReply(entry: MethodEntry, result: unknown): Reply {
    const issues = entry.checks.response(result);
    if (issues === undefined) return { type: RESULT_TYPE, body: result };
    const target = { service: this.service, method: entry.method.name };
    this.options.logger.error(`warren: ${describeTarget(target)}: handler returned an invalid response: ${formatIssues(issues)}`);
    return this.#errorReply(new ValidationError("invalid_response", "server", issues, target));
  }

  #unexpected(wireName: string | undefined, err: unknown): Reply {
    this.options.logger.error(`warren: ${describeTarget({ service: this.service, method: wireName })}: unexpected failure: ${(err as Error)?.message ?? String(err)}`);
    return { type: ERROR_TYPE, body: new RpcError("internal", "internal server error").toJSON() };
  }

  #toWireError(err: unknown, method: MethodDescriptor): RpcError {
    const target = { service: this.service, method: method.name };
    if (isRpcError(err)) {
      const dataCheck = checksFor(method).errors.get(err.code);
      if (dataCheck !== undefined) {
        const issues = dataCheck(err.data);
        if (issues === undefined) return err;
        this.options.logger.error(`warren: ${describeTarget(target)}: declared error "${err.code}" has invalid data: ${formatIssues(issues)}`);
        return new ValidationError("invalid_response", "server", issues, { ...target, what: `data of error "${err.code}"` });
      }
      if (err.code === "unimplemented") return new RpcError("unimplemented", `${describeTarget(target)} is not implemented`);
    }
    this.options.logger.error(`warren: ${describeTarget(target)}: handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return new RpcError("internal", `${describeTarget(target)}: internal server error`, { cause: err });
  }

  #errorReply(err: RpcError): Reply {
    return { type: ERROR_TYPE, body: serverErrorBody(err, this.options.exposeInternalErrors) };
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/** The {@link HandlerContext} of one request; its AbortSignal is created only if a handler reads it. */
class Context implements HandlerContext<any> {
  readonly method: string;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly redelivered: boolean;
  #controller: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly service: string,
    private readonly descriptor: MethodDescriptor,
    readonly correlationId: string,
    msg: Delivery,
    readonly deadline: number | undefined,
  ) {
    this.method = descriptor.name;
    this.headers = (msg.properties.headers as Record<string, unknown> | undefined) ?? {};
    this.redelivered = msg.fields.redelivered;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      if (this.deadline !== undefined) {
        const abort = () => controller.abort(new RpcError("timeout", `${this.service}.${this.method}: deadline passed`));
        const left = this.deadline - Date.now();
        if (left <= 0) abort();
        else this.#timer = setTimeout(abort, left);
      }
    }
    return this.#controller.signal;
  }

  error(code: string, data?: unknown): RpcError<string, any> {
    const spec = this.descriptor.errors[code];
    return new RpcError(code, spec?.description ?? code, { service: this.service, method: this.method, data });
  }

  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}
