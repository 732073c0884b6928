/**
 * The event implementations under test, each as a publisher factory (used
 * in the benchmark process) and a consumer factory (run in a child process,
 * see event-consumer-child.ts). All use a durable topic exchange, persistent
 * messages (delivery mode 2), routing key `orders.<region>.placed`, an
 * exclusive auto-delete server-named queue bound with `orders.*.placed`,
 * prefetch 16 (warren's default subscription prefetch), and TCP_NODELAY:
 *
 * - `baseline`: hand-written amqplib. ConfirmChannel publisher with a confirm
 *   callback per message, body `JSON.stringify`, properties `persistent` and
 *   `contentType`; consumer `JSON.parse`, check, `ack` (one per event). No validation.
 * - `baseline-props`: the same hand-written amqplib, sending the properties
 *   warren sends (type, a UUID message id, timestamp, the contract-version
 *   header): what a hand-written publisher with the same wire contract costs.
 *   Over 64 bytes of properties cost RabbitMQ 3.10 a step more per message
 *   (`npm run bench:props`), which the minimal baseline never pays.
 * - `warren`: the generated `OrdersPublisher.publishOrderPlaced` over
 *   `conn.events()` (payload validated against the contract before it is
 *   sent; waits for the publisher confirm; sends type, message id, timestamp
 *   and the contract-version header as well), and
 *   `OrdersSubscriber.onOrderPlaced` (content type, contract version and
 *   payload schema checked before the handler runs; ack after it returns,
 *   held with others' per the default `ackDelayMs`).
 * - `warren-nocoalesce` (experiment, not in the default run): warren with the
 *   connection option `coalesceWrites: false` at both ends, i.e. amqplib's own
 *   write path, to tell what warren's write path does to events.
 * - `warren-ack0` (experiment): warren with the subscription option
 *   `ackDelayMs: 0`, each turn's acks sent at its end instead of held to go
 *   out together, to tell what holding acks does to events.
 */
import amqp, { type ConsumeMessage, type Options } from "amqplib";
import { v4 as uuidv4 } from "uuid";
import { connect, lineLogger } from "../../src/index.js";
import { Orders, OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";
import { CONTRACT_VERSION_HEADER } from "../../src/core/protocol.js";
import { EventCheck, orderEvent, orderRoutingKey, type EventSize } from "./event-payload.js";

/** Names of the event implementations. */
export type EventImplName = "baseline" | "baseline-props" | "warren" | "warren-nocoalesce" | "warren-ack0";

/** How each implementation is labelled in the results. */
export const EVENT_IMPL_LABEL: Record<EventImplName, string> = {
  baseline: "amqplib baseline",
  "baseline-props": "amqplib, warren's properties",
  warren: "warren",
  "warren-nocoalesce": "warren, coalesceWrites off",
  "warren-ack0": "warren, ackDelayMs 0",
};

/** Unacknowledged events per consumer: warren's default subscription prefetch, used by both. */
export const EVENT_PREFETCH = 16;

/** The binding key of both consumers: the contract's routing key with `{region}` as `*`. */
export const BINDING_KEY = "orders.*.placed";

/** Publishes event number `seq` of size `size`; resolves once the broker confirmed it. */
export interface EventPublisherImpl {
  publish(seq: number, size: EventSize): Promise<void>;
  close(): Promise<void>;
}

/** A running consumer; `check.count` is how many events it has consumed and checked. */
export interface EventConsumerImpl {
  readonly check: EventCheck;
  close(): Promise<void>;
}

/** Exchange and dead-letter queue of one implementation (the dead-letter queue is warren's only). */
export interface EventNames {
  exchange: string;
  deadLetterQueue: string;
}

const quiet = lineLogger((line) => console.error(line));

/** Hand-written amqplib confirm-channel publisher; `withProperties` sends warren's properties too. */
export async function baselinePublisher(url: string, names: EventNames, withProperties = false): Promise<EventPublisherImpl> {
  const conn = await amqp.connect(url, { noDelay: true });
  conn.on("error", () => {});
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange(names.exchange, "topic", { durable: true });
  return {
    publish: (seq, size) =>
      new Promise<void>((resolve, reject) => {
        const order = orderEvent(seq, size);
        const props: Options.Publish = withProperties
          ? { persistent: true, contentType: "application/json", type: "order_placed", messageId: uuidv4(), timestamp: Math.floor(Date.now() / 1000), headers: { [CONTRACT_VERSION_HEADER]: Orders.version } }
          : { persistent: true, contentType: "application/json" };
        ch.publish(names.exchange, orderRoutingKey(order), Buffer.from(JSON.stringify(order)), props, (err) =>
          err ? reject(err) : resolve(),
        );
      }),
    close: async () => {
      await ch.close().catch(() => {});
      await conn.close().catch(() => {});
    },
  };
}

/** Hand-written amqplib consumer: JSON.parse, check, ack. */
export async function baselineConsumer(url: string, names: EventNames, onError: (err: unknown) => void): Promise<EventConsumerImpl> {
  const conn = await amqp.connect(url, { noDelay: true });
  conn.on("error", () => {});
  const ch = await conn.createChannel();
  await ch.assertExchange(names.exchange, "topic", { durable: true });
  const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true, durable: false });
  await ch.bindQueue(queue, names.exchange, BINDING_KEY);
  await ch.prefetch(EVENT_PREFETCH);
  const check = new EventCheck();
  await ch.consume(queue, (msg: ConsumeMessage | null) => {
    if (msg === null) return;
    try {
      check.check(JSON.parse(msg.content.toString("utf8")));
    } catch (err) {
      onError(err);
    }
    ch.ack(msg);
  });
  return { check, close: () => conn.close().catch(() => {}) };
}

