/**
 * Options of connections, clients and servers, each normalised once into a
 * resolved form at construction.
 */
import type { SecureContextOptions } from "node:tls";
import type { Logger } from "./logging.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./protocol.js";

export type { Logger, LogFields } from "./logging.js";

/** How a durable queue is declared when it does not exist yet. */
export type QueueType = "classic" | "quorum";

/** Checks a `queueType` option; throws a TypeError naming `what` for anything else. */
export function checkQueueType(what: string, type: unknown): QueueType {
  if (type === undefined) return "classic";
  if (type === "classic" || type === "quorum") return type;
  throw new TypeError(`warren: ${what}: queueType must be "classic" or "quorum", got ${JSON.stringify(type)}`);
}

/** Default broker URL when neither an argument nor `AMQP_URL` is given. */
export const DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672";

/** Options of {@link connect}. */
export interface ConnectionOptions {
  /** Heartbeat interval in seconds. @default 10 */
  heartbeatSeconds?: number;
  /** TLS options for `amqps://` URLs (ca, cert, key, passphrase, servername, rejectUnauthorized). */
  tls?: SecureContextOptions & { servername?: string; rejectUnauthorized?: boolean };
  /** Give up connecting after this long. @default 5000 */
  connectTimeoutMs?: number;
  /** Connection name shown in the broker's management UI. @default "warren" */
  name?: string;
  /** Where log records go (pino, `console`, or anything with `warn(fields, message)` and `error(fields, message)`). @default one line per record on the console */
  logger?: Logger;
  /**
   * Write a channel's frames straight to the socket while nothing of that
   * channel is queued and the socket accepts writes (instead of amqplib's
   * queue, drained a `setImmediate` later), and send the frames of one turn
   * with a single socket write (`writev`) instead of one write each.
   * Measured: +15–60% calls/s from the single writes; the direct path takes
   * ~5 µs off each hop at one call in flight.
   * @default true
   */
  coalesceWrites?: boolean;
  /** Backoff between reconnection attempts after a loss. */
  reconnect?: ReconnectOptions;
  /**
   * Spans and metrics by OpenTelemetry's conventions on every client, server
   * and event bus of the connection, when `@opentelemetry/api` is installed
   * and an SDK is registered (see `warren/otel`); `false` installs none.
   * @default true
   */
  telemetry?: boolean;
}

/** Capped exponential backoff with jitter; attempts go on until the connection is closed. */
export interface ReconnectOptions {
  /** Delay ceiling of the first attempt. @default 100 */
  initialDelayMs?: number;
  /** Largest delay between attempts. @default 5000 */
  maxDelayMs?: number;
}

/** {@link ReconnectOptions} with defaults applied. */
export type ResolvedReconnect = Required<ReconnectOptions>;

/** Applies the reconnect defaults. */
export function resolveReconnect(options: ReconnectOptions = {}): ResolvedReconnect {
  return {
    initialDelayMs: positive("reconnect.initialDelayMs", options.initialDelayMs ?? 100),
    maxDelayMs: positive("reconnect.maxDelayMs", options.maxDelayMs ?? 5000),
  };
}

/** Options of an {@link RpcClient}. */
export interface ClientOptions {
  /** Budget of a call whose method declares no `timeoutMs` and whose caller passes none. @default 30000 */
  timeoutMs?: number;
  /**
   * `direct`: RabbitMQ direct reply-to (no queue, lowest latency).
   * `exclusive`: a server-named exclusive callback queue per client.
   * @default "direct"
   */
  replyQueue?: "direct" | "exclusive";
  /** Request queue per service name, overriding the contract's queue. */
  queues?: Readonly<Record<string, string>>;
  /** Largest reply body accepted. @default 1 MiB */
  maxMessageBytes?: number;
  /**
   * When a service's queue exists but no server consumes it: `false` fails the
   * call with `no_server` at once; `true` sends it anyway and waits for a
   * server within the call's deadline (rolling restarts). Per call too.
   * @default false
   */
  waitForServer?: boolean;
  /** @default the connection's logger */
  logger?: Logger;
}

