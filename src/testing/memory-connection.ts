/**
 * Connections and channels of the in-memory broker (memory-broker.ts): a {@link MemoryConnection}
 * is warren's `ChannelSource`, a {@link MemoryChannel} its `WireChannel`, each keeping the
 * seam's contracts (src/amqp/channel-source.ts). Faults of a connection or a channel are here:
 * drop / reconnect / close, block / unblock, saturate / drain, `failByBroker`.
 */
import { type AckTarget, type ChannelSource, type CloseReason, type Delivery, type MessageProperties, type QueueOptions, type Returned, type WireChannel } from "../amqp/channel-source.js";
import { RpcError } from "../core/errors.js";
import { lineLogger, type Logger } from "../core/logging.js";
import { REPLY_TO, brokerError, later, tick, type Published, type StoredMessage } from "./memory-wire.js";

/** @internal A queue as the broker holds it. */
export interface Queue {
  readonly name: string;
  readonly options: QueueOptions;
  readonly owner: MemoryConnection | undefined;
  messages: StoredMessage[];
  consumers: Consumer[];
  next: number;
  unacked: number;
  scheduled: boolean;
  /** The timer that expires (and dead-letters) the head message, and when it fires; queues with `x-message-ttl` or `x-dead-letter-exchange` only. */
  expiry?: { readonly at: number; readonly timer: ReturnType<typeof setTimeout> } | undefined;
  /** The timer that deletes the queue once unused for its `x-expires`. */
  lease?: ReturnType<typeof setTimeout> | undefined;
}

/** @internal A consumer; `queue` is undefined for the direct reply-to consumer. */
export interface Consumer {
  readonly tag: string;
  readonly queue: Queue | undefined;
  readonly channel: MemoryChannel;
  readonly deliver: (msg: Delivery | null) => void;
  readonly noAck: boolean;
}

/**
 * @internal The broker's side of the channel operations, as connections and channels call it
 * (implemented by `MemoryBroker`). A method that throws a {@link brokerError} closes the calling
 * channel with it.
 */
export interface BrokerSide {
  readonly published: Published[];
  open(ch: MemoryChannel): number;
  closed(ch: MemoryChannel): void;
  replyAddressOf(ch: MemoryChannel): string;
  takeCloseAfterConsume(queue: string): Error | undefined;
  getQueue(name: string, by: MemoryConnection): Queue;
  connectionAt(address: string): MemoryConnection | undefined;
  declareQueue(name: string, options: QueueOptions, by: MemoryConnection): string;
  declareExchange(name: string, type: string): void;
  bind(queue: string, exchange: string, key: string, by: MemoryConnection): void;
  unbind(queue: string, exchange: string, key: string, by: MemoryConnection): void;
  route(from: MemoryChannel, exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory: boolean, confirm?: (err: Error | null) => void): void;
  schedule(q: Queue): void;
  removeConsumer(c: Consumer): void;
  requeue(q: Queue, messages: StoredMessage[]): void;
  connectionClosed(conn: MemoryConnection): void;
}

/**
 * One connection: the {@link ChannelSource} under test. Like `AmqpConnection`: `open` waits
 * while the connection is down; `blocked` stays true until the reconnection; `unblocked()`
 * resolves at once while down.
 */
export class MemoryConnection implements ChannelSource {
  /** Every line the runtime logged through this connection's default logger. */
  readonly lines: string[] = [];
  /** Where the runtime on this connection logs: the given logger, else {@link lines}. */
  readonly logger: Logger;
  /** How often `unblocked()` was called while down (past 10,000 it rejects: a caller loops on it). */
  unblockedWhileDown = 0;
  readonly #broker: BrokerSide;
  readonly #channels = new Set<MemoryChannel>();
  #closed = false;
  #blocked = false;
  #saturated = false;
  #down: { promise: Promise<void>; resolve: () => void } | undefined;
  #held: (() => void)[] = [];
  #unblockWaiters: (() => void)[] = [];
  #drainWaiters: (() => void)[] = [];

  /** @internal use `MemoryBroker.connect`. */
  constructor(broker: BrokerSide, logger?: Logger) {
    this.#broker = broker;
    this.logger = logger ?? lineLogger((line) => void this.lines.push(line));
  }

