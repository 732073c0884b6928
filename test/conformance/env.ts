/**
 * What the conformance suite runs on: the in-memory test kit (src/testing/) or RabbitMQ. The
 * suite sees only this interface, so each case is written once and must have the same outcome
 * on both. Both hand out warren's own RpcClient, RpcServer and EventBus.
 */
import type { ChannelSource } from "../../src/amqp/channel-source.js";
import { EventBus, RpcClient, RpcServer, type ClientOptions, type Connection, type EventBusOptions, type EventDescriptor, type EventHandler, type ServerOptions, type SubscribeOptions, type Subscription } from "../../src/index.js";
import { createTestKit, type KitPart, type TestKit } from "../../src/testing/index.js";
import { deleteAfter, deleteExchangeAfter, killConnection, openConnection, uniqueName } from "../helpers/broker.js";

/** The services of generated/ the suite uses. */
export type ServiceName = "Calculator" | "Fibonacci" | "Points" | "Orders";
const SERVICES: readonly ServiceName[] = ["Calculator", "Fibonacci", "Points", "Orders"];

export interface Env {
  readonly name: "memory" | "rabbitmq";
  /** A client whose `queues` send each service to this test's queue (more options merge in). */
  client(options?: ClientOptions): Promise<RpcClient>;
  /** A server; register with `env.at(service)` so it consumes this test's queue. */
  server(options?: ServerOptions): RpcServer;
  /** Register options for `service`: this test's queue for it. */
  at(service: ServiceName): { queue: string };
  /** An event bus whose `exchanges` send Orders events to this test's exchange. */
  events(options?: EventBusOptions): EventBus;
  /** A bare connection, for hand-made peers that publish and consume raw messages. */
  source(): Promise<ChannelSource>;
  /** Registers an exchange the test declared itself for deletion afterwards. */
  exchangeCreated(name: string): void;
  /** The broker drops the connection under `part`; it reconnects by itself. */
  disconnect(part: KitPart): Promise<void>;
  /** Runs `fn` at the end of the test, before anything is closed (e.g. to release a handler waiting on a gate). */
  defer(fn: () => void): void;
  /** Ends the test: deferred functions, then every client, server and bus, then connections. */
  close(): Promise<void>;
}

/** Makes a fresh environment for one test. */
export type EnvFactory = () => Promise<Env>;

/** The in-memory test kit. */
export const memoryEnv: EnvFactory = async () => {
  const kit: TestKit = createTestKit();
  const queues = Object.fromEntries(SERVICES.map((s) => [s, `conformance.${s}`]));
  const deferred: (() => void)[] = [];
  return {
    name: "memory",
    client: (options = {}) => kit.client({ ...options, queues: { ...queues, ...options.queues } }),
    server: (options) => kit.server(options),
    at: (service) => ({ queue: queues[service]! }),
    events: (options = {}) => kit.events({ ...options, exchanges: { Orders: "conformance.events.Orders", ...options.exchanges } }),
    source: async () => kit.connection(),
    exchangeCreated: () => {},
    disconnect: async (part) => kit.disconnect(part),
    defer: (fn) => void deferred.push(fn),
    close: async () => {
      for (const fn of deferred.splice(0)) fn();
      await kit.close();
    },
  };
};

/** RabbitMQ at AMQP_URL, with this test's own queues and exchange (deleted afterwards); one connection per client, server and bus, as separate processes. */
export const rabbitmqEnv: EnvFactory = async () => {
  const queues = Object.fromEntries(SERVICES.map((s) => [s, deleteAfter(uniqueName(s.toLowerCase()))]));
  const exchange = deleteExchangeAfter(uniqueName("events.Orders"));
  const deferred: (() => void)[] = [];
  const parts: KitPart[] = [];
  const connections: Connection[] = [];
  const names = new WeakMap<KitPart, string>();
  const open = async () => {
    const name = uniqueName("conn");
    const conn = await openConnection(name);
    connections.push(conn);
    return { conn, name };
  };
  const track = <T extends KitPart>(part: T, name: string): T => {
    names.set(part, name);
    parts.push(part);
    return part;
  };
  // Connections are opened ahead for the synchronous server() and events(), as the kit's are.
  const spare = await Promise.all(Array.from({ length: 6 }, open));
  const next = () => {
    const c = spare.shift();
    if (c === undefined) throw new Error("conformance: more than 6 servers and buses in one test; raise the number of spare connections");
    return c;
  };
  return {
    name: "rabbitmq",
    client: async (options = {}) => {
      const { conn, name } = await open();
      const client = track(await conn.client({ ...options, queues: { ...queues, ...options.queues } }), name);
      return client;
    },
    server: (options) => {
      const { conn, name } = next();
      return track(conn.server(options), name);
    },
    at: (service) => ({ queue: queues[service]! }),
    events: (options = {}) => {
      const { conn, name } = next();
      return track(new CleanedEventBus(conn, { ...options, exchanges: { Orders: exchange, ...options.exchanges } }), name);
    },
    source: async () => (await open()).conn,
    exchangeCreated: (name) => void deleteExchangeAfter(name),
    disconnect: async (part) => {
      const name = names.get(part);
      if (name === undefined || (await killConnection(name)) !== 1) throw new Error("conformance: could not kill the connection");
    },
    defer: (fn) => void deferred.push(fn),
    close: async () => {
      for (const fn of deferred.splice(0)) fn();
      for (const part of parts.reverse()) await part.close().catch(() => {});
      await Promise.all([...connections, ...spare.map((s) => s.conn)].map((c) => c.close().catch(() => {})));
    },
  };
};

/** warren's EventBus, registering the durable queues each subscription declares (group queue, retry wait queues, dead-letter queue) for deletion after the test. */
class CleanedEventBus extends EventBus {
  override async subscribe<P>(event: EventDescriptor<P>, handler: EventHandler<P>, options: SubscribeOptions = {}): Promise<Subscription> {
    const sub = await super.subscribe(event, handler, options);
    deleteAfter(sub.deadLetterQueue);
    if (options.group !== undefined) deleteAfter(sub.queue);
    for (const queue of sub.retryQueues) deleteAfter(queue);
    return sub;
  }
}
