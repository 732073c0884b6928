/**
 * An in-memory stand-in for warren's channel source, for measuring warren's
 * own per-call JS without amqplib, sockets or a broker: one consumer per queue
 * name, deliveries on the microtask queue. (The unit tests' fake in
 * test/helpers/ models a broker; this one is as thin as possible on purpose.)
 */
import type { ChannelSource, Delivery, MessageProperties, WireChannel } from "../../src/amqp/channel-source.js";

/** What the broker makes of `amq.rabbitmq.reply-to` (the shape RabbitMQ 3.10 gives it; servers check it). */
const REPLY_ADDRESS = "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAAexgAAAAFrD7ff.CNkpC+B0xBFxIy8J3iIpeg==";

/** One queue per name, shared by every fake channel; direct reply-to is one more name, rewritten as the broker does. */
export class FakeChannel implements WireChannel {
  static consumers = new Map<string, (msg: Delivery | null) => void>();
  #tag = 0;
  readonly closed = false;
  onClose() {}
  onReturn() {}
  async drained() {}
  async declareQueue(queue: string) {
    return queue;
  }
  async checkQueue() {
    return { messageCount: 0, consumerCount: 1 };
  }
  async declareExchange() {}
  async bindQueue() {}
  async unbindQueue() {}
  async get(): Promise<Delivery | undefined> {
    return undefined;
  }
  async prefetch() {}
  async consume(queue: string, cb: (msg: Delivery | null) => void) {
    FakeChannel.consumers.set(queue === "amq.rabbitmq.reply-to" ? REPLY_ADDRESS : queue, cb);
    return `ctag-${++this.#tag}`;
  }
  publish(_exchange: string, routingKey: string, content: Buffer, props: MessageProperties) {
    const properties = props.replyTo === "amq.rabbitmq.reply-to" ? { ...props, replyTo: REPLY_ADDRESS } : props;
    const cb = FakeChannel.consumers.get(routingKey);
    const msg: Delivery = { content, properties, fields: { redelivered: false, deliveryTag: ++this.#tag, exchange: "", routingKey } };
    if (cb) queueMicrotask(() => cb(msg));
    return true;
  }
  publishConfirmed(exchange: string, routingKey: string, content: Buffer, properties: MessageProperties, confirmed: (err: Error | null) => void) {
    queueMicrotask(() => confirmed(null));
    return this.publish(exchange, routingKey, content, properties);
  }
  ack() {}
  async cancel() {}
  async close() {}
}

/** A channel source whose channels are {@link FakeChannel}s. */
export const fakeConnection: ChannelSource = { logger: console, blocked: false, closed: false, open: async () => new FakeChannel(), unblocked: async () => {} };
