/**
 * An in-memory RabbitMQ behind warren's seam (src/amqp/channel-source.ts), for unit tests of
 * `rpc/` and `events/` without a broker. It keeps the seam's contracts and does what RabbitMQ
 * does where warren relies on it:
 * - the default exchange routes to the queue named by the routing key; direct, topic (`*`, `#`)
 *   and fanout exchanges route through bindings; an unroutable `mandatory` publish comes back
 *   to `onReturn`;
 * - direct reply-to: a request's `replyTo` is rewritten to the publishing channel's own address
 *   (shaped as the broker's: `amq.rabbitmq.reply-to.<pid>.<key>`), whose replies reach that
 *   channel's no-ack consumer;
 * - a queue hands messages round-robin to consumers whose channel has room under its prefetch;
 *   delivery tags are per channel; an ack of an unknown (or already acked) tag closes the
 *   channel (406); a closed channel's unacked deliveries are requeued, `redelivered`;
 * - auto-delete queues go with their last consumer, exclusive ones with their connection;
 * - per-message `expiration` is checked at delivery;
 * - deliveries, returns and confirms arrive on a later tick, as from a socket
 *   (`process.nextTick`, which vitest's fake timers leave alone).
 *
 * Faults: {@link FakeChannel.failByBroker}, {@link FakeConnection.drop} / `reconnect` / `close`,
 * `block` / `unblock`, `saturate` / `drain`, {@link FakeBroker.nackNextConfirms}, `swallow`,
 * `closeAfterConsumeOk`, `deleteQueue`. Inspection: {@link FakeBroker.queue}, `published`,
 * `channels`, {@link FakeChannel.acks}, {@link FakeConnection.lines} (the log).
 */
import { NackError, type AckTarget, type ChannelSource, type CloseReason, type Delivery, type MessageProperties, type QueueOptions, type Returned, type WireChannel } from "../../src/amqp/channel-source.js";
import { RpcError } from "../../src/core/errors.js";
import type { Logger } from "../../src/core/options.js";

const REPLY_TO = "amq.rabbitmq.reply-to";
/** Captured at import, before a test fakes timers: {@link FakeBroker.settle} must really yield. */
const realSetImmediate = setImmediate;
const later = (fn: () => void) => process.nextTick(fn);
const tick = () => new Promise<void>((resolve) => later(resolve));

/** An AMQP error as amqplib raises it: the reply code in `code`, the broker's text in the message. */
export function brokerError(code: number, text: string): Error & { code: number } {
  const name = text.split(" - ")[0]!.replace(/_/g, "-");
  return Object.assign(new Error(`Channel closed by server: ${code} (${name}) with message "${text}"`), { code });
}

/** A message as a queue holds it. */
export interface StoredMessage {
  readonly content: Buffer;
  readonly properties: MessageProperties;
  readonly exchange: string;
  readonly routingKey: string;
  readonly redelivered: boolean;
  /** `Date.now()` from which it is dropped instead of delivered (per-message `expiration`). */
  readonly expiresAt: number;
}

/** One call of `publish` / `publishConfirmed`, as the client made it (before the broker rewrote anything). */
export interface Published {
  readonly channel: number;
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly properties: MessageProperties;
  readonly mandatory: boolean;
}

/** What {@link FakeBroker.queue} reports about a queue. */
export interface QueueInfo {
  readonly ready: number;
  readonly unacked: number;
  readonly consumers: number;
  readonly messages: readonly StoredMessage[];
  readonly options: QueueOptions;
}

interface Queue {
  readonly name: string;
  readonly options: QueueOptions;
  readonly owner: FakeConnection | undefined;
  messages: StoredMessage[];
  consumers: Consumer[];
  next: number;
  unacked: number;
  scheduled: boolean;
}
/** A consumer; `queue` is undefined for the direct reply-to consumer. */
interface Consumer {
  readonly tag: string;
  readonly queue: Queue | undefined;
  readonly channel: FakeChannel;
  readonly deliver: (msg: Delivery | null) => void;
  readonly noAck: boolean;
}

