/**
 * The top of the runtime: {@link connect} and the {@link Connection} that
 * makes clients, servers and event buses. It joins the layers — `amqp/` (the
 * connection itself) and `rpc/`, `events/` (which see only its
 * `ChannelSource` side) — so none of them imports another's classes.
 */
import { AmqpConnection, dialAmqp, type Dial, type Dialed } from "./amqp/connection.js";
import type { ConnectionOptions } from "./core/options.js";
import { EventBus, type EventBusOptions } from "./events/bus.js";
import { defaultTelemetry, isTelemetryInterceptor } from "./otel/default.js";
import { RpcClient, type ClientOptions } from "./rpc/client.js";
import { RpcServer, type ServerOptions } from "./rpc/server.js";

/**
 * A connection to RabbitMQ that survives broker restarts and network faults;
 * clients, servers and event buses are made from it.
 *
 * Events:
 * - `connected` — (re)connected; channels can be opened.
 * - `disconnected` (error) — the connection was lost; calls in flight fail with `connection_lost`.
 * - `reconnecting` ({ attempt, delayMs }) — the next attempt is scheduled.
 * - `blocked` (reason) / `unblocked` — the broker's resource alarm (publishes are paused meanwhile).
 * - `close` — closed for good by {@link Connection.close}.
 */
export class Connection extends AmqpConnection {
  readonly #telemetry: boolean;

  /** @internal use {@link connect}. */
  constructor(first: Dialed, dial: Dial, options: ConnectionOptions) {
    super(first, dial, options);
    this.#telemetry = options.telemetry ?? true;
  }

  /**
   * Creates a client (an `RpcTransport` for generated stubs) on this connection; resolves once its reply consumer is active.
   * With OpenTelemetry set up (see {@link ConnectionOptions.telemetry}) its tracing interceptor runs first.
   */
  async client(options: ClientOptions = {}): Promise<RpcClient> {
    const t = this.#telemetryFor(options.interceptors);
    const client = new RpcClient(this, t === undefined ? options : { ...options, interceptors: [t.client, ...(options.interceptors ?? [])] });
    await client.ready();
    return client;
  }

  /** Creates an event bus (an `EventTransport` for generated publishers and subscribers) on this connection; traced like {@link client}. */
  events(options: EventBusOptions = {}): EventBus {
    const t = this.#telemetryFor([...(options.publishInterceptors ?? []), ...(options.processInterceptors ?? [])]);
    if (t === undefined) return new EventBus(this, options);
    return new EventBus(this, {
      ...options,
      publishInterceptors: [t.publish, ...(options.publishInterceptors ?? [])],
      processInterceptors: [t.process, ...(options.processInterceptors ?? [])],
    });
  }

  /** Creates a server on this connection; register services on it. Traced like {@link client}. */
  server(options: ServerOptions = {}): RpcServer {
    const t = this.#telemetryFor(options.interceptors);
    return new RpcServer(this, t === undefined ? options : { ...options, interceptors: [t.server, ...(options.interceptors ?? [])] });
  }

  /** The default telemetry, unless switched off or the caller installed warren's telemetry interceptors itself. */
  #telemetryFor(interceptors: readonly unknown[] | undefined) {
    if (!this.#telemetry || interceptors?.some(isTelemetryInterceptor)) return undefined;
    return defaultTelemetry();
  }
}

/**
 * Connects to RabbitMQ. After a later loss the connection reconnects by
 * itself; see {@link Connection} for its events.
 *
 * Given several addresses (the nodes of a cluster), it tries them in order
 * until one accepts; each reconnection starts with the address after the one
 * it was connected to, so a node that went down is tried last.
 *
 * @param url `amqp://` or `amqps://` URL, or a list of them. @default process.env.AMQP_URL, else `amqp://guest:guest@127.0.0.1:5672`
 * @throws RpcError when no address accepts, naming each redacted address with its failure and what to do: `access_refused` when one refused the user (password, virtual host), else `connection_lost` (how to start a broker when nothing listens; what to fix for TLS).
 * @throws TypeError when the list is empty or an address is not an `amqp://` or `amqps://` URL (before anything is dialed).
 */
export async function connect(url?: string | readonly string[], options: ConnectionOptions = {}): Promise<Connection> {
  const { first, dial } = await dialAmqp(url, options);
  return new Connection(first, dial, options);
}
