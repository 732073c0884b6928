/**
 * The test kit: warren's own `RpcClient`, `RpcServer` and `EventBus` on an in-memory broker,
 * so a test serves generated handlers and calls them through the generated client with no
 * RabbitMQ, and everything between (validation at both ends, error codes and objects, handler
 * context, deadlines, cancel, retries, events, dead letters) is the code that runs in production.
 */
import type { ErrorShape, EventDescriptor, MethodDescriptor, ServiceDescriptor } from "../core/descriptor.js";
import { lineLogger, type Logger } from "../core/logging.js";
import type { EventBusOptions, SubscribeOptions } from "../core/options.js";
import { EventBus, type EventHandlers, type PublishOptions } from "../events/bus.js";
import type { EventHandler, Subscription } from "../events/subscription.js";
import { RpcClient, type ClientOptions } from "../rpc/client.js";
import type { ServiceHandlers } from "../rpc/handler.js";
import { RpcServer, type RegisterOptions, type Registration, type ServerOptions } from "../rpc/server.js";
import type { CallOptions } from "../rpc/transport.js";
import { Faults } from "./faults.js";
import { MemoryBroker, type MemoryConnection } from "./memory-broker.js";

/** Captured at import, before a test fakes timers: {@link TestKit.idle} must really yield and measure. */
const realSetImmediate = setImmediate;
const realSetTimeout = setTimeout;
const realNow = Date.now;

/** Options of {@link createTestKit}. */
export interface TestKitOptions {
  /**
   * Where the runtime's log lines go (warnings such as "dead-lettered an event").
   * @default recorded in {@link TestKit.logs}, printed nowhere
   */
  logger?: Logger;
}

/** Anything the kit made: its connection can be dropped with {@link TestKit.disconnect}. */
export type KitPart = RpcClient | RpcServer | EventBus;

/**
 * An in-memory warren: make clients, servers and event buses from it as from a `Connection`,
 * inject faults with {@link faults}, and {@link close} it after the test. Each client, server and
 * bus gets a connection of its own to one in-memory broker, as separate processes would.
 * Deterministic: messages move on `process.nextTick` (no timer, so fake timers do not stop
 * them); only what waits in warren itself (deadlines, retry backoff, a handler's signal) and a
 * fault's `delay` / `lateReply` use timers.
 */
export class TestKit {
  /** The in-memory broker: inspect queues (`broker.queue(name)`), every publish (`broker.published`), channels. */
  readonly broker: MemoryBroker;
  /** Fault rules: `faults.on("Calculator.add").once().noReply()`; see {@link Faults}. */
  readonly faults: Faults;
  /** Every line the runtime logged, unless a logger was given. */
  readonly logs: string[] = [];
  readonly #logger: Logger;
  readonly #parts: { part: KitPart | MemoryConnection; connection: MemoryConnection }[] = [];
  readonly #connections = new WeakMap<object, MemoryConnection>();
  #closed = false;

  /** @internal use {@link createTestKit}. */
  constructor(options: TestKitOptions = {}) {
    this.broker = new MemoryBroker();
    this.faults = new Faults();
    this.broker.intercept((p) => this.faults.hook(p));
    this.#logger = options.logger ?? lineLogger((line) => void this.logs.push(line));
    // Like a connection's socket, the kit keeps the process alive until it is closed: a call waiting
    // for its timeout (whose timers do not hold the process) settles under any test runner or in a script.
    this.#keepAlive = setInterval(() => {}, 1 << 30);
  }

  readonly #keepAlive: NodeJS.Timeout;

