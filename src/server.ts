/**
 * The service side: consumes a service's queue with a prefetch, validates each
 * request, runs its handler, validates the result, publishes the reply, and
 * only then acknowledges the request (at-least-once).
 */
import type { Channel, ConsumeMessage } from "amqplib";
import type { Connection } from "./connection.js";
import type { MethodDescriptor, ServiceDescriptor } from "./descriptor.js";
import { RpcError, ValidationError, describeTarget, formatIssues, isRpcError } from "./errors.js";
import type { HandlerContext, ServiceHandlers } from "./handler.js";
import { resolveServerOptions, type ResolvedServerOptions, type ServerOptions } from "./options.js";
import { CONTENT_TYPE, DEADLINE_HEADER, ERROR_TYPE, RESULT_TYPE, decodeBody, encodeBody, readDeadline, serverErrorBody } from "./protocol.js";
import { checksFor } from "./validation.js";

/** Per-service options for {@link RpcServer.register}. */
export interface RegisterOptions {
  /** Queue to consume from. @default the descriptor's `queue` (`rpc.<Service>`) */
  queue?: string;
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

/**
 * Serves registered services. Several processes may serve one queue: the
 * broker spreads requests among them, at most `prefetch` unacknowledged each.
 */
export class RpcServer {
  readonly #connection: Connection;
  readonly #options: ResolvedServerOptions;
  readonly #registrations = new Set<ServiceRegistration>();

  /** @internal use `connection.server(options)`. */
  constructor(connection: Connection, options: ServerOptions = {}) {
    this.#connection = connection;
    this.#options = resolveServerOptions(options, connection.logger);
  }

