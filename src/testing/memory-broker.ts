/**
 * An in-memory RabbitMQ behind warren's seam (src/amqp/channel-source.ts): what
 * `warren/testing` runs warren's real `RpcClient`, `RpcServer` and `EventBus` on, and what
 * warren's own unit tests use. It keeps the seam's contracts and does what RabbitMQ does
 * where warren relies on it:
 * - the default exchange routes to the queue named by the routing key; direct, topic (`*`, `#`)
 *   and fanout exchanges route through bindings; an unroutable `mandatory` publish comes back
 *   to `onReturn`;
 * - direct reply-to: a request's `replyTo` is rewritten to the publishing channel's own address
 *   (shaped as the broker's: `amq.rabbitmq.reply-to.<pid>.<key>`), whose replies reach that
 *   channel's no-ack consumer;
 * - a queue hands messages round-robin to consumers whose channel has room under its prefetch;
 *   delivery tags are per channel; an ack of an unknown (or already acked) tag closes the
 *   channel (406); a closed channel's unacked deliveries are requeued, `redelivered`;
 * - auto-delete queues go with their last consumer, exclusive ones with their connection, and a
 *   queue with `x-expires` once unused (no consumer, not declared again) that long;
 * - per-message `expiration` is checked at delivery; a queue's `x-message-ttl` caps it;
 * - a queue with `x-dead-letter-exchange` (and optionally `x-dead-letter-routing-key`) routes
 *   each message that expires at its head there, as RabbitMQ does: through that exchange, with
 *   that key (else its own), its `expiration` removed and an `x-death` header added;
 * - deliveries, returns and confirms arrive on a later tick, as from a socket
 *   (`process.nextTick`, which vitest's fake timers leave alone). Timers only for the expiry of
 *   queues with a TTL or a dead-letter exchange and for `x-expires`: the global `setTimeout`
 *   (fake timers move them), unref'd (they never keep a process alive).
 *
 * Faults: {@link MemoryChannel.failByBroker}, {@link MemoryConnection.drop} / `reconnect` / `close`,
 * `block` / `unblock`, `saturate` / `drain`, {@link MemoryBroker.nackNextConfirms}, `swallow`,
 * `closeAfterConsumeOk`, `deleteQueue`, and {@link MemoryBroker.intercept} (every publish, for
 * `warren/testing`'s fault rules). Inspection: {@link MemoryBroker.queue}, `published`,
 * `channels`, {@link MemoryChannel.acks}, {@link MemoryConnection.lines} (the log).
 *
 * Not modelled: heartbeats, frame sizes, vhosts and permissions, queue length limits, quorum
 * queue elections, persistence across a broker restart.
 */
import { NackError, type MessageProperties, type QueueOptions } from "../amqp/channel-source.js";
import type { Logger } from "../core/options.js";
import { MemoryConnection, type BrokerSide, type Consumer, type MemoryChannel, type Queue } from "./memory-connection.js";
import { REPLY_TO, brokerError, later, type Published, type StoredMessage } from "./memory-wire.js";

export { MemoryConnection, MemoryChannel } from "./memory-connection.js";
export { brokerError, type Published, type StoredMessage } from "./memory-wire.js";

/** Captured at import, before a test fakes timers: {@link MemoryBroker.settle} must really yield. */
const realSetImmediate = setImmediate;

/** What {@link MemoryBroker.queue} reports about a queue. */
export interface QueueInfo {
  /** Messages waiting for a consumer. */
  readonly ready: number;
  /** Messages delivered and not yet acknowledged. */
  readonly unacked: number;
  /** Active consumers. */
  readonly consumers: number;
  /** The waiting messages, oldest first (a copy). */
  readonly messages: readonly StoredMessage[];
  /** How the queue was declared. */
  readonly options: QueueOptions;
}

