/**
 * One AMQP connection shared by clients, servers and event buses,
 * re-established after a loss with capped, jittered exponential backoff. It is
 * the {@link ChannelSource} that `rpc/` and `events/` open channels from.
 */
import { EventEmitter } from "node:events";
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from "amqplib";
import { RpcError } from "../core/errors.js";
import { DEFAULT_URL, redactUrl, resolveReconnect, type ConnectionOptions, type Logger, type ResolvedReconnect } from "../core/options.js";
import { AmqpChannel } from "./channel.js";
import type { ChannelSource } from "./channel-source.js";
import { coalesceWrites, writeThrough } from "./internals.js";

/** How to start a broker, appended to "cannot reach" errors. */
const START_HINT = "start one with `rabbitmq-server -detached` (or set AMQP_URL)";

/** An open AMQP connection and the (redacted) address it went to. */
export interface Dialed {
  model: ChannelModel;
  url: string;
}

/** Opens a connection to one of the broker addresses; rejects with each address's failure. */
export interface Dial {
  (): Promise<Dialed>;
}

/**
 * A connection to RabbitMQ that survives broker restarts and network faults.
 *
 * Events:
 * - `connected` — (re)connected; channels can be opened.
 * - `disconnected` (error) — the connection was lost; calls in flight fail with `connection_lost`.
 * - `reconnecting` ({ attempt, delayMs }) — the next attempt is scheduled.
 * - `blocked` (reason) / `unblocked` — the broker's resource alarm (publishes are paused meanwhile).
 * - `close` — closed for good by {@link Connection.close}.
 */
export class AmqpConnection extends EventEmitter implements ChannelSource {
  /** Where the runtime logs. */
  readonly logger: Logger;
  readonly #dial: Dial;
  readonly #reconnect: ResolvedReconnect;
  readonly #coalesce: boolean;
  #model: ChannelModel | undefined;
  #ready: Promise<ChannelModel>;
  #settleReady: { resolve(m: ChannelModel): void; reject(e: Error): void } | undefined;
  #closed = false;
  #blocked = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #url: string;

  /** @internal use `connect()`. */
  constructor({ model, url }: Dialed, dial: Dial, options: ConnectionOptions) {
    super();
    this.#url = url;
    this.logger = options.logger ?? console;
    this.#dial = dial;
    this.#reconnect = resolveReconnect(options.reconnect);
    this.#coalesce = options.coalesceWrites ?? true;
    this.#ready = Promise.resolve(model);
    this.#adopt(model);
  }