  /** True once {@link close}d for good. */
  get closed(): boolean { return this.#closed; }
  /** True between {@link block} and {@link unblock}. */
  get blocked(): boolean { return this.#blocked; }
  /** True between {@link drop} and {@link reconnect}. */
  get down(): boolean { return this.#down !== undefined; }
  /** This connection's open channels. */
  get channels(): MemoryChannel[] { return [...this.#channels]; }

  /** Opens a channel a tick later; waits while the connection is down; rejects with `connection_lost` once closed. */
  async open(mode: "plain" | "confirm" = "plain"): Promise<MemoryChannel> {
    for (;;) {
      if (this.#closed) throw new RpcError("connection_lost", "connection to the in-memory broker is closed");
      if (this.#down !== undefined) await this.#down.promise;
      await tick();
      if (this.#closed || this.#down !== undefined) continue;
      const channel = new MemoryChannel(this.#broker, this, mode);
      this.#channels.add(channel);
      return channel;
    }
  }

  /** Resolves when the connection is not blocked (at once while it is down). */
  unblocked(): Promise<void> {
    if (this.#down !== undefined) {
      if (++this.unblockedWhileDown > 10_000) return Promise.reject(new Error("MemoryConnection: unblocked() called 10,000 times while down: the caller spins"));
      return Promise.resolve();
    }
    if (!this.#blocked) return Promise.resolve();
    return new Promise((resolve) => this.#unblockWaiters.push(resolve));
  }

  /** Fault: the broker's resource alarm. Publishes are held (not routed) until {@link unblock}. */
  block(): void { this.#blocked = true; }

  /** Ends a {@link block}: the held publishes are routed. */
  unblock(): void {
    this.#blocked = false;
    for (const send of this.#held.splice(0)) send();
    for (const resolve of this.#unblockWaiters.splice(0)) resolve();
  }

  /** Fault: the socket buffer is full; `publish` returns false (messages still go out) until {@link drain}. */
  saturate(): void { this.#saturated = true; }

  /** Ends a {@link saturate}: `drained()` resolves. */
  drain(): void {
    this.#saturated = false;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  /** Fault: the connection is lost. Every channel closes with `reason`, held publishes are gone, `open` waits for {@link reconnect}. */
  drop(reason: Error = brokerError(320, "CONNECTION_FORCED - connection lost (in memory)")): void {
    if (this.#down !== undefined || this.#closed) return;
    let resolve!: () => void;
    this.#down = { promise: new Promise<void>((r) => (resolve = r)), resolve };
    this.#blocked = false; // as AmqpConnection: a lost connection is not blocked
    this.#held = [];
    this.#shutdown(reason);
  }

  /** Ends a {@link drop}: a fresh connection, not blocked. */
  reconnect(): void {
    const down = this.#down;
    this.#down = undefined;
    this.#blocked = false;
    this.unblockedWhileDown = 0;
    down?.resolve();
  }

  /** Closes for good (as `Connection.close()`): channels close, `open` rejects with `connection_lost`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#shutdown(undefined);
    this.#down?.resolve();
    this.#down = undefined;
  }

  #shutdown(reason: CloseReason): void {
    for (const ch of [...this.#channels]) ch.shutdown(reason);
    this.#broker.connectionClosed(this);
    for (const resolve of [...this.#unblockWaiters.splice(0), ...this.#drainWaiters.splice(0)]) resolve();
  }

  /** @internal Sends (or, while blocked, holds) one publish; false when the socket buffer is full. */
  send(publish: () => void): boolean {
    if (this.#blocked) this.#held.push(publish);
    else publish();
    return !this.#saturated;
  }
  /** @internal */ whenDrained(): Promise<void> {
    return this.#saturated ? new Promise((resolve) => this.#drainWaiters.push(resolve)) : Promise.resolve();
  }
  /** @internal */ forget(ch: MemoryChannel): void { this.#channels.delete(ch); }
}

/** One channel: a {@link WireChannel}, with the broker's view of it (consumers, unacked deliveries, acks). */
export class MemoryChannel implements WireChannel {
  /** The channel's number, unique in the broker. */
  readonly id: number;
  /** This channel's direct reply-to address (what the broker puts in `replyTo` of its requests). */
  readonly replyAddress: string;
  /** Every ack sent on this channel, in order. */
  readonly acks: { tag: number; multiple: boolean }[] = [];
  /** @internal The direct reply-to consumer, if any. */
  replyConsumer: Consumer | undefined;
  #closed = false;
  #reason: CloseReason;
  #closeListeners: ((reason: CloseReason) => void)[] = [];
  readonly #returnListeners: ((msg: Returned) => void)[] = [];
  readonly #consumers = new Map<string, Consumer>();
  readonly #unacked = new Map<number, { queue: Queue; message: StoredMessage }>();
  readonly #confirms = new Set<(err: Error | null) => void>();
  #nextTag = 0;
  #prefetch = 0;

  /** @internal use {@link MemoryConnection.open}. */
  constructor(
    private readonly broker: BrokerSide,
    /** The connection this channel belongs to. */
    readonly connection: MemoryConnection,
    /** `confirm`: publishes are acked or nacked by the broker. */
    readonly mode: "plain" | "confirm",
  ) {
    this.id = broker.open(this);
    this.replyAddress = broker.replyAddressOf(this);
  }

  /** See {@link WireChannel.closed}. */
  get closed(): boolean { return this.#closed; }
  /** Deliveries not yet acknowledged on this channel. */
  get unacked(): number { return this.#unacked.size; }

  /** See {@link WireChannel.onClose}. */
  onClose(listener: (reason: CloseReason) => void): void {
    if (this.#closed) queueMicrotask(() => listener(this.#reason));
    else this.#closeListeners.push(listener);
  }

  /** See {@link WireChannel.onReturn}. */
  onReturn(listener: (msg: Returned) => void): void { this.#returnListeners.push(listener); }

  /** See {@link WireChannel.drained}. */
  drained(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return Promise.race([this.connection.whenDrained(), new Promise<void>((resolve) => this.onClose(() => resolve()))]);
  }

  /** See {@link WireChannel.publish}. */
  publish(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory = false): boolean {
    this.#record(exchange, routingKey, content, props, mandatory);
    return this.connection.send(() => this.broker.route(this, exchange, routingKey, content, props, mandatory));
  }

  /** See {@link WireChannel.publishConfirmed}. */
  publishConfirmed(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, confirmed: (err: Error | null) => void): boolean {
    if (this.mode !== "confirm") throw new Error("MemoryChannel: publishConfirmed on a channel not in confirm mode");
    this.#record(exchange, routingKey, content, props, false);
    const once = (err: Error | null) => this.#confirms.delete(once) && confirmed(err);
    this.#confirms.add(once);
    return this.connection.send(() => this.broker.route(this, exchange, routingKey, content, props, false, once));
  }

  /** See {@link WireChannel.consume}. */
  consume(queue: string, deliver: (msg: Delivery | null) => void, options: { noAck?: boolean } = {}): Promise<string> {
    return this.#op(() => {
      const tag = `amq.ctag-${this.id}.${this.#consumers.size + 1}`;
      const noAck = options.noAck === true;
      if (queue === REPLY_TO && !noAck) throw brokerError(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge");
      const consumer: Consumer = { tag, queue: queue === REPLY_TO ? undefined : this.broker.getQueue(queue, this.connection), channel: this, deliver, noAck };
      this.#consumers.set(tag, consumer);
      if (consumer.queue === undefined) this.replyConsumer = consumer;
      else {
        consumer.queue.consumers.push(consumer);
        this.broker.schedule(consumer.queue);
      }
      const closeNow = this.broker.takeCloseAfterConsume(queue);
      if (closeNow !== undefined) this.shutdown(closeNow); // after consume-ok, before the caller resumes
      return tag;
    });
  }

  /** See {@link WireChannel.cancel}. */
  cancel(consumerTag: string): Promise<void> {
    return this.#op(() => {
      const consumer = this.#consumers.get(consumerTag);
      if (consumer === undefined) return;
      this.forget(consumerTag);
      this.broker.removeConsumer(consumer);
    });
  }

  /** See {@link WireChannel.ack}. */
  ack(target: AckTarget, multiple = false): void {
    if (this.#closed) return;
    const tag = target.fields.deliveryTag;
    this.acks.push({ tag, multiple });
    if (!this.#unacked.has(tag)) {
      // RabbitMQ closes the channel; the error reaches the client a moment later.
      later(() => this.failByBroker(brokerError(406, `PRECONDITION_FAILED - unknown delivery tag ${tag}`)));
      return;
    }
    for (const t of multiple ? [...this.#unacked.keys()].filter((t) => t <= tag) : [tag]) {
      const { queue } = this.#unacked.get(t)!;
      this.#unacked.delete(t);
      queue.unacked--;
      this.broker.schedule(queue);
    }
  }

  /** See {@link WireChannel.prefetch}. */
  prefetch(count: number): Promise<void> {
    return this.#op(() => {
      this.#prefetch = count;
      for (const c of this.#consumers.values()) if (c.queue !== undefined) this.broker.schedule(c.queue);
    });
  }

  /** See {@link WireChannel.checkQueue}. */
  checkQueue(name: string): Promise<{ messageCount: number; consumerCount: number }> {
    return this.#op(() => {
      // As RabbitMQ answers for a direct reply-to address: its channel is open (one consumer), or 404.
      if (name.startsWith(`${REPLY_TO}.`)) {
        if (this.broker.connectionAt(name) === undefined) throw brokerError(404, `NOT_FOUND - no queue '${name}' in vhost '/'`);
        return { messageCount: 0, consumerCount: 1 };
      }
      const q = this.broker.getQueue(name, this.connection);
      return { messageCount: q.messages.length, consumerCount: q.consumers.length };
    });
  }

  /** See {@link WireChannel.declareQueue}. */
  declareQueue(name: string, options: QueueOptions): Promise<string> { return this.#op(() => this.broker.declareQueue(name, options, this.connection)); }

  /** See {@link WireChannel.declareExchange}. */
  declareExchange(name: string, type: string, _options?: { durable: boolean }): Promise<void> {
    return this.#op(() => this.broker.declareExchange(name, type));
  }

  /** See {@link WireChannel.bindQueue}. */
  bindQueue(queue: string, exchange: string, key: string): Promise<void> { return this.#op(() => this.broker.bind(queue, exchange, key, this.connection)); }

  /** See {@link WireChannel.unbindQueue}. */
  unbindQueue(queue: string, exchange: string, key: string): Promise<void> { return this.#op(() => this.broker.unbind(queue, exchange, key, this.connection)); }

  /** See {@link WireChannel.get}: the head message, held unacknowledged by this channel. */
  get(queue: string): Promise<Delivery | undefined> {
    return this.#op(() => {
      const q = this.broker.getQueue(queue, this.connection);
      const message = q.messages.shift();
      if (message === undefined) return undefined;
      const deliveryTag = ++this.#nextTag;
      this.#unacked.set(deliveryTag, { queue: q, message });
      q.unacked++;
      const { content, properties, exchange, routingKey, redelivered } = message;
      return { content, properties, fields: { deliveryTag, redelivered, exchange, routingKey } as Delivery["fields"] };
    });
  }

  /** See {@link WireChannel.close}. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await tick();
    this.shutdown(undefined);
  }

  /** Fault: the broker closes this channel with `reason` (a channel error such as 406, or 320 CONNECTION_FORCED). */
  failByBroker(reason: Error = brokerError(320, "CONNECTION_FORCED - channel closed by the broker (in memory)")): void { this.shutdown(reason); }

  /** @internal Closes now: consumers go, unacked deliveries are requeued, pending confirms fail, close listeners run. */
  shutdown(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reason = reason;
    this.broker.closed(this);
    this.connection.forget(this);
    for (const c of this.#consumers.values()) this.broker.removeConsumer(c);
    this.#consumers.clear();
    this.replyConsumer = undefined;
    const byQueue = new Map<Queue, StoredMessage[]>();
    for (const [, { queue, message }] of [...this.#unacked].sort(([a], [b]) => a - b)) byQueue.set(queue, [...(byQueue.get(queue) ?? []), message]);
    this.#unacked.clear();
    for (const [queue, messages] of byQueue) this.broker.requeue(queue, messages);
    for (const confirm of [...this.#confirms]) confirm(reason ?? new Error("Channel closed"));
    for (const listener of this.#closeListeners.splice(0)) listener(reason);
  }

  /** @internal */ consumes(queue: string): boolean { return [...this.#consumers.values()].some((c) => (c.queue?.name ?? REPLY_TO) === queue); }
  /** @internal */ hasRoom(c: Consumer): boolean { return c.noAck || this.#prefetch === 0 || this.#unacked.size < this.#prefetch; }

  /** @internal Hands `message` to consumer `c`, synchronously, as amqplib does while it reads frames. */
  deliver(c: Consumer, message: StoredMessage): void {
    if (this.#closed || this.#consumers.get(c.tag) !== c) return;
    const deliveryTag = ++this.#nextTag;
    if (!c.noAck) {
      this.#unacked.set(deliveryTag, { queue: c.queue!, message });
      c.queue!.unacked++;
    }
    const { content, properties, exchange, routingKey, redelivered } = message;
    c.deliver({ content, properties, fields: { deliveryTag, redelivered, exchange, routingKey, consumerTag: c.tag } as Delivery["fields"] });
  }

  /** @internal */ returned(msg: Returned): void {
    if (!this.#closed) for (const listener of this.#returnListeners) listener(msg);
  }
  /** @internal */ forget(consumerTag: string): void {
    if (this.#consumers.get(consumerTag) === this.replyConsumer) this.replyConsumer = undefined;
    this.#consumers.delete(consumerTag);
  }

  #record(exchange: string, routingKey: string, content: Buffer, properties: MessageProperties, mandatory: boolean): void {
    if (this.#closed) throw new Error("Channel closed");
    this.broker.published.push({ channel: this.id, exchange, routingKey, content: Buffer.from(content), properties, mandatory });
  }

  /** An operation that waits for the broker: a round trip later; a refusal closes the channel with the error and rejects. */
  async #op<T>(fn: () => T): Promise<T> {
    if (this.#closed) throw new Error("Channel closed");
    await tick();
    if (this.#closed) throw this.#reason ?? new Error("Channel closed");
    try {
      return fn();
    } catch (err) {
      this.shutdown(err as Error);
      throw err;
    }
  }
}
