/**
 * An in-memory stand-in for an amqplib channel and connection, for measuring
 * warren's own per-call JS without amqplib, sockets or a broker: one consumer
 * per queue name, deliveries on the microtask queue.
 */
import { EventEmitter } from "node:events";
import type { Connection } from "../../src/connection.js";

/** One queue per name, shared by every fake channel; direct reply-to is just another name. */
export class FakeChannel extends EventEmitter {
  static consumers = new Map<string, (msg: any) => void>();
  #tag = 0;
  async assertQueue(queue: string) {
    return { queue };
  }
  async prefetch() {}
  async consume(queue: string, cb: (msg: any) => void) {
    FakeChannel.consumers.set(queue, cb);
    return { consumerTag: `ctag-${++this.#tag}` };
  }
  publish(_exchange: string, routingKey: string, content: Buffer, props: Record<string, unknown>) {
    const { mandatory: _m, ...properties } = props;
    return this.sendMessage({ routingKey }, { headers: {}, ...properties }, content);
  }
  /** What amqplib's publish ends in (warren's publish path calls it directly). */
  sendMessage(fields: { routingKey: string }, properties: Record<string, unknown>, content: Buffer) {
    const cb = FakeChannel.consumers.get(fields.routingKey);
    const msg = { content, properties, fields: { redelivered: false, deliveryTag: ++this.#tag } };
    if (cb) queueMicrotask(() => cb(msg));
    return true;
  }
  ack() {}
  async cancel() {}
  async close() {}
}

/** A connection whose channels are {@link FakeChannel}s. */
export const fakeConnection = { logger: console, blocked: false, closed: false, channel: async () => new FakeChannel() } as unknown as Connection;
