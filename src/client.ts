/**
 * The caller side: an {@link RpcTransport} over one AMQP channel. Requests go
 * to the service's queue with `mandatory` set; replies come back on direct
 * reply-to (or an exclusive callback queue) and are matched by correlation id.
 */
import type { EventEmitter } from "node:events";
import type { Channel, ConsumeMessage, Message } from "amqplib";
import { v4 as uuidv4 } from "uuid";
import type { Connection } from "./connection.js";
import type { ErrorShape, MethodDescriptor } from "./descriptor.js";
import { RpcError, ValidationError, describeTarget } from "./errors.js";
import { callTimeout, resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from "./options.js";
import {
  CONTENT_TYPE,
  DEADLINE_HEADER,
  DIRECT_REPLY_TO,
  ERROR_TYPE,
  RESULT_TYPE,
  decodeBody,
  encodeBody,
  isKnownReplyCode,
  toErrorBody,
} from "./protocol.js";
import type { CallOptions, RpcTransport } from "./transport.js";
import { checksFor } from "./validation.js";

/** Outcomes after which an idempotent call is tried again. */
const RETRY_ON: ReadonlySet<string> = new Set(["connection_lost"]);

interface Pending {
  readonly method: MethodDescriptor<any, any, any>;
  readonly queue: string;
  resolve(value: unknown): void;
  reject(err: RpcError): void;
}

interface ReplyChannel {
  readonly channel: Channel;
  readonly replyTo: string;
}

/**
 * Calls services on one connection. Pass it to generated client stubs:
 * `new CalculatorClient(await conn.client())`. Safe for any number of
 * concurrent calls; create one per process and reuse it.
 */
export class RpcClient implements RpcTransport {
  readonly #connection: Connection;
  readonly #options: ResolvedClientOptions;
  readonly #pending = new Map<string, Pending>();
  #reply: Promise<ReplyChannel> | undefined;
  /** The open reply channel, for the synchronous fast path; undefined while (re)opening. */
  #open: ReplyChannel | undefined;
  #drained: Promise<void> | undefined;
  #unblocked: Promise<void> | undefined;
  #closed = false;

  /** @internal use `connection.client(options)`. */
  constructor(connection: Connection, options: ClientOptions = {}) {
    this.#connection = connection;
    this.#options = resolveClientOptions(options, connection.logger);
  }

  /** Resolves once the reply consumer is active; rejects if it cannot be set up. */
  async ready(): Promise<void> {
    await this.#replyChannel();
  }

  /** Number of calls awaiting a reply. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /**
   * Performs one call; see {@link RpcTransport.call} for what a caller can rely on.
   * Methods the contract declares `idempotent` are retried after `connection_lost`
   * while their deadline allows (not after `no_server`: that answer must stay fast).
   */
  async call<Req, Res, Err extends ErrorShape>(method: MethodDescriptor<Req, Res, Err>, request: Req, options: CallOptions = {}): Promise<Res> {
    const target = { service: method.service.name, method: method.name };
    if (this.#closed) throw new RpcError("canceled", `${describeTarget(target)}: the client is closed`, target);
    if (options.signal?.aborted) throw canceled(target, options.signal);
    let timeoutMs: number;
    try {
      timeoutMs = callTimeout(options.timeoutMs, method.timeoutMs, this.#options.timeoutMs);
    } catch (err) {
      throw new RpcError("invalid_request", `${describeTarget(target)}: ${(err as Error).message}`, { ...target, cause: err });
    }
    const issues = checksFor(method).request(request);
    if (issues !== undefined) throw new ValidationError("invalid_request", "client", issues, target);
    const deadline = Date.now() + timeoutMs;
    const body = encodeBody(request);
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.#attempt(method, body, deadline, timeoutMs, options)) as Res;
      } catch (err) {
        const retryable = method.idempotent === true && (err as RpcError).code !== undefined && RETRY_ON.has((err as RpcError).code);
        const delay = Math.min(1000, 25 * 2 ** attempt);
        if (!retryable || this.#closed || Date.now() + delay >= deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** One publish and the wait for its reply, bounded by the call's absolute deadline. */
  #attempt(method: MethodDescriptor<any, any, any>, body: Buffer, deadline: number, timeoutMs: number, options: CallOptions): Promise<unknown> {
    const target = { service: method.service.name, method: method.name };
    const queue = this.#options.queues[target.service] ?? method.service.queue;
    const correlationId = uuidv4();
    const pending = this.#pending;
    return new Promise<unknown>((resolve, reject) => {
      const signal = options.signal;
      const settle = () => {
        pending.delete(correlationId);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        settle();
        reject(canceled(target, signal!));
      };
      const timer = setTimeout(() => {
        settle();
        reject(new RpcError("timeout", `${describeTarget(target)}: no reply within ${timeoutMs} ms (queue "${queue}")`, target));
      }, Math.max(0, deadline - Date.now()));
      signal?.addEventListener("abort", onAbort, { once: true });
      const entry: Pending = {
        method,
        queue,
        resolve: (value) => {
          settle();
          resolve(value);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      };
      pending.set(correlationId, entry);

      const publish = ({ channel, replyTo }: ReplyChannel) => {
        if (!pending.has(correlationId)) return; // settled while waiting for the channel
        try {
          const flushed = channel.publish("", queue, body, {
            correlationId,
            replyTo,
            type: method.name,
            contentType: CONTENT_TYPE,
            expiration: String(Math.max(1, deadline - Date.now())),
            timestamp: Math.floor(Date.now() / 1000),
            // One header only: amqplib encodes (and the server decodes) every table entry on the hot path.
            headers: options.headers === undefined ? { [DEADLINE_HEADER]: deadline } : { ...options.headers, [DEADLINE_HEADER]: deadline },
            mandatory: true,
          });
          // Back-pressure: once the socket buffer is full, later calls wait for "drain" instead of piling up.
          if (!flushed && this.#drained === undefined) {
            this.#drained = firstOf(channel, ["drain", "close"]).finally(() => (this.#drained = undefined));
          }
        } catch (err) {
          entry.reject(new RpcError("connection_lost", `${describeTarget(target)}: could not publish: ${(err as Error).message}`, { ...target, cause: err }));
        }
      };
      // Fast path: publish now when the channel is open and nothing asks us to wait.
      const open = this.#open;
      if (open !== undefined && this.#drained === undefined && !this.#connection.blocked) publish(open);
      else this.#writable().then(publish, (err: unknown) => pending.get(correlationId)?.reject(asConnectionLost(err, target)));
    });
  }

  /** The reply channel once it accepts publishes: connected, not blocked by a broker alarm, socket drained. */
  async #writable(): Promise<ReplyChannel> {
    const reply = await this.#replyChannel();
    while (this.#drained !== undefined || this.#connection.blocked) {
      if (this.#drained !== undefined) await this.#drained;
      if (this.#connection.blocked) {
        this.#unblocked ??= firstOf(this.#connection, ["unblocked", "disconnected"]).finally(() => (this.#unblocked = undefined));
        await this.#unblocked;
      }
    }
    return reply;
  }

  /** Rejects every pending call with `canceled`, then closes the client's channel. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll((p) => new RpcError("canceled", `${describeTarget({ service: p.method.service.name, method: p.method.name })}: the client was closed`));
    const reply = this.#reply;
    this.#reply = undefined;
    this.#open = undefined;
    if (reply) await reply.then(({ channel }) => channel.close()).catch(() => {});
  }

  /** The channel replies arrive on, opened on first use and again after it closes. */
  #replyChannel(): Promise<ReplyChannel> {
    if (this.#reply === undefined) {
      const opening = this.#openReplyChannel();
      this.#reply = opening;
      opening.catch(() => {
        if (this.#reply === opening) this.#reply = undefined;
      });
    }
    return this.#reply;
  }

  async #openReplyChannel(): Promise<ReplyChannel> {
    const channel = await this.#connection.channel();
    let replyTo = DIRECT_REPLY_TO;
    if (this.#options.replyQueue === "exclusive") {
      replyTo = (await channel.assertQueue("", { exclusive: true, autoDelete: true, durable: false })).queue;
    }
    // Direct reply-to requires the consumer (no-ack) and the publishes on the same channel.
    await channel.consume(replyTo, (msg) => this.#onReply(msg), { noAck: true });
    channel.on("return", (msg: Message) => this.#onReturn(msg));
    channel.on("close", () => {
      this.#reply = undefined;
      this.#open = undefined;
      this.#failAll((p) =>
        new RpcError("connection_lost", `${describeTarget({ service: p.method.service.name, method: p.method.name })}: the connection to RabbitMQ was lost while waiting for a reply`),
      );
    });
    const open = { channel, replyTo };
    this.#open = open;
    return open;
  }

  #onReply(msg: ConsumeMessage | null): void {
    if (msg === null) return; // consumer cancelled by the broker; the channel close follows
    const id = msg.properties.correlationId as unknown;
    const pending = typeof id === "string" ? this.#pending.get(id) : undefined;
    if (pending === undefined) return; // a late reply to a call that already settled: ignored by design
    const method = pending.method;
    const target = { service: method.service.name, method: method.name };
    const decoded = decodeBody(msg.content, msg.properties.contentType as string | undefined, this.#options.maxMessageBytes);
    if (!decoded.ok) {
      pending.reject(new RpcError("invalid_response", `${describeTarget(target)}: unreadable reply: ${decoded.reason}`, target));
      return;
    }
    const checks = checksFor(method);
    if (msg.properties.type === RESULT_TYPE) {
      const issues = checks.response(decoded.value);
      if (issues === undefined) pending.resolve(decoded.value);
      else pending.reject(new ValidationError("invalid_response", "client", issues, target));
      return;
    }
    const body = msg.properties.type === ERROR_TYPE ? toErrorBody(decoded.value) : undefined;
    if (body === undefined || !isKnownReplyCode(body.code, method.errors)) {
      const what = body === undefined ? `reply type ${JSON.stringify(msg.properties.type)}` : `undeclared error code "${body.code}"`;
      pending.reject(new RpcError("invalid_response", `${describeTarget(target)}: malformed reply (${what})`, { ...target, data: body }));
      return;
    }
    pending.reject(this.#errorFromReply(body, method, target));
  }

  #errorFromReply(body: { code: string; message: string; data?: unknown }, method: MethodDescriptor<any, any, any>, target: { service: string; method: string }): RpcError {
    const dataCheck = checksFor(method).errors.get(body.code);
    if (dataCheck !== undefined) {
      const issues = dataCheck(body.data);
      if (issues !== undefined) return new ValidationError("invalid_response", "client", issues, { ...target, what: `data of error "${body.code}"` });
      return new RpcError(body.code, body.message, { ...target, data: body.data });
    }
    if ((body.code === "invalid_request" || body.code === "invalid_response") && isIssueList(body.data)) {
      return new ValidationError(body.code, "server", body.data.issues, target);
    }
    return new RpcError(body.code, `${describeTarget(target)}: ${body.message}`, { ...target, data: body.data });
  }

  #onReturn(msg: Message): void {
    const id = msg.properties.correlationId as unknown;
    const pending = typeof id === "string" ? this.#pending.get(id) : undefined;
    if (pending === undefined) return;
    const target = { service: pending.method.service.name, method: pending.method.name };
    pending.reject(
      new RpcError("no_server", `${describeTarget(target)}: no server: queue "${pending.queue}" does not exist (the broker returned the request unrouted)`, target),
    );
  }

  #failAll(make: (p: Pending) => RpcError): void {
    for (const p of [...this.#pending.values()]) p.reject(make(p));
  }
}

/** Resolves on the first of `events`, leaving no listener behind. */
function firstOf(emitter: EventEmitter, events: readonly string[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      for (const e of events) emitter.off(e, done);
      resolve();
    };
    for (const e of events) emitter.on(e, done);
  });
}

function canceled(target: { service: string; method: string }, signal: AbortSignal): RpcError {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new RpcError("canceled", `${describeTarget(target)}: canceled by the caller${reason}`, { ...target, cause: signal.reason });
}

function asConnectionLost(err: unknown, target: { service: string; method: string }): RpcError {
  if (err instanceof RpcError) return new RpcError(err.code, `${describeTarget(target)}: ${err.message}`, { ...target, cause: err });
  return new RpcError("connection_lost", `${describeTarget(target)}: cannot open a channel: ${(err as Error).message}`, { ...target, cause: err });
}

function isIssueList(data: unknown): data is { issues: { path: string; message: string }[] } {
  const issues = (data as { issues?: unknown } | null | undefined)?.issues;
  return Array.isArray(issues) && issues.every((i) => typeof i?.path === "string" && typeof i?.message === "string");
}