/** The broker: queues, exchanges and bindings, and the open channels of every connection. */
export class FakeBroker {
  /** Every publish any channel made, in order. */
  readonly published: Published[] = [];
  readonly #queues = new Map<string, Queue>();
  readonly #exchanges = new Map<string, { type: string; bindings: { queue: string; key: string }[] }>([
    ["amq.direct", { type: "direct", bindings: [] }],
    ["amq.topic", { type: "topic", bindings: [] }],
    ["amq.fanout", { type: "fanout", bindings: [] }],
  ]);
  readonly #channels = new Map<number, FakeChannel>();
  /** Direct reply-to addresses, to their channels. */
  readonly #replyAddresses = new Map<string, FakeChannel>();
  readonly #swallowed = new Set<string>();
  readonly #closeAfterConsume = new Map<string, Error>();
  #nacks = 0;
  #ids = 0;

  /** A new connection (a {@link ChannelSource}) to this broker. */
  connect(logger?: Logger): FakeConnection { return new FakeConnection(this, logger); }

  /** A queue's state, or undefined when it does not exist. Expired messages at its head are dropped first. */
  queue(name: string): QueueInfo | undefined {
    const q = this.#queues.get(name);
    if (q === undefined) return undefined;
    dropExpired(q);
    return { ready: q.messages.length, unacked: q.unacked, consumers: q.consumers.length, messages: [...q.messages], options: q.options };
  }

  /** The open channels (of every connection), optionally only those consuming `queue`. */
  channels(consuming?: string): FakeChannel[] {
    return [...this.#channels.values()].filter((ch) => consuming === undefined || ch.consumes(consuming));
  }

  /** The next `n` confirms are nacks: `publishConfirmed` calls back with a `NackError`; the message is not routed. */
  nackNextConfirms(n: number): void { this.#nacks += n; }

  /**
   * Publishes routed to `queue` (or sent to that name on the default exchange, e.g. a reply-to
   * address) vanish: no delivery, no return, no confirm, as on a stale channel. Until {@link unswallow}.
   */
  swallow(queue: string): void { this.#swallowed.add(queue); }

  /** Ends a {@link swallow}. */
  unswallow(queue: string): void { this.#swallowed.delete(queue); }

  /** The next consume of `queue` gets its consume-ok, then the channel closes with `reason` before the caller resumes (one TCP read). */
  closeAfterConsumeOk(queue: string, reason: Error = brokerError(320, "CONNECTION_FORCED - closed after consume-ok")): void {
    this.#closeAfterConsume.set(queue, reason);
  }

  /** Deletes a queue as an operator would: its messages are gone, its consumers get `null` (cancelled). */
  deleteQueue(name: string): void {
    const q = this.#queues.get(name);
    if (q === undefined) return;
    this.#queues.delete(name);
    for (const ex of this.#exchanges.values()) ex.bindings = ex.bindings.filter((b) => b.queue !== name);
    for (const c of q.consumers) {
      c.channel.forget(c.tag);
      c.deliver(null);
    }
  }

  /** Resolves once every delivery, return and confirm now under way has happened (one real macrotask turn). */
  settle(): Promise<void> { return new Promise((resolve) => realSetImmediate(resolve)); }

  // The broker's side of the channel operations (called by FakeChannel; throwing a brokerError closes the channel).

  /** @internal */ open(ch: FakeChannel): number {
    const id = ++this.#ids;
    this.#channels.set(id, ch);
    return id;
  }
  /** @internal */ closed(ch: FakeChannel): void {
    this.#channels.delete(ch.id);
    this.#replyAddresses.delete(ch.replyAddress);
  }
  /** @internal The direct reply-to address of a channel, shaped as RabbitMQ's (servers check the shape). */
  replyAddressOf(ch: FakeChannel): string {
    // A pid as an Erlang term: 131, NEW_PID_EXT (88), the node as a small UTF-8 atom (119), then id, serial and creation.
    const node = Buffer.from("rabbit@fake");
    const pid = Buffer.concat([Buffer.from([131, 88, 119, node.length]), node, Buffer.alloc(12)]);
    pid.writeUInt32BE(ch.id, 4 + node.length);
    const address = `${REPLY_TO}.${pid.toString("base64")}.${Buffer.from(`channel-${ch.id}`).toString("base64")}`;
    this.#replyAddresses.set(address, ch);
    return address;
  }
  /** @internal */ takeCloseAfterConsume(queue: string): Error | undefined {
    const reason = this.#closeAfterConsume.get(queue);
    this.#closeAfterConsume.delete(queue);
    return reason;
  }
  /** @internal */ getQueue(name: string, by: FakeConnection): Queue {
    const q = this.#queues.get(name);
    if (q === undefined) throw brokerError(404, `NOT_FOUND - no queue '${name}' in vhost '/'`);
    if (q.owner !== undefined && q.owner !== by) throw brokerError(405, `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${name}' in vhost '/'`);
    return q;
  }

  /** @internal An empty name makes a server-named queue; a redeclaration must be equivalent (406). */
  declareQueue(name: string, options: QueueOptions, by: FakeConnection): string {
    if (name === "") name = `amq.gen-${++this.#ids}`;
    else if (name.startsWith("amq.")) throw brokerError(403, `ACCESS_REFUSED - queue name '${name}' contains reserved prefix 'amq.*'`);
    const existing = this.#queues.get(name);
    if (existing === undefined) {
      const owner = options.exclusive === true ? by : undefined;
      this.#queues.set(name, { name, options: { ...options }, owner, messages: [], consumers: [], next: 0, unacked: 0, scheduled: false });
      return name;
    }
    this.getQueue(name, by);
    const was = existing.options;
    for (const [arg, before, now] of [
      ["durable", was.durable, options.durable],
      ["exclusive", was.exclusive ?? false, options.exclusive ?? false],
      ["auto_delete", was.autoDelete ?? false, options.autoDelete ?? false],
      ["x-queue-type", was.arguments?.["x-queue-type"], options.arguments?.["x-queue-type"]],
    ] as const) {
      if (before !== now) throw brokerError(406, `PRECONDITION_FAILED - inequivalent arg '${arg}' for queue '${name}' in vhost '/': received ${JSON.stringify(now ?? "none")} but current is ${JSON.stringify(before ?? "none")}`);
    }
    return name;
  }

  /** @internal */ declareExchange(name: string, type: string): void {
    if (name === "" || name.startsWith("amq.")) throw brokerError(403, `ACCESS_REFUSED - exchange name '${name}' contains reserved prefix 'amq.*'`);
    const existing = this.#exchanges.get(name);
    if (existing === undefined) this.#exchanges.set(name, { type, bindings: [] });
    else if (existing.type !== type) throw brokerError(406, `PRECONDITION_FAILED - inequivalent arg 'type' for exchange '${name}' in vhost '/': received '${type}' but current is '${existing.type}'`);
  }

  /** @internal */ bind(queue: string, exchange: string, key: string, by: FakeConnection): void {
    this.getQueue(queue, by);
    const ex = this.#exchanges.get(exchange);
    if (ex === undefined) throw brokerError(404, `NOT_FOUND - no exchange '${exchange}' in vhost '/'`);
    if (!ex.bindings.some((b) => b.queue === queue && b.key === key)) ex.bindings.push({ queue, key });
  }

  /** @internal Routes one publish of `from`; `confirm` (confirm channels) is called once, on a later tick, unless the message was swallowed. */
  route(from: FakeChannel, exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory: boolean, confirm?: (err: Error | null) => void): void {
    if (confirm !== undefined && this.#nacks > 0) {
      this.#nacks--;
      return later(() => confirm(new NackError()));
    }
    if (props.replyTo === REPLY_TO) {
      if (from.replyConsumer === undefined) return from.failByBroker(brokerError(406, "PRECONDITION_FAILED - fast reply consumer does not exist"));
      props = { ...props, replyTo: from.replyAddress };
    }
    const message: StoredMessage = {
      content: Buffer.from(content),
      properties: { ...props, ...(props.headers === undefined ? {} : { headers: { ...props.headers } }) },
      exchange,
      routingKey,
      redelivered: false,
      expiresAt: props.expiration === undefined ? Infinity : Date.now() + Number(props.expiration),
    };
    let targets: Queue[] = [];
    const replyTarget = exchange === "" ? this.#replyAddresses.get(routingKey)?.replyConsumer : undefined;
    if (exchange === "") {
      const q = this.#queues.get(routingKey);
      if (q !== undefined) targets = [q];
    } else {
      const ex = this.#exchanges.get(exchange);
      if (ex === undefined) return from.failByBroker(brokerError(404, `NOT_FOUND - no exchange '${exchange}' in vhost '/'`));
      const matches = (key: string) => ex.type === "fanout" || (ex.type === "topic" ? topicMatch(key, routingKey) : key === routingKey);
      targets = [...new Set(ex.bindings.filter((b) => matches(b.key)).map((b) => b.queue))].map((n) => this.#queues.get(n)!);
    }
    if ((exchange === "" && this.#swallowed.has(routingKey)) || targets.some((q) => this.#swallowed.has(q.name))) return;
    if (replyTarget !== undefined) later(() => replyTarget.channel.deliver(replyTarget, message));
    for (const q of targets) {
      q.messages.push(message);
      this.schedule(q);
    }
    if (targets.length === 0 && replyTarget === undefined && mandatory) later(() => from.returned({ content: Buffer.from(content), properties: props }));
    if (confirm !== undefined) later(() => confirm(null));
  }

  /** @internal Delivers `q`'s ready messages on a later tick, round-robin among consumers with room under their prefetch. */
  schedule(q: Queue): void {
    if (q.scheduled) return;
    q.scheduled = true;
    later(() => {
      q.scheduled = false;
      while (this.#queues.get(q.name) === q) {
        dropExpired(q);
        const n = q.consumers.length;
        const k = q.messages.length === 0 ? -1 : Array.from({ length: n }, (_, i) => (q.next + i) % n).find((i) => q.consumers[i]!.channel.hasRoom(q.consumers[i]!));
        if (k === undefined || k < 0) return;
        q.next = (k + 1) % n;
        q.consumers[k]!.channel.deliver(q.consumers[k]!, q.messages.shift()!);
      }
    });
  }

  /** @internal An auto-delete queue goes with its last consumer. */
  removeConsumer(c: Consumer): void {
    const q = c.queue;
    if (q === undefined) return;
    q.consumers = q.consumers.filter((x) => x !== c);
    if (q.options.autoDelete === true && q.consumers.length === 0) this.deleteQueue(q.name);
  }

  /** @internal Puts unacked messages back at the head of `q`, marked redelivered. */
  requeue(q: Queue, messages: StoredMessage[]): void {
    q.unacked -= messages.length;
    if (this.#queues.get(q.name) !== q) return;
    q.messages.unshift(...messages.map((m) => ({ ...m, redelivered: true })));
    this.schedule(q);
  }

  /** @internal Exclusive queues go with their connection. */
  connectionClosed(conn: FakeConnection): void {
    for (const q of [...this.#queues.values()]) if (q.owner === conn) this.deleteQueue(q.name);
  }
}

function dropExpired(q: Queue): void {
  while (q.messages.length > 0 && q.messages[0]!.expiresAt <= Date.now()) q.messages.shift();
}

/** AMQP topic matching: `*` is one word, `#` zero or more. */
export function topicMatch(pattern: string, key: string): boolean {
  const match = (p: string[], k: string[]): boolean => {
    if (p.length === 0) return k.length === 0;
    if (p[0] === "#") return match(p.slice(1), k) || (k.length > 0 && match(p, k.slice(1)));
    return k.length > 0 && (p[0] === "*" || p[0] === k[0]) && match(p.slice(1), k.slice(1));
  };
  return match(pattern.split("."), key.split("."));
}

/**
 * One connection: the {@link ChannelSource} under test. Like `AmqpConnection`: `open` waits
 * while the connection is down; `blocked` stays true until the reconnection; `unblocked()`
 * resolves at once while down.
 */
export class FakeConnection implements ChannelSource {
  /** Every line the runtime logged through this connection's default logger. */
  readonly lines: string[] = [];
  readonly logger: Logger;
  /** How often `unblocked()` was called while down (past 10,000 it rejects: a caller loops on it). */
  unblockedWhileDown = 0;
  readonly #broker: FakeBroker;
  readonly #channels = new Set<FakeChannel>();
  #closed = false;
  #blocked = false;
  #saturated = false;
  #down: { promise: Promise<void>; resolve: () => void } | undefined;
  #held: (() => void)[] = [];
  #unblockWaiters: (() => void)[] = [];
  #drainWaiters: (() => void)[] = [];

  constructor(broker: FakeBroker, logger?: Logger) {
    this.#broker = broker;
    this.logger = logger ?? { warn: (m) => void this.lines.push(m), error: (m) => void this.lines.push(m) };
  }

  get closed(): boolean { return this.#closed; }
  get blocked(): boolean { return this.#blocked; }
  /** True between {@link drop} and {@link reconnect}. */
  get down(): boolean { return this.#down !== undefined; }
  /** This connection's open channels. */
  get channels(): FakeChannel[] { return [...this.#channels]; }

  async open(mode: "plain" | "confirm" = "plain"): Promise<FakeChannel> {
    for (;;) {
      if (this.#closed) throw new RpcError("connection_lost", "connection to the fake broker is closed");
      if (this.#down !== undefined) await this.#down.promise;
      await tick();
      if (this.#closed || this.#down !== undefined) continue;
      const channel = new FakeChannel(this.#broker, this, mode);
      this.#channels.add(channel);
      return channel;
    }
  }

  unblocked(): Promise<void> {
    if (this.#down !== undefined) {
      if (++this.unblockedWhileDown > 10_000) return Promise.reject(new Error("FakeConnection: unblocked() called 10,000 times while down: the caller spins"));
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
  drop(reason: Error = brokerError(320, "CONNECTION_FORCED - connection lost (fake)")): void {
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
  /** @internal */ forget(ch: FakeChannel): void { this.#channels.delete(ch); }
}

/** One channel: a {@link WireChannel}, with the broker's view of it (consumers, unacked deliveries, acks). */
export class FakeChannel implements WireChannel {
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

  constructor(
    private readonly broker: FakeBroker,
    private readonly conn: FakeConnection,
    readonly mode: "plain" | "confirm",
  ) {
    this.id = broker.open(this);
    this.replyAddress = broker.replyAddressOf(this);
  }

  get closed(): boolean { return this.#closed; }
  /** Deliveries not yet acknowledged on this channel. */
  get unacked(): number { return this.#unacked.size; }

  onClose(listener: (reason: CloseReason) => void): void {
    if (this.#closed) queueMicrotask(() => listener(this.#reason));
    else this.#closeListeners.push(listener);
  }

  onReturn(listener: (msg: Returned) => void): void { this.#returnListeners.push(listener); }

  drained(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return Promise.race([this.conn.whenDrained(), new Promise<void>((resolve) => this.onClose(() => resolve()))]);
  }

  publish(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory = false): boolean {
    this.#record(exchange, routingKey, content, props, mandatory);
    return this.conn.send(() => this.broker.route(this, exchange, routingKey, content, props, mandatory));
  }

  publishConfirmed(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, confirmed: (err: Error | null) => void): boolean {
    if (this.mode !== "confirm") throw new Error("FakeChannel: publishConfirmed on a channel not in confirm mode");
    this.#record(exchange, routingKey, content, props, false);
    const once = (err: Error | null) => this.#confirms.delete(once) && confirmed(err);
    this.#confirms.add(once);
    return this.conn.send(() => this.broker.route(this, exchange, routingKey, content, props, false, once));
  }

  consume(queue: string, deliver: (msg: Delivery | null) => void, options: { noAck?: boolean } = {}): Promise<string> {
    return this.#op(() => {
      const tag = `amq.ctag-${this.id}.${this.#consumers.size + 1}`;
      const noAck = options.noAck === true;
      if (queue === REPLY_TO && !noAck) throw brokerError(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge");
      const consumer: Consumer = { tag, queue: queue === REPLY_TO ? undefined : this.broker.getQueue(queue, this.conn), channel: this, deliver, noAck };
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

  cancel(consumerTag: string): Promise<void> {
    return this.#op(() => {
      const consumer = this.#consumers.get(consumerTag);
      if (consumer === undefined) return;
      this.forget(consumerTag);
      this.broker.removeConsumer(consumer);
    });
  }

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

  prefetch(count: number): Promise<void> {
    return this.#op(() => {
      this.#prefetch = count;
      for (const c of this.#consumers.values()) if (c.queue !== undefined) this.broker.schedule(c.queue);
    });
  }

  declareQueue(name: string, options: QueueOptions): Promise<string> { return this.#op(() => this.broker.declareQueue(name, options, this.conn)); }

  declareExchange(name: string, type: string, _options?: { durable: boolean }): Promise<void> {
    return this.#op(() => this.broker.declareExchange(name, type));
  }

  bindQueue(queue: string, exchange: string, key: string): Promise<void> { return this.#op(() => this.broker.bind(queue, exchange, key, this.conn)); }

  async close(): Promise<void> {
    if (this.#closed) return;
    await tick();
    this.shutdown(undefined);
  }

  /** Fault: the broker closes this channel with `reason` (a channel error such as 406, or 320 CONNECTION_FORCED). */
  failByBroker(reason: Error = brokerError(320, "CONNECTION_FORCED - channel closed by the broker (fake)")): void { this.shutdown(reason); }

  /** @internal Closes now: consumers go, unacked deliveries are requeued, pending confirms fail, close listeners run. */
  shutdown(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reason = reason;
    this.broker.closed(this);
    this.conn.forget(this);
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