/** Options of an {@link RpcServer}. */
export interface ServerOptions {
  /** Unacknowledged requests per registered service: the bound on concurrent handlers. @default 32 */
  prefetch?: number;
  /** Largest request body accepted; checked before parsing. @default 1 MiB */
  maxMessageBytes?: number;
  /** Send the message and stack of unexpected handler errors to callers (development only). @default false */
  exposeInternalErrors?: boolean;
  /**
   * Calls and event publishes made anywhere inside a handler of this server
   * inherit its deadline and signal as if passed `parent: ctx`. It runs each
   * handler in an AsyncLocalStorage, which makes Node track every promise of
   * the process: measured on Node 20 (`npm run bench:als`), a promise-bound
   * loop took 2.8× as long and a whole call 1.23× (README, "Calls made inside
   * a handler"). Without it, pass `parent: ctx`.
   * @default false
   */
  asyncContext?: boolean;
  /**
   * The broker's `consumer_timeout` in ms, as set in its rabbitmq.conf
   * (RabbitMQ's default: 1800000, 30 minutes). When given, `register` warns
   * about each method whose contract `timeoutMs` is not below it, and a
   * request whose handler is still running close to it (a quarter of it
   * before, at most 10 s before) is acknowledged early, so the broker keeps
   * the channel: from then on that request is at-most-once (if this process
   * dies before replying, it is not redelivered; the caller gets `timeout`).
   * Without it, warren still acknowledges a request once its caller's
   * deadline has passed, and recovers when the broker closes the channel.
   * @see docs/FAILURES.md#long-handlers-and-consumer_timeout
   * @default undefined (not known: no early acknowledgement before the deadline)
   */
  consumerTimeoutMs?: number;
  /** @default the connection's logger */
  logger?: Logger;
}

/** Options of an {@link EventBus} (`connection.events(options)`). */
export interface EventBusOptions {
  /** Exchange name per service name, overriding the contract's exchange. */
  exchanges?: Readonly<Record<string, string>>;
  /** Wait for the broker's publisher confirm before `publish` resolves. @default true */
  confirm?: boolean;
  /** Publish with delivery mode 2, so events in durable queues survive a broker restart. @default true */
  persistent?: boolean;
  /** Largest event body accepted by subscribers; checked before parsing. @default 1 MiB */
  maxMessageBytes?: number;
  /** @default the connection's logger */
  logger?: Logger;
}

/** Options of one subscription. Without `group` it is a broadcast subscription. */
export interface SubscribeOptions {
  /**
   * Consumer group: every subscriber with the same group shares one durable
   * queue, so each event is handled once per group, spread by prefetch.
   * Without it, this subscriber gets its own exclusive, auto-delete queue and
   * sees every event (broadcast).
   */
  group?: string;
  /** Queue name of a group. @default `<exchange>.<event>.<group>` */
  queue?: string;
  /**
   * Binding key. Topic exchanges accept `*` (one word) and `#` (zero or more words).
   * @default the event's routing key, with every `{field}` as `*` on topic exchanges
   */
  bindingKey?: string;
  /** Events handled at once by this subscriber. @default 16 */
  prefetch?: number;
  /**
   * How long the acknowledgement of a handled event may wait to go out with
   * others' (one `multiple` ack for up to a quarter of the prefetch; with a
   * prefetch below 8 nothing is held): one frame per
   * batch instead of per event, for the subscriber and the broker. Should
   * the channel be lost meanwhile, the broker delivers those events again
   * (delivery is at-least-once in any case: de-duplicate on `ctx.messageId`);
   * copies that come back to this subscriber are acknowledged, not run again.
   * 0: each turn's acks go out at its end. @default 10
   */
  ackDelayMs?: number;
  /** Tries per event before it is dead-lettered; 1 means no retry. @default 5 */
  maxAttempts?: number;
  /**
   * Wait before the first retry; doubles per attempt, at most 30 s (whole
   * milliseconds, rounded up). The broker holds a waiting event in a wait
   * queue per delay (`<queue>.retry.<ms>`), so it takes no prefetch slot,
   * survives a restart of the subscriber, and `close()` does not wait for it.
   * 0 puts a retry straight back at the end of the queue.
   * @default 200
   */
  retryDelayMs?: number;
  /**
   * Longest run of the handler: past it the run counts as failed (retried,
   * then dead-lettered with the reason) and the event's `ctx.signal` fires;
   * the handler is not stopped, its later outcome is ignored. Keep it below
   * the broker's `consumer_timeout`. @default none
   */
  handlerTimeoutMs?: number;
  /**
   * Where dead letters go: a durable queue, declared as is (no length limit).
   * @default group: `<queue>.dead`; broadcast: `<exchange>.<event>.dead`, shared
   * by the event's broadcast subscribers and bounded (the newest 10,000 dead
   * letters, each kept 7 days; docs/FAILURES.md)
   */
  deadLetterQueue?: string;
  /**
   * How the group queue, its wait queues and the dead-letter queue are
   * declared when they do not exist yet: `classic`, or `quorum` (replicated
   * across a cluster's nodes). Every subscriber of a queue must use the same
   * type. A broadcast subscriber's own queue and wait queues are always
   * classic and exclusive. @default "classic"
   */
  queueType?: QueueType;
}