/**
 * One publish as the broker is about to route it (after direct reply-to rewrote its
 * `replyTo`), handed to the {@link MemoryBroker.intercept} hook. The hook must call exactly one
 * of `route`, `returnUnrouted`, `nack` or `drop`, now or later; `route({ again: true })` may be
 * called any number of times besides, for duplicates.
 */
export interface InterceptedPublish {
  /** The exchange (`""`: the default exchange: requests, replies, retry copies and dead letters). */
  readonly exchange: string;
  /** The routing key (a queue name on the default exchange). */
  readonly routingKey: string;
  /** The body as published. */
  readonly content: Buffer;
  /** The properties, `replyTo` rewritten to the publisher's direct reply-to address. */
  readonly properties: MessageProperties;
  /** The `mandatory` flag. */
  readonly mandatory: boolean;
  /** True for a publish on a confirm channel (it waits for an ack or a nack). */
  readonly confirmed: boolean;
  /** The publisher's connection. */
  readonly connection: MemoryConnection;
  /**
   * Routes it as the broker would; `content` replaces the body, `redelivered` marks the
   * deliveries it makes as redelivered, `again` routes a copy (no confirm) besides the one
   * outcome. Nothing happens when the publisher's connection is closed or down by then.
   */
  route(options?: { content?: Buffer; redelivered?: boolean; again?: boolean }): void;
  /** As if no queue took it: a `mandatory` publish comes back to the publisher's `onReturn`; a confirm publish is acked. */
  returnUnrouted(): void;
  /** Refuses it (`basic.nack`); confirm publishes only (throws otherwise). */
  nack(): void;
  /** Loses it: no delivery, no return, no confirm. */
  drop(): void;
}

/** Decides what becomes of each publish; see {@link MemoryBroker.intercept}. */
export type PublishHook = (publish: InterceptedPublish) => void;

