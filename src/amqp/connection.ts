/**
 * One AMQP connection shared by clients, servers and event buses,
 * re-established after a loss with capped, jittered exponential backoff. It is
 * the {@link ChannelSource} that `rpc/` and `events/` open channels from.
 */
import { EventEmitter } from "node:events";
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from "amqplib";
import { RpcError } from "../core/errors.js";
import { consoleLogger, logInfo } from "../core/logging.js";
import { DEFAULT_URL, redactUrl, resolveReconnect, type ConnectionOptions, type Logger, type ResolvedReconnect } from "../core/options.js";
import { AmqpChannel } from "./channel.js";
import type { ChannelSource } from "./channel-source.js";
import { dialFailureMessage, explainDialFailure, type DialAttempt, type DialFailure } from "./dial-errors.js";
import { coalesceWrites, recordingHandshake, writeThrough } from "./internals.js";

/** An open AMQP connection and the (redacted) address it went to. */
export interface Dialed {
  model: ChannelModel;
  url: string;
}

/** Opens a connection to one of the broker addresses; rejects with an RpcError naming each address's failure (see `dialAmqp`). */
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
    this.logger = options.logger ?? consoleLogger;
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
    if (model) {
      // amqplib settles close() on the broker's close-ok only: a socket lost after the close was sent leaves it pending forever, while the
      // connection's close event still comes; either settles it.
      await new Promise<void>((resolve) => {
        model.once("close", () => resolve());
        model.close().then(resolve, () => resolve());
      });
    }
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
      // The alarm was this connection's: the next one reports its own. (Staying blocked while down would make waiting publishers spin.)
      this.#blocked = false;
      if (this.#closed) return;
      this.logger.warn({ url: this.url, ...(err ? { err: redactUrl(err.message) } : {}) }, `lost the connection to ${this.url}${err ? ` (${redactUrl(err.message)})` : ""}; reconnecting`);
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
          logInfo(this.logger, { url: this.url, attempt }, `reconnected to ${this.url} after ${attempt} attempt(s)`);
          this.emit("connected");
        },
        () => this.#scheduleReconnect(attempt + 1),
      );
    }, delayMs);
  }
}

/** One broker address, checked and parsed before anything is dialed. */
interface BrokerTarget extends DialAttempt {
  /** What amqplib is given: the URL, with `heartbeat` added. */
  readonly url: string;
  /** The URL with its password replaced by `***`. */
  readonly redacted: string;
  /** The user name and password, percent-decoded, for amqplib (which would decode them with `unescape`, as Latin-1). */
  readonly credentials: ReturnType<typeof amqp.credentials.plain>;
}

/**
 * Dials the first broker address that accepts, with TCP_NODELAY on (without
 * it Nagle plus delayed ACK caps a sequential caller near 45 calls/s), and
 * returns that connection with the dialer reconnections use. See `connect()`.
 * @throws RpcError `access_refused` when an address refused the user or the virtual host, else `connection_lost`; either names each redacted address with its failure and says what to do (see `dial-errors.ts`).
 * @throws TypeError when the list is empty, or an address is not an `amqp://` or `amqps://` URL (before anything is dialed).
 */
export async function dialAmqp(url: string | readonly string[] | undefined, options: ConnectionOptions): Promise<{ first: Dialed; dial: Dial }> {
  const urls = typeof url === "string" ? [url] : url === undefined ? [process.env.AMQP_URL ?? DEFAULT_URL] : [...url];
  if (urls.length === 0) throw new TypeError("warren: connect() was given an empty list of broker addresses");
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  const heartbeat = options.heartbeatSeconds ?? 10;
  const targets = urls.map((u): BrokerTarget => {
    const { tls: secure, host, user, password, vhost } = parseBrokerUrl(u);
    const credentials = amqp.credentials.plain(user, password);
    return { url: withHeartbeat(u, heartbeat), redacted: redactUrl(u), tls: secure, host, user, vhost, timeoutMs, credentials };
  });
  const socketOptions = {
    noDelay: true,
    timeout: timeoutMs,
    clientProperties: { connection_name: options.name ?? "warren" },
    ...(options.tls ?? {}),
  };
  const dial = dialer(targets, async (target) => {
    const { opened, received } = recordingHandshake(() => amqp.connect(target.url, { ...socketOptions, credentials: target.credentials }));
    try {
      return { model: await opened };
    } catch (error) {
      return { error, failure: explainDialFailure(target, error, received()) };
    }
  });
  return { first: await dial(), dial };
}

/** One attempt's outcome. */
type Attempt = { model: ChannelModel } | { error: unknown; failure: DialFailure };

/**
 * Tries `targets` in turn, starting after the address of the last success.
 * Rejects with the RpcError of {@link dialFailureMessage}: each redacted
 * address with its failure (`amqp://…:1 (ECONNREFUSED)`), then what to do;
 * its `cause` is the last failure.
 */
function dialer(targets: readonly BrokerTarget[], open: (target: BrokerTarget) => Promise<Attempt>): Dial {
  let start = 0;
  return async () => {
    const failures: { url: string; failure: DialFailure }[] = [];
    let last: unknown;
    for (let i = 0; i < targets.length; i++) {
      const index = (start + i) % targets.length;
      const target = targets[index]!;
      const attempt = await open(target);
      if ("model" in attempt) {
        start = (index + 1) % targets.length;
        return { model: attempt.model, url: target.redacted };
      }
      last = attempt.error;
      failures.push({ url: target.redacted, failure: attempt.failure });
    }
    const { code, message } = dialFailureMessage(failures);
    throw new RpcError(code, message, { cause: last });
  };
}

/**
 * The parts of a broker URL warren needs, percent-decoded as UTF-8: what the
 * broker is sent as user name and password (`guest`/`guest` when the URL has
 * neither, as amqplib does), and the virtual host (`/` when the path is empty).
 * @throws TypeError when `url` is not a URL, or its scheme is not `amqp:` or `amqps:`.
 * @internal exported for the unit tests.
 */
export function parseBrokerUrl(url: string): { tls: boolean; host: string; user: string; password: string; vhost: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`warren: ${redactLoosely(String(url))} is not a broker URL; write amqp://user:password@host:5672/vhost (or amqps://)`);
  }
  if (u.protocol !== "amqp:" && u.protocol !== "amqps:") {
    throw new TypeError(`warren: broker URL ${redactLoosely(url)} must start with amqp:// or amqps://, not ${u.protocol}//`);
  }
  const anonymous = u.username === "" && u.password === "";
  return {
    tls: u.protocol === "amqps:",
    host: u.hostname.replace(/^\[|\]$/g, ""),
    user: anonymous ? "guest" : decodeComponent(u.username),
    password: anonymous ? "guest" : decodeComponent(u.password),
    vhost: decodeComponent(u.pathname.slice(1)) || "/",
  };
}

/**
 * A malformed broker URL with everything from the colon after the user name
 * to the last `@` replaced by `***`. `redactUrl` would miss the password of
 * `guest:s3cret@host` (a URL of scheme `guest:`) or `amqp://u:pa/ss@host`.
 */
function redactLoosely(url: string): string {
  return url.replace(/^([a-z][\w+.-]*:\/\/)?([^:@/]*):.*@/is, "$1$2:***@");
}

/**
 * Percent-decodes a URL component as UTF-8. One that is not valid UTF-8
 * percent-encoding (`%E4` for `ä`, or a bare `%`) is decoded byte by byte as
 * Latin-1, as amqplib's `unescape` did, so such URLs log in as before.
 */
function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
}

function withHeartbeat(url: string, seconds: number): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}heartbeat=${seconds}`;
}