/** {@link EventBusOptions} with every default applied. */
export type ResolvedEventBusOptions = Required<Omit<EventBusOptions, "logger">> & { logger: Logger };

/** Applies the event bus defaults; rejects nonsensical values with a clear message. */
export function resolveEventBusOptions(options: EventBusOptions, logger: Logger): ResolvedEventBusOptions {
  return {
    exchanges: options.exchanges ?? {},
    confirm: options.confirm ?? true,
    persistent: options.persistent ?? true,
    maxMessageBytes: positive("maxMessageBytes", options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
    logger: options.logger ?? logger,
  };
}

/** A subscription's numeric options with defaults applied. */
export interface ResolvedSubscribeLimits {
  readonly prefetch: number;
  readonly ackDelayMs: number;
  readonly maxAttempts: number;
  readonly retryDelayMs: number;
  readonly handlerTimeoutMs: number | undefined;
}

/** How long an event's acknowledgement may be held by default (see {@link SubscribeOptions.ackDelayMs}). */
export const DEFAULT_ACK_DELAY_MS = 10;

/** The longest an event's acknowledgement is held (see {@link SubscribeOptions.ackDelayMs}): well inside any consumer timeout. */
export const MAX_ACK_DELAY_MS = 1_000;

/** The longest wait before a retry of an event. */
export const MAX_RETRY_DELAY_MS = 30_000;

/**
 * How long an event waits before the try after `attempt` (1 = the first):
 * `retryDelayMs · 2^(attempt-1)` in whole milliseconds (rounded up), at most
 * {@link MAX_RETRY_DELAY_MS}; 0 when `retryDelayMs` is 0.
 */
export function retryDelayOf(limits: Pick<ResolvedSubscribeLimits, "retryDelayMs">, attempt: number): number {
  return Math.min(MAX_RETRY_DELAY_MS, Math.ceil(limits.retryDelayMs * 2 ** (attempt - 1)));
}

/** Every distinct delay a subscription with `limits` may wait before a retry (attempts 1 to `maxAttempts - 1`), shortest first, without 0. */
export function retryDelaysOf(limits: Pick<ResolvedSubscribeLimits, "retryDelayMs" | "maxAttempts">): number[] {
  const delays = new Set<number>();
  for (let attempt = 1; attempt < limits.maxAttempts; attempt++) {
    const delay = retryDelayOf(limits, attempt);
    if (delay > 0) delays.add(delay);
    if (delay >= MAX_RETRY_DELAY_MS) break;
  }
  return [...delays];
}

function ackDelayOf(ms: number | undefined): number {
  if (ms === 0) return 0;
  const delay = positive("ackDelayMs", ms ?? DEFAULT_ACK_DELAY_MS);
  if (delay > MAX_ACK_DELAY_MS) throw new RangeError(`warren: ackDelayMs must be at most ${MAX_ACK_DELAY_MS} (an acknowledgement held longer keeps handled events at risk of redelivery), got ${delay}`);
  return delay;
}

/** Applies the subscription defaults; rejects nonsensical values with a clear message. */
export function resolveSubscribeLimits(options: SubscribeOptions): ResolvedSubscribeLimits {
  const maxAttempts = positive("maxAttempts", options.maxAttempts ?? 5);
  if (!Number.isInteger(maxAttempts)) throw new RangeError(`warren: maxAttempts must be an integer, got ${maxAttempts}`);
  if (options.group !== undefined && !/^[A-Za-z0-9._:-]{1,100}$/.test(options.group)) {
    throw new RangeError(`warren: group ${JSON.stringify(options.group)} must be 1-100 letters, digits or . _ : -`);
  }
  return {
    prefetch: positive("prefetch", options.prefetch ?? 16),
    ackDelayMs: ackDelayOf(options.ackDelayMs),
    maxAttempts,
    retryDelayMs: options.retryDelayMs === 0 ? 0 : positive("retryDelayMs", options.retryDelayMs ?? 200),
    handlerTimeoutMs: options.handlerTimeoutMs === undefined ? undefined : Math.min(positive("handlerTimeoutMs", options.handlerTimeoutMs), MAX_TIMEOUT_MS),
  };
}

/** {@link ClientOptions} with every default applied. */
export type ResolvedClientOptions = Required<Omit<ClientOptions, "logger">> & { logger: Logger };
/** {@link ServerOptions} with every default applied (`consumerTimeoutMs` stays undefined when not given). */
export type ResolvedServerOptions = Required<Omit<ServerOptions, "logger" | "consumerTimeoutMs">> & { logger: Logger; consumerTimeoutMs: number | undefined };

/** Applies the client defaults; rejects nonsensical values with a clear message. */
export function resolveClientOptions(options: ClientOptions, logger: Logger): ResolvedClientOptions {
  return {
    timeoutMs: positive("timeoutMs", options.timeoutMs ?? 30_000),
    replyQueue: options.replyQueue ?? "direct",
    queues: options.queues ?? {},
    waitForServer: options.waitForServer ?? false,
    maxMessageBytes: positive("maxMessageBytes", options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
    logger: options.logger ?? logger,
  };
}

/** Applies the server defaults; rejects nonsensical values with a clear message. */
export function resolveServerOptions(options: ServerOptions, logger: Logger): ResolvedServerOptions {
  return {
    prefetch: positive("prefetch", options.prefetch ?? 32),
    maxMessageBytes: positive("maxMessageBytes", options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
    exposeInternalErrors: options.exposeInternalErrors ?? false,
    asyncContext: options.asyncContext ?? false,
    consumerTimeoutMs: options.consumerTimeoutMs === undefined ? undefined : positive("consumerTimeoutMs", options.consumerTimeoutMs),
    logger: options.logger ?? logger,
  };
}

/** The budget of one call: per-call option, else the method's default, else the client's. */
export function callTimeout(perCall: number | undefined, method: number | undefined, client: number): number {
  const ms = positive("timeoutMs", perCall ?? method ?? client);
  if (ms > MAX_TIMEOUT_MS) throw new RangeError(`warren: timeoutMs must be at most ${MAX_TIMEOUT_MS} (about 24.8 days), got ${ms}`);
  return ms;
}

/** The longest call timeout: what a Node timer can wait (2^31 - 1 ms). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`warren: ${name} must be a positive number, got ${value}`);
  return value;
}

/** The URL with its password replaced by `***`, safe for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/([^:@/\s]*):[^@/\s]+@/g, "$1:***@");
  }
}