  /**
   * Starts serving `service` with `handlers`: declares its queue (durable) and
   * resolves once the consumer is active. After a lost connection or a
   * consumer cancelled by the broker it re-declares and resumes by itself.
   * @throws Error naming the method when a handler is missing.
   */
  async register<S extends ServiceDescriptor>(service: S, handlers: ServiceHandlers<S>, options: RegisterOptions = {}): Promise<Registration> {
    const byWireName = new Map<string, { method: MethodDescriptor; handler: AnyHandler }>();
    for (const [key, method] of Object.entries(service.methods)) {
      const handler = (handlers as Record<string, unknown>)[key];
      if (typeof handler !== "function") throw new TypeError(`warren: ${service.name}.${key}: no handler function was given`);
      checksFor(method); // compile every schema now, not on the first request
      byWireName.set(method.name, { method, handler: (handler as AnyHandler).bind(handlers) });
    }
    const registration: ServiceRegistration = new ServiceRegistration(
      service.name,
      options.queue ?? service.queue,
      this.#connection,
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

class ServiceRegistration implements Registration {
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #channel: Channel | undefined;
  #consumerTag: string | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    readonly service: string,
    readonly queue: string,
    private readonly connection: Connection,
    private readonly methods: Map<string, { method: MethodDescriptor; handler: AnyHandler }>,
    private readonly options: ResolvedServerOptions,
    private readonly onClosed: () => void,
  ) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Opens a channel, declares the queue, sets the prefetch and consumes. */
  async start(): Promise<void> {
    const channel = await this.connection.channel();
    try {
      await channel.assertQueue(this.queue, { durable: true });
      await channel.prefetch(this.options.prefetch);
      const { consumerTag } = await channel.consume(this.queue, (msg) => this.#onDelivery(channel, msg));
      if (this.#closing !== undefined) {
        // close() ran while this (re)start was under way: do not leave a consumer behind.
        await channel.close().catch(() => {});
        return;
      }
      this.#channel = channel;
      this.#consumerTag = consumerTag;
    } catch (err) {
      await channel.close().catch(() => {});
      throw err;
    }
    channel.on("close", () => {
      if (this.#channel !== channel || this.#closing !== undefined) return;
      this.#channel = undefined;
      this.options.logger.warn(`warren: ${this.service}: channel on queue "${this.queue}" closed; re-declaring and resuming`);
      void this.#resume(1);
    });
  }

  /** Retries {@link start} with capped backoff until it works or the registration closes. */
  async #resume(attempt: number): Promise<void> {
    while (this.#closing === undefined && !this.connection.closed) {
      try {
        await this.start();
        this.options.logger.warn(`warren: ${this.service}: consuming "${this.queue}" again`);
        return;
      } catch (err) {
        if (this.connection.closed) break;
        const delay = Math.min(5000, 100 * 2 ** Math.min(attempt++, 6));
        this.options.logger.error(`warren: ${this.service}: cannot resume "${this.queue}" (${(err as Error).message}); retrying in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  #onDelivery(channel: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled the consumer (e.g. the queue was deleted): closing the channel triggers re-declaration.
      this.options.logger.error(`warren: ${this.service}: the broker cancelled the consumer of queue "${this.queue}" (queue deleted?)`);
      void channel.close().catch(() => {});
      return;
    }
    this.#inFlight++;
    void this.#handle(channel, msg).finally(() => {
      if (--this.#inFlight === 0) this.#idle?.();
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const channel = this.#channel;
      if (channel && this.#consumerTag !== undefined) await channel.cancel(this.#consumerTag).catch(() => {});
      if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      if (channel) await channel.close().catch(() => {});
      this.onClosed();
    })();
    return this.#closing;
  }

  async #handle(channel: Channel, msg: ConsumeMessage): Promise<void> {
    const props = msg.properties;
    const replyTo = typeof props.replyTo === "string" && props.replyTo !== "" ? props.replyTo : undefined;
    const correlationId = typeof props.correlationId === "string" ? props.correlationId : undefined;
    const wireName = typeof props.type === "string" ? props.type : undefined;
    const target = { service: this.service, method: wireName };
    if (replyTo === undefined) {
      // Nobody could receive the outcome, so running the handler would be a side effect nobody asked to observe.
      this.options.logger.warn(`warren: ${describeTarget(target)}: dropped a request without reply_to (correlation_id ${correlationId ?? "none"})`);
      channel.ack(msg);
      return;
    }
    let reply: { type: string; body: unknown };
    try {
      const deadline = readDeadline(props.headers as Record<string, unknown> | undefined);
      if (typeof deadline === "number" && deadline <= Date.now()) {
        channel.ack(msg); // the caller has already given up; running it would be wasted work
        return;
      }
      if (correlationId === undefined || correlationId === "") {
        reply = this.#errorReply(new RpcError("bad_message", `${describeTarget(target)}: the request has no correlation_id`));
      } else if (deadline === null) {
        reply = this.#errorReply(new RpcError("bad_message", `${describeTarget(target)}: header ${DEADLINE_HEADER} must be a number (ms since the epoch)`));
      } else {
        reply = await this.#dispatch(msg, wireName, correlationId, deadline);
      }
    } catch (err) {
      this.options.logger.error(`warren: ${describeTarget(target)}: unexpected failure: ${(err as Error).message}`);
      reply = { type: ERROR_TYPE, body: new RpcError("internal", "internal server error").toJSON() };
    }
    try {
      // Reply first, then ack: if we die in between the request is redelivered, never lost.
      channel.publish("", replyTo, encodeBody(reply.body), {
        ...(correlationId === undefined ? {} : { correlationId }),
        type: reply.type,
        contentType: CONTENT_TYPE,
      });
      channel.ack(msg);
    } catch (err) {
      this.options.logger.error(`warren: ${describeTarget(target)}: could not reply (${(err as Error).message}); the broker will redeliver the request`);
    }
  }

  async #dispatch(msg: ConsumeMessage, wireName: string | undefined, correlationId: string, deadline: number | undefined): Promise<{ type: string; body: unknown }> {
    const entry = wireName === undefined ? undefined : this.methods.get(wireName);
    if (entry === undefined) {
      return this.#errorReply(new RpcError("unknown_method", `${this.service} has no method ${JSON.stringify(wireName ?? null)}`));
    }
    const { method, handler } = entry;
    const target = { service: this.service, method: method.name };
    const decoded = decodeBody(msg.content, msg.properties.contentType as string | undefined, this.options.maxMessageBytes);
    if (!decoded.ok) return this.#errorReply(new RpcError("bad_message", `${describeTarget(target)}: ${decoded.reason}`));
    const checks = checksFor(method);
    const issues = checks.request(decoded.value);
    if (issues !== undefined) return this.#errorReply(new ValidationError("invalid_request", "server", issues, target));

    const ctx = new Context(this.service, method, correlationId, msg, deadline);
    try {
      const result = await handler(decoded.value, ctx);
      const resultIssues = checks.response(result);
      if (resultIssues !== undefined) {
        this.options.logger.error(`warren: ${describeTarget(target)}: handler returned an invalid response: ${formatIssues(resultIssues)}`);
        return this.#errorReply(new ValidationError("invalid_response", "server", resultIssues, target));
      }
      return { type: RESULT_TYPE, body: result };
    } catch (err) {
      return this.#errorReply(this.#toWireError(err, method, target));
    } finally {
      ctx.dispose();
    }
  }

  #toWireError(err: unknown, method: MethodDescriptor, target: { service: string; method: string }): RpcError {
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

  #errorReply(err: RpcError): { type: string; body: unknown } {
    return { type: ERROR_TYPE, body: serverErrorBody(err, this.options.exposeInternalErrors) };
  }
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
    msg: ConsumeMessage,
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
    clearTimeout(this.#timer);
  }
}