  /** The broker address of the current (or last) connection, password redacted; safe to log. With several addresses it changes when a reconnection lands on another. */
  get url(): string {
    return this.#url;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True while connected to the broker. */
  get connected(): boolean {
    return this.#model !== undefined;
  }

  /** True while the broker's memory or disk alarm blocks publishing. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /**
   * Opens an amqplib channel for raw AMQP work outside warren's clients and
   * servers, waiting for a reconnection in progress first. The caller owns it.
   * @throws RpcError `connection_lost` once the connection is closed for good.
   */
  async channel(): Promise<Channel> {
    return (await this.open("plain")).raw;
  }

  /**
   * Like {@link channel}, in confirm mode (publishes take a callback the broker acknowledges).
   * @throws RpcError `connection_lost` once the connection is closed for good.
   */
  async confirmChannel(): Promise<ConfirmChannel> {
    return (await this.open("confirm")).raw as ConfirmChannel;
  }

  /** See {@link ChannelSource.open}: waits for a reconnection in progress, then opens a channel that tracks its own close from the start. */
  async open(mode: "plain" | "confirm" = "plain"): Promise<AmqpChannel> {
    if (this.#closed) throw new RpcError("connection_lost", `connection to ${this.url} is closed`);
    const model = await this.#ready;
    const raw = mode === "confirm" ? await model.createConfirmChannel() : await model.createChannel();
    const channel = new AmqpChannel(raw);
    if (this.#coalesce) writeThrough(model, raw);
    return channel;
  }

  /** See {@link ChannelSource.unblocked}. */
  unblocked(): Promise<void> {
    if (!this.#blocked || this.#model === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.off("unblocked", done);
        this.off("disconnected", done);
        resolve();
      };
      this.on("unblocked", done);
      this.on("disconnected", done);
    });
  }

  /** Closes the connection for good and stops reconnecting. Close clients and servers first for a graceful stop. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#settleReady?.reject(new RpcError("connection_lost", `connection to ${this.url} is closed`));
    const model = this.#model;
    this.#model = undefined;
    if (model) await model.close().catch(() => {});
    this.emit("close");
  }

  #adopt(model: ChannelModel): void {
    this.#model = model;
    if (this.#coalesce) coalesceWrites(model);
    this.#blocked = false;
    model.on("error", () => {
      /* the close event that follows carries the same error */
    });
    model.on("close", (err?: Error) => {
      if (this.#model !== model) return;
      this.#model = undefined;
      if (this.#closed) return;
      this.logger.warn(`warren: lost the connection to ${this.url}${err ? ` (${redactUrl(err.message)})` : ""}; reconnecting`);
      this.#ready = new Promise<ChannelModel>((resolve, reject) => (this.#settleReady = { resolve, reject }));
      this.#ready.catch(() => {});
      this.emit("disconnected", err);
      this.#scheduleReconnect(1);
    });
    model.on("blocked", (reason: string) => {
      this.#blocked = true;
      this.emit("blocked", reason);
    });
    model.on("unblocked", () => {
      this.#blocked = false;
      this.emit("unblocked");
    });
  }

  #scheduleReconnect(attempt: number): void {
    if (this.#closed) return;
    const { initialDelayMs, maxDelayMs } = this.#reconnect;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
    // "Equal jitter": half fixed, half random, so a fleet does not reconnect in lockstep.
    const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.emit("reconnecting", { attempt, delayMs });
    this.#retryTimer = setTimeout(() => {
      this.#dial().then(
        ({ model, url }) => {
          if (this.#closed) {
            void model.close().catch(() => {});
            return;
          }
          this.#url = url;
          this.#adopt(model);
          this.#settleReady?.resolve(model);
          this.#settleReady = undefined;
          this.logger.warn(`warren: reconnected to ${this.url} after ${attempt} attempt(s)`);
          this.emit("connected");
        },
        () => this.#scheduleReconnect(attempt + 1),
      );
    }, delayMs);
  }
}

/**
 * Dials the first broker address that accepts, with TCP_NODELAY on (without
 * it Nagle plus delayed ACK caps a sequential caller near 45 calls/s), and
 * returns that connection with the dialer reconnections use. See `connect()`.
 * @throws RpcError `connection_lost` naming each redacted address with its failure, and how to start a broker, when none accepts.
 * @throws TypeError when the list is empty.
 */
export async function dialAmqp(url: string | readonly string[] | undefined, options: ConnectionOptions): Promise<{ first: Dialed; dial: Dial }> {
  const targets = typeof url === "string" ? [url] : url === undefined ? [process.env.AMQP_URL ?? DEFAULT_URL] : [...url];
  if (targets.length === 0) throw new TypeError("warren: connect() was given an empty list of broker addresses");
  const socketOptions = {
    noDelay: true,
    timeout: options.connectTimeoutMs ?? 5000,
    clientProperties: { connection_name: options.name ?? "warren" },
    ...(options.tls ?? {}),
  };
  const heartbeat = options.heartbeatSeconds ?? 10;
  const dial = dialer(targets, (target) => amqp.connect(withHeartbeat(target, heartbeat), socketOptions));
  try {
    return { first: await dial(), dial };
  } catch (err) {
    throw new RpcError("connection_lost", `cannot reach RabbitMQ at ${(err as Error).message}: ${START_HINT}`, { cause: (err as Error).cause ?? err });
  }
}

/**
 * Tries `targets` in turn, starting after the address of the last success.
 * Rejects with an Error whose message lists each redacted address with its
 * failure (`amqp://…:1 (ECONNREFUSED)`); its `cause` is the last failure.
 */
function dialer(targets: readonly string[], open: (target: string) => Promise<ChannelModel>): Dial {
  let start = 0;
  return async () => {
    const failures: string[] = [];
    let last: unknown;
    for (let i = 0; i < targets.length; i++) {
      const index = (start + i) % targets.length;
      const target = targets[index]!;
      try {
        const model = await open(target);
        start = (index + 1) % targets.length;
        return { model, url: redactUrl(target) };
      } catch (err) {
        last = err;
        const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        failures.push(`${redactUrl(target)} (${redactUrl(String(reason))})`);
      }
    }
    throw new Error(failures.join(", "), { cause: last });
  };
}

function withHeartbeat(url: string, seconds: number): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}heartbeat=${seconds}`;
}