  /**
   * A client for generated stubs: `new CalculatorClient(await kit.client())`. It is warren's
   * `RpcClient`, with the same options (`queues`, `timeoutMs`, `replyQueue`, ...); resolves once
   * its reply consumer is active.
   */
  async client(options: ClientOptions = {}): Promise<RpcClient> {
    const client = new KitClient(this.#connect(), options, this.faults);
    this.#track(client);
    await client.ready();
    return client;
  }

  /** A server to register services on: `await serveCalculator(kit.server(), handlers)`. It is warren's `RpcServer`, with the same options. */
  server(options: ServerOptions = {}): RpcServer {
    const server = new KitServer(this.#connect(), options, this.faults);
    this.#track(server);
    return server;
  }

  /** An event bus for generated publishers and subscribers: `new OrdersPublisher(kit.events())`. It is warren's `EventBus`, with the same options. */
  events(options: EventBusOptions = {}): EventBus {
    const bus = new KitEventBus(this.#connect(), options, this.faults);
    this.#track(bus);
    return bus;
  }

  /** A bare connection to the broker (a `ChannelSource`), for a hand-made peer that publishes or consumes raw messages. Closed by {@link close}. */
  connection(): MemoryConnection {
    const connection = this.#connect();
    this.#parts.push({ part: connection, connection });
    return connection;
  }

  /**
   * The broker drops the connection of `part` (a client, server or bus this kit made), as when
   * the network fails, and it comes back on the next tick: calls in flight on it fail with
   * `connection_lost` (idempotent ones are retried), unacked deliveries go back to their queues
   * `redelivered`, and everything resumes on its own as after a reconnection.
   */
  disconnect(part: KitPart): void {
    const connection = this.#connections.get(part);
    if (connection === undefined) throw new TypeError("warren/testing: disconnect() takes a client, server or event bus made by this kit");
    connection.drop();
    process.nextTick(() => connection.reconnect());
  }

  /**
   * Resolves once the broker is quiet: no message waits in a queue that has a consumer, no
   * delivery is unacknowledged (every handler has finished; acks an event subscription holds
   * to send together are sent at once, not waited for), no fault holds a message. Use it
   * after publishing events, whose handlers run after `publish` resolves.
   * @throws Error after `timeoutMs` of real time, naming what is still busy.
   */
  async idle(options: { timeoutMs?: number } = {}): Promise<void> {
    const end = realNow() + (options.timeoutMs ?? 5000);
    for (let turn = 0; ; turn++) {
      // Acks a subscription holds to send together (ackDelayMs) are for finished handlers: sent now, not waited for.
      for (const { part } of this.#parts) if (part instanceof EventBus) part.flushAcks();
      // Quiet twice in a row, one turn apart: a delivery, reply or confirm may be one tick away.
      if (this.#quiet()) {
        await this.#turn(0);
        if (this.#quiet()) return;
      }
      if (realNow() > end) throw new Error(`warren/testing: not idle after ${options.timeoutMs ?? 5000} ms: ${this.#busy().join(", ")}`);
      // Spin on macrotask turns at first (messages move in ticks), then sleep a little (a handler waits on a timer).
      await this.#turn(turn < 100 ? 0 : 2);
    }
  }

  /**
   * Closes every client it made (pending calls reject with `canceled`), then every server and
   * bus (they let handlers in flight finish: a handler that never returns keeps `close()`
   * waiting, as on a real server), then their connections, and drops messages held by faults.
   * Idempotent.
   * @throws TypeError, once all is closed, for fault rules that never could act: a rule naming a
   * service the kit never learned (a misspelt `"Calculater.add"`), or one given no action.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepAlive);
    const unapplied = this.faults.unapplied();
    this.faults.clear();
    const parts = [...this.#parts].reverse().map(({ part }) => part);
    // Clients first, so their pending calls are canceled rather than left waiting on servers that are closing.
    for (const part of parts) if (part instanceof RpcClient) await part.close();
    for (const part of parts) if (!isConnection(part) && !(part instanceof RpcClient)) await part.close();
    for (const { connection } of this.#parts) connection.close();
    if (unapplied.length > 0) throw new TypeError(unapplied.join("\n"));
  }

  #connect(): MemoryConnection {
    if (this.#closed) throw new Error("warren/testing: the test kit is closed");
    return this.broker.connect(this.#logger);
  }

  #track(part: KitPart & { readonly connection: MemoryConnection }): void {
    this.#connections.set(part, part.connection);
    this.#parts.push({ part, connection: part.connection });
  }

  #busy(): string[] {
    const busy = this.broker.busy();
    if (this.faults.holding > 0) busy.push(`${this.faults.holding} message(s) held by faults`);
    return busy;
  }

  #quiet(): boolean {
    return this.faults.holding === 0 && this.broker.busy().length === 0;
  }

  #turn(ms: number): Promise<void> {
    return new Promise((resolve) => (ms === 0 ? realSetImmediate(resolve) : realSetTimeout(resolve, ms)));
  }
}

function isConnection(part: KitPart | MemoryConnection): part is MemoryConnection {
  return !(part instanceof RpcClient || part instanceof RpcServer || part instanceof EventBus);
}

/**
 * Makes an in-memory warren for one test. Usage:
 * ```ts
 * const kit = createTestKit();
 * await serveCalculator(kit.server(), handlers);
 * const calc = new CalculatorClient(await kit.client());
 * expect(await calc.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
 * await kit.close();
 * ```
 */
export function createTestKit(options: TestKitOptions = {}): TestKit {
  return new TestKit(options);
}

// The runtime's own classes, told which service each queue and exchange belongs to so fault rules can name them.
// Learning a service checks the rules made for it before; a rule that could never act rejects what taught it.

/** `go()`, unless `learn()` finds a fault rule that could never act: then that error, as a rejection. */
function afterLearning<T>(learn: () => void, go: () => Promise<T>): Promise<T> {
  try {
    learn();
  } catch (err) {
    return Promise.reject(err);
  }
  return go();
}

class KitClient extends RpcClient {
  readonly #queues: Readonly<Record<string, string>>;
  constructor(readonly connection: MemoryConnection, options: ClientOptions, private readonly faults: Faults) {
    super(connection, options);
    this.#queues = options.queues ?? {};
  }
  override call<Req, Res, Err extends ErrorShape>(method: MethodDescriptor<Req, Res, Err>, request: Req, options?: CallOptions): Promise<Res> {
    const service = method.service;
    return afterLearning(() => this.faults.learnQueue(this.#queues[service.name] ?? service.queue, service), () => super.call(method, request, options));
  }
}

class KitServer extends RpcServer {
  constructor(readonly connection: MemoryConnection, options: ServerOptions, private readonly faults: Faults) {
    super(connection, options);
  }
  override register<S extends ServiceDescriptor>(service: S, handlers: ServiceHandlers<S>, options: RegisterOptions = {}): Promise<Registration> {
    return afterLearning(() => this.faults.learnQueue(options.queue ?? service.queue, service), () => super.register(service, handlers, options));
  }
}

class KitEventBus extends EventBus {
  constructor(readonly connection: MemoryConnection, options: EventBusOptions, private readonly faults: Faults) {
    super(connection, options);
  }
  override publish<P>(event: EventDescriptor<P>, payload: P, options?: PublishOptions): Promise<void> {
    return afterLearning(() => this.#learn(event.service), () => super.publish(event, payload, options));
  }
  override subscribe<P>(event: EventDescriptor<P>, handler: EventHandler<P>, options?: SubscribeOptions): Promise<Subscription> {
    return afterLearning(() => this.#learn(event.service), () => super.subscribe(event, handler, options));
  }
  override subscribeAll<S extends ServiceDescriptor>(service: S, handlers: EventHandlers<S>, options?: SubscribeOptions): Promise<Subscription> {
    return afterLearning(() => this.#learn(service), () => super.subscribeAll(service, handlers, options));
  }
  #learn(service: ServiceDescriptor): void {
    this.faults.learnExchange(this.exchangeOf(service).name, service);
  }
}