/** The broker: queues, exchanges and bindings, and the open channels of every connection. */
export class MemoryBroker implements BrokerSide {
  /** Every publish any channel made, in order. */
  readonly published: Published[] = [];
  readonly #queues = new Map<string, Queue>();
  readonly #exchanges = new Map<string, { type: string; bindings: { queue: string; key: string }[] }>([
    ["amq.direct", { type: "direct", bindings: [] }],
    ["amq.topic", { type: "topic", bindings: [] }],
    ["amq.fanout", { type: "fanout", bindings: [] }],
  ]);
  readonly #channels = new Map<number, MemoryChannel>();
  /** Direct reply-to addresses, to their channels. */
  readonly #replyAddresses = new Map<string, MemoryChannel>();
  readonly #swallowed = new Set<string>();
  readonly #closeAfterConsume = new Map<string, Error>();
  #nacks = 0;
  #ids = 0;
  #hook: PublishHook | undefined;

  /** A new connection (a {@link ChannelSource}) to this broker. */
  connect(logger?: Logger): MemoryConnection { return new MemoryConnection(this, logger); }

  /** A queue's state, or undefined when it does not exist. Expired messages at its head are dropped first. */
  queue(name: string): QueueInfo | undefined {
    const q = this.#queues.get(name);
    if (q === undefined) return undefined;
    this.#expire(q);
    return { ready: q.messages.length, unacked: q.unacked, consumers: q.consumers.length, messages: [...q.messages], options: q.options };
  }

  /** The open channels (of every connection), optionally only those consuming `queue`. */
  channels(consuming?: string): MemoryChannel[] {
    return [...this.#channels.values()].filter((ch) => consuming === undefined || ch.consumes(consuming));
  }

  /**
   * What is under way, one line each: queues with messages a consumer could take, with
   * unacknowledged deliveries (a handler still running), or with messages that will move on by
   * themselves (waiting to expire into a dead-letter exchange: an event waiting for its retry).
   * Empty when the broker is quiet.
   */
  busy(): string[] {
    const busy: string[] = [];
    for (const q of [...this.#queues.values()]) {
      this.#expire(q);
      const ready = q.consumers.length > 0 ? q.messages.length : 0;
      if (ready > 0 || q.unacked > 0) busy.push(`queue "${q.name}": ${ready} ready, ${q.unacked} unacked`);
      const waiting = deadLetterExchange(q) === undefined ? 0 : q.messages.filter((m) => m.expiresAt !== Infinity).length;
      if (ready === 0 && waiting > 0) busy.push(`queue "${q.name}": ${waiting} waiting to expire into its dead-letter exchange`);
    }
    return busy;
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
    if (q.expiry !== undefined) clearTimeout(q.expiry.timer);
    if (q.lease !== undefined) clearTimeout(q.lease);
    for (const ex of this.#exchanges.values()) ex.bindings = ex.bindings.filter((b) => b.queue !== name);
    for (const c of q.consumers) {
      c.channel.forget(c.tag);
      c.deliver(null);
    }
  }

  /** Resolves once every delivery, return and confirm now under way has happened (one real macrotask turn). */
  settle(): Promise<void> { return new Promise((resolve) => realSetImmediate(resolve)); }

  // The broker's side of the channel operations (called by MemoryChannel; throwing a brokerError closes the channel).

  /** @internal */ open(ch: MemoryChannel): number {
    const id = ++this.#ids;
    this.#channels.set(id, ch);
    return id;
  }
  /** @internal */ closed(ch: MemoryChannel): void {
    this.#channels.delete(ch.id);
    this.#replyAddresses.delete(ch.replyAddress);
  }
  /** @internal The direct reply-to address of a channel, shaped as RabbitMQ's (servers check the shape). */
  replyAddressOf(ch: MemoryChannel): string {
    // A pid as an Erlang term: 131, NEW_PID_EXT (88), the node as a small UTF-8 atom (119), then id, serial and creation.
    const node = Buffer.from("rabbit@memory");
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
  /** @internal */ getQueue(name: string, by: MemoryConnection): Queue {
    const q = this.#queues.get(name);
    if (q === undefined) throw brokerError(404, `NOT_FOUND - no queue '${name}' in vhost '/'`);
    if (q.owner !== undefined && q.owner !== by) throw brokerError(405, `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${name}' in vhost '/'`);
    return q;
  }

  /**
   * @internal An empty name makes a server-named queue; a redeclaration must be equivalent (406),
   * and renews an `x-expires` lease. Arguments RabbitMQ checks are checked (406 for a bad value).
   */
  declareQueue(name: string, options: QueueOptions, by: MemoryConnection): string {
    if (name === "") name = `amq.gen-${++this.#ids}`;
    else if (name.startsWith("amq.")) throw brokerError(403, `ACCESS_REFUSED - queue name '${name}' contains reserved prefix 'amq.*'`);
    const args = options.arguments ?? {};
    for (const [arg, min] of [["x-message-ttl", 0], ["x-expires", 1], ["x-max-length", 0]] as const) {
      const value = args[arg];
      if (value !== undefined && !(typeof value === "number" && Number.isInteger(value) && value >= min)) {
        throw brokerError(406, `PRECONDITION_FAILED - invalid arg '${arg}' for queue '${name}' in vhost '/': ${JSON.stringify(value)}`);
      }
    }
    for (const arg of ["x-dead-letter-exchange", "x-dead-letter-routing-key"]) {
      if (args[arg] !== undefined && typeof args[arg] !== "string") throw brokerError(406, `PRECONDITION_FAILED - invalid arg '${arg}' for queue '${name}' in vhost '/': ${JSON.stringify(args[arg])}`);
    }
    const existing = this.#queues.get(name);
    if (existing === undefined) {
      const owner = options.exclusive === true ? by : undefined;
      const q: Queue = { name, options: { ...options }, owner, messages: [], consumers: [], next: 0, unacked: 0, scheduled: false };
      this.#queues.set(name, q);
      this.#renewLease(q);
      return name;
    }
    this.getQueue(name, by);
    const was = existing.options;
    for (const [arg, before, now] of [
      ["durable", was.durable, options.durable],
      ["exclusive", was.exclusive ?? false, options.exclusive ?? false],
      ["auto_delete", was.autoDelete ?? false, options.autoDelete ?? false],
      ...CHECKED_ARGUMENTS.map((arg) => [arg, was.arguments?.[arg], args[arg]] as const),
    ] as const) {
      if (before !== now) throw brokerError(406, `PRECONDITION_FAILED - inequivalent arg '${arg}' for queue '${name}' in vhost '/': received ${JSON.stringify(now ?? "none")} but current is ${JSON.stringify(before ?? "none")}`);
    }
    this.#renewLease(existing);
    return name;
  }

  /** @internal */ declareExchange(name: string, type: string): void {
    if (name === "" || name.startsWith("amq.")) throw brokerError(403, `ACCESS_REFUSED - exchange name '${name}' contains reserved prefix 'amq.*'`);
    const existing = this.#exchanges.get(name);
    if (existing === undefined) this.#exchanges.set(name, { type, bindings: [] });
    else if (existing.type !== type) throw brokerError(406, `PRECONDITION_FAILED - inequivalent arg 'type' for exchange '${name}' in vhost '/': received '${type}' but current is '${existing.type}'`);
  }

  /** @internal */ bind(queue: string, exchange: string, key: string, by: MemoryConnection): void {
    this.getQueue(queue, by);
    const ex = this.#exchanges.get(exchange);
    if (ex === undefined) throw brokerError(404, `NOT_FOUND - no exchange '${exchange}' in vhost '/'`);
    if (!ex.bindings.some((b) => b.queue === queue && b.key === key)) ex.bindings.push({ queue, key });
  }

  /** @internal */ unbind(queue: string, exchange: string, key: string, by: MemoryConnection): void {
    this.getQueue(queue, by);
    const ex = this.#exchanges.get(exchange);
    if (ex === undefined) throw brokerError(404, `NOT_FOUND - no exchange '${exchange}' in vhost '/'`);
    ex.bindings = ex.bindings.filter((b) => b.queue !== queue || b.key !== key);
  }

  /** @internal Routes one publish of `from`, through the {@link intercept} hook if one is set; `confirm` (confirm channels) is called once, on a later tick, unless the message was swallowed. */
  route(from: MemoryChannel, exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory: boolean, confirm?: (err: Error | null) => void): void {
    if (confirm !== undefined && this.#nacks > 0) {
      this.#nacks--;
      return later(() => confirm(new NackError()));
    }
    if (props.replyTo === REPLY_TO) {
      if (from.replyConsumer === undefined) return from.failByBroker(brokerError(406, "PRECONDITION_FAILED - fast reply consumer does not exist"));
      props = { ...props, replyTo: from.replyAddress };
    }
    const hook = this.#hook;
    if (hook === undefined) return this.#deliver(from, exchange, routingKey, content, props, mandatory, false, confirm);
    let done = false;
    const once = (what: string) => {
      if (done) throw new Error(`MemoryBroker: a publish was already routed, returned, nacked or dropped (${what})`);
      done = true;
    };
    hook({
      exchange,
      routingKey,
      content,
      properties: props,
      mandatory,
      confirmed: confirm !== undefined,
      connection: from.connection,
      route: (options = {}) => {
        if (!options.again) once("route");
        if (!from.connection.closed && !from.connection.down) this.#deliver(from, exchange, routingKey, options.content ?? content, props, mandatory, options.redelivered === true, options.again ? undefined : confirm);
      },
      returnUnrouted: () => {
        once("returnUnrouted");
        if (mandatory) later(() => from.returned({ content: Buffer.from(content), properties: props }));
        if (confirm !== undefined) later(() => confirm(null));
      },
      nack: () => {
        once("nack");
        if (confirm === undefined) throw new Error("MemoryBroker: only a publish on a confirm channel can be nacked");
        later(() => confirm(new NackError()));
      },
      drop: () => once("drop"),
    });
  }

  /**
   * Sets the hook every publish goes through from now on (`undefined`: none). The hook decides
   * what becomes of the publish: {@link InterceptedPublish.route} it (now or later, changed or
   * not, once more as a duplicate), return it, nack it, or drop it. Used by `warren/testing`'s
   * fault rules; one hook at a time.
   */
  intercept(hook: PublishHook | undefined): void { this.#hook = hook; }

  /** The connection whose channel owns the direct reply-to address `address`, if it is open. */
  connectionAt(address: string): MemoryConnection | undefined { return this.#replyAddresses.get(address)?.connection; }

  /** The queues `exchange` routes `routingKey` to (the default exchange: the queue of that name); undefined when there is no such exchange. */
  #targets(exchange: string, routingKey: string): Queue[] | undefined {
    if (exchange === "") {
      const q = this.#queues.get(routingKey);
      return q === undefined ? [] : [q];
    }
    const ex = this.#exchanges.get(exchange);
    if (ex === undefined) return undefined;
    const matches = (key: string) => ex.type === "fanout" || (ex.type === "topic" ? topicMatch(key, routingKey) : key === routingKey);
    return [...new Set(ex.bindings.filter((b) => matches(b.key)).map((b) => b.queue))].map((n) => this.#queues.get(n)!);
  }

  /** Appends `message` to `q` (its expiry capped by the queue's `x-message-ttl`) and schedules delivery. */
  #enqueue(q: Queue, message: StoredMessage): void {
    const ttl = q.options.arguments?.["x-message-ttl"];
    q.messages.push(typeof ttl === "number" ? { ...message, expiresAt: Math.min(message.expiresAt, Date.now() + ttl) } : message);
    this.#armExpiry(q);
    this.schedule(q);
  }

  /** Removes the expired messages at the head of `q`, dead-lettering them when `q` has a dead-letter exchange. */
  #expire(q: Queue): void {
    while (q.messages.length > 0 && q.messages[0]!.expiresAt <= Date.now()) this.#deadLetter(q, q.messages.shift()!);
  }

  /** RabbitMQ's dead-lettering of an expired message: to the queue's dead-letter exchange and key, `expiration` removed, `x-death` recording where and why. */
  #deadLetter(q: Queue, m: StoredMessage): void {
    const exchange = deadLetterExchange(q);
    if (exchange === undefined) return;
    const key = q.options.arguments?.["x-dead-letter-routing-key"];
    const routingKey = typeof key === "string" ? key : m.routingKey;
    const { expiration: _expired, ...properties } = m.properties;
    const message: StoredMessage = {
      content: m.content,
      properties: { ...properties, headers: withDeath(m, q.name, "expired") },
      exchange,
      routingKey,
      redelivered: false,
      expiresAt: Infinity,
    };
    // A dead-letter exchange that does not exist, or routes nowhere: the message is gone, as on the broker.
    for (const target of this.#targets(exchange, routingKey) ?? []) this.#enqueue(target, message);
  }

  /** Keeps a timer for the expiry of `q`'s head message (queues with a TTL or a dead-letter exchange only; unref'd). */
  #armExpiry(q: Queue): void {
    const args = q.options.arguments;
    if (args?.["x-message-ttl"] === undefined && args?.["x-dead-letter-exchange"] === undefined) return;
    const at = q.messages[0]?.expiresAt ?? Infinity;
    if (q.expiry !== undefined) {
      if (q.expiry.at <= at) return; // an earlier timer re-arms when it fires
      clearTimeout(q.expiry.timer);
      q.expiry = undefined;
    }
    if (at === Infinity) return;
    const timer = setTimeout(() => {
      q.expiry = undefined;
      if (this.#queues.get(q.name) !== q) return;
      this.#expire(q);
      this.#armExpiry(q);
      this.schedule(q);
    }, Math.max(0, at - Date.now()));
    timer.unref?.();
    q.expiry = { at, timer };
  }

  /** (Re)starts the `x-expires` lease of `q` while it has no consumer: once it runs out, the queue is deleted. */
  #renewLease(q: Queue): void {
    const ms = q.options.arguments?.["x-expires"];
    if (typeof ms !== "number") return;
    if (q.lease !== undefined) clearTimeout(q.lease);
    q.lease = undefined;
    if (q.consumers.length > 0) return;
    q.lease = setTimeout(() => {
      q.lease = undefined;
      if (this.#queues.get(q.name) === q && q.consumers.length === 0) this.deleteQueue(q.name);
    }, ms);
    q.lease.unref?.();
  }

  #deliver(from: MemoryChannel, exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory: boolean, redelivered: boolean, confirm?: (err: Error | null) => void): void {
    const message: StoredMessage = {
      content: Buffer.from(content),
      properties: { ...props, ...(props.headers === undefined ? {} : { headers: { ...props.headers } }) },
      exchange,
      routingKey,
      redelivered,
      expiresAt: props.expiration === undefined ? Infinity : Date.now() + Number(props.expiration),
    };
    const replyTarget = exchange === "" ? this.#replyAddresses.get(routingKey)?.replyConsumer : undefined;
    const targets = this.#targets(exchange, routingKey);
    if (targets === undefined) return from.failByBroker(brokerError(404, `NOT_FOUND - no exchange '${exchange}' in vhost '/'`));
    if ((exchange === "" && this.#swallowed.has(routingKey)) || targets.some((q) => this.#swallowed.has(q.name))) return;
    if (replyTarget !== undefined) later(() => replyTarget.channel.deliver(replyTarget, message));
    for (const q of targets) this.#enqueue(q, message);
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
        this.#expire(q);
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
    else if (q.consumers.length === 0) this.#renewLease(q);
  }

  /** @internal Puts unacked messages back at the head of `q`, marked redelivered. */
  requeue(q: Queue, messages: StoredMessage[]): void {
    q.unacked -= messages.length;
    if (this.#queues.get(q.name) !== q) return;
    q.messages.unshift(...messages.map((m) => ({ ...m, redelivered: true })));
    this.#armExpiry(q);
    this.schedule(q);
  }

  /** @internal Exclusive queues go with their connection. */
  connectionClosed(conn: MemoryConnection): void {
    for (const q of [...this.#queues.values()]) if (q.owner === conn) this.deleteQueue(q.name);
  }
}


/** Queue arguments a redeclaration must repeat exactly (RabbitMQ's equivalence check). */
const CHECKED_ARGUMENTS = ["x-queue-type", "x-message-ttl", "x-expires", "x-max-length", "x-overflow", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy"] as const;

/** The dead-letter exchange of `q`, if it has one. */
function deadLetterExchange(q: Queue): string | undefined {
  const exchange = q.options.arguments?.["x-dead-letter-exchange"];
  return typeof exchange === "string" ? exchange : undefined;
}

/**
 * `m`'s headers with this dead-lettering recorded as RabbitMQ 3.10 does: `x-death` lists one
 * entry per queue and reason, the latest first, counting repeats; `x-first-death-*` name the first.
 */
function withDeath(m: StoredMessage, queue: string, reason: string): Record<string, unknown> {
  const headers = { ...m.properties.headers };
  const deaths = Array.isArray(headers["x-death"]) ? (headers["x-death"] as Record<string, unknown>[]) : [];
  const same = deaths.find((d) => d.queue === queue && d.reason === reason);
  const entry = {
    count: typeof same?.count === "number" ? same.count + 1 : 1,
    reason,
    queue,
    time: { "!": "timestamp", value: Math.floor(Date.now() / 1000) },
    exchange: m.exchange,
    "routing-keys": [m.routingKey],
  };
  headers["x-death"] = [entry, ...deaths.filter((d) => d !== same)];
  if (headers["x-first-death-queue"] === undefined) Object.assign(headers, { "x-first-death-exchange": m.exchange, "x-first-death-queue": queue, "x-first-death-reason": reason });
  return headers;
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

