/**
 * One AMQP connection shared by clients and servers, re-established after a
 * loss with capped, jittered exponential backoff. With `client.ts` and
 * `server.ts`, the only files that touch amqplib.
 */
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from "amqplib";
import { RpcClient } from "./client.js";
import { EventBus } from "./events.js";
import { RpcError } from "./errors.js";
import {
  DEFAULT_URL,
  redactUrl,
  resolveReconnect,
  type ClientOptions,
  type ConnectionOptions,
  type EventBusOptions,
  type Logger,
  type ResolvedReconnect,
  type ServerOptions,
} from "./options.js";
import { RpcServer } from "./server.js";

/** How to start a broker, appended to "cannot reach" errors. */
const START_HINT = "start one with `rabbitmq-server -detached` (or set AMQP_URL)";

/** An open AMQP connection and the (redacted) address it went to. */
interface Dialed {
  model: ChannelModel;
  url: string;
}

/** Opens a connection to one of the broker addresses; rejects with each address's failure. */
interface Dial {
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
export class Connection extends EventEmitter {
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

  /** @internal use {@link connect}. */
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
   * Opens a channel, waiting for a reconnection in progress first.
   * @throws RpcError `connection_lost` once the connection is closed for good.
   */
  channel(): Promise<Channel> {
    return this.#open((model) => model.createChannel());
  }

  /**
   * Opens a channel in confirm mode (publishes take a callback the broker
   * acknowledges), waiting for a reconnection in progress first.
   * @throws RpcError `connection_lost` once the connection is closed for good.
   */
  confirmChannel(): Promise<ConfirmChannel> {
    return this.#open((model) => model.createConfirmChannel());
  }

  async #open<C extends Channel>(create: (model: ChannelModel) => Promise<C>): Promise<C> {
    if (this.#closed) throw new RpcError("connection_lost", `connection to ${this.url} is closed`);
    const model = await this.#ready;
    const channel = await create(model);
    if (this.#coalesce) writeThrough(model, channel);
    // A channel error is always followed by its close event, which owners handle.
    channel.on("error", () => {});
    return channel;
  }

  /** Creates a client (an `RpcTransport` for generated stubs) on this connection. */
  async client(options: ClientOptions = {}): Promise<RpcClient> {
    const client = new RpcClient(this, options);
    await client.ready();
    return client;
  }

  /** Creates an event bus (an `EventTransport` for generated publishers and subscribers) on this connection. */
  events(options: EventBusOptions = {}): EventBus {
    return new EventBus(this, options);
  }

  /** Creates a server on this connection; register services on it. */
  server(options: ServerOptions = {}): RpcServer {
    return new RpcServer(this, options);
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
 * Connects to RabbitMQ with TCP_NODELAY on (without it Nagle plus delayed ACK
 * caps a sequential caller near 45 calls/s). After a later loss the connection
 * reconnects by itself; see {@link Connection} for its events.
 *
 * Given several addresses (the nodes of a cluster), it tries them in order
 * until one accepts; each reconnection starts with the address after the one
 * it was connected to, so a node that went down is tried last.
 *
 * @param url `amqp://` or `amqps://` URL, or a list of them. @default process.env.AMQP_URL, else `amqp://guest:guest@127.0.0.1:5672`
 * @throws RpcError `connection_lost` naming each redacted address with its failure, and how to start a broker, when none accepts.
 * @throws TypeError when the list is empty.
 */
export async function connect(url?: string | readonly string[], options: ConnectionOptions = {}): Promise<Connection> {
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
    return new Connection(await dial(), dial, options);
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

/** The parts of amqplib's connection that {@link coalesceWrites} and {@link writeThrough} reach into. */
interface Internals {
  stream: Socket;
  muxer: { _readIncoming: (this: unknown) => void; blocked?: boolean };
  channels: ({ buffer?: unknown } | null)[];
}

/** amqplib's connection behind a channel model, when it has the shape warren's write path relies on. */
function internalsOf(model: ChannelModel): Internals | undefined {
  const c = (model as unknown as { connection?: Partial<Internals> }).connection;
  const socket = c?.stream as Partial<Socket> | undefined;
  if (typeof c?.muxer?._readIncoming !== "function" || !Array.isArray(c.channels)) return undefined;
  if (typeof socket?.cork !== "function" || typeof socket.uncork !== "function" || typeof socket.write !== "function") return undefined;
  return c as Internals;
}

/**
 * amqplib's multiplexer writes each pending frame to the socket with its own
 * `write` (one syscall each: a reply and its ack are two). Corking the socket
 * around one multiplexer pass sends them all in a single `writev`. Applied only
 * when amqplib's internals have the expected shape; otherwise nothing changes.
 */
function coalesceWrites(model: ChannelModel): void {
  const internals = internalsOf(model);
  if (internals === undefined) return;
  const { stream: socket, muxer } = internals;
  const readIncoming = muxer._readIncoming;
  muxer._readIncoming = function corked(this: unknown) {
    socket.cork();
    try {
      readIncoming.call(this);
    } finally {
      socket.uncork();
    }
  };
}

/**
 * amqplib queues every frame a channel sends in the channel's buffer stream;
 * its multiplexer moves it to the socket in a later `setImmediate` turn, after
 * a `nextTick` "readable" event. When that buffer is empty and the socket
 * accepts writes, a frame can go to the socket at once without changing the
 * order of anything: `writeThrough` does that for `channel`, corking the socket
 * until the end of the current tick so that the frames of one turn (a reply
 * and its ack, a burst of requests) still leave in one `writev`. Otherwise the
 * frame takes amqplib's path, which also keeps its back-pressure: a full socket
 * sends later frames through the buffer, whose `write` then reports it.
 */
function writeThrough(model: ChannelModel, channel: Channel): void {
  const internals = internalsOf(model);
  const number = (channel as unknown as { ch?: unknown }).ch;
  if (internals === undefined || typeof number !== "number") return;
  const buffer = internals.channels[number]?.buffer as Writable & Readable | undefined;
  if (typeof buffer?.write !== "function" || typeof buffer.readableLength !== "number") return;
  const { stream: socket, muxer } = internals;
  const queued = buffer.write.bind(buffer) as (chunk: Buffer) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  buffer.write = ((chunk: Buffer) => {
    if (buffer.readableLength !== 0 || buffer.writableLength !== 0 || muxer.blocked === true || socket.writableNeedDrain || !socket.writable) {
      return queued(chunk);
    }
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    socket.write(chunk);
    return true;
  }) as typeof buffer.write;
}

function withHeartbeat(url: string, seconds: number): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}heartbeat=${seconds}`;
}