/** warren: the generated publisher over an event bus. */
export async function warrenPublisher(url: string, names: EventNames, coalesceWrites = true): Promise<EventPublisherImpl> {
  const conn = await connect(url, { name: "bench-events-warren-publisher", logger: quiet, coalesceWrites });
  const bus = conn.events({ exchanges: { Orders: names.exchange } });
  const publisher = new OrdersPublisher(bus);
  return {
    publish: (seq, size) => publisher.publishOrderPlaced(orderEvent(seq, size)),
    close: async () => {
      await bus.close();
      await conn.close();
    },
  };
}

/** warren: the generated subscriber, a broadcast subscription with the default prefetch. */
export async function warrenConsumer(url: string, names: EventNames, onError: (err: unknown) => void, coalesceWrites = true, ackDelayMs?: number): Promise<EventConsumerImpl> {
  const conn = await connect(url, { name: "bench-events-warren-consumer", logger: quiet, coalesceWrites });
  const bus = conn.events({ exchanges: { Orders: names.exchange } });
  const check = new EventCheck();
  // A wrong event is reported, not thrown: a throwing handler is retried and dead-lettered, which would hide it.
  await new OrdersSubscriber(bus).onOrderPlaced(
    (payload) => {
      try {
        check.check(payload);
      } catch (err) {
        onError(err);
      }
    },
    { deadLetterQueue: names.deadLetterQueue, prefetch: EVENT_PREFETCH, ...(ackDelayMs === undefined ? {} : { ackDelayMs }) },
  );
  return {
    check,
    close: async () => {
      await bus.close();
      await conn.close();
    },
  };
}

/** Publisher factories by implementation. */
export const EVENT_PUBLISHERS: Record<EventImplName, (url: string, names: EventNames) => Promise<EventPublisherImpl>> = {
  baseline: (url, names) => baselinePublisher(url, names),
  "baseline-props": (url, names) => baselinePublisher(url, names, true),
  warren: warrenPublisher,
  "warren-nocoalesce": (url, names) => warrenPublisher(url, names, false),
  "warren-ack0": (url, names) => warrenPublisher(url, names),
};

/** Consumer factories by implementation. */
export const EVENT_CONSUMERS: Record<EventImplName, (url: string, names: EventNames, onError: (err: unknown) => void) => Promise<EventConsumerImpl>> = {
  baseline: baselineConsumer,
  "baseline-props": baselineConsumer,
  warren: (url, names, onError) => warrenConsumer(url, names, onError),
  "warren-nocoalesce": (url, names, onError) => warrenConsumer(url, names, onError, false),
  "warren-ack0": (url, names, onError) => warrenConsumer(url, names, onError, true, 0),
};
