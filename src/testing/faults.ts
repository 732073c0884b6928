/**
 * Fault rules for the in-memory broker: `kit.faults.on("Calculator.add").once().noReply()`.
 * Every fault is done by the broker to the messages (a request held back, returned unrouted,
 * delivered twice; a reply lost, held past the deadline, corrupted; the caller's connection
 * dropped; an event nacked), never inside warren's client or server: what a caller then sees
 * is decided by the same code as over RabbitMQ.
 */
import type { EventDescriptor, MethodDescriptor, RequestOf, ServiceDescriptor } from "../core/descriptor.js";
import { ERROR_TYPE, RESULT_TYPE, readDeadline } from "../core/protocol.js";
import type { InterceptedPublish, MemoryConnection } from "./memory-broker.js";

/**
 * What a fault rule applies to:
 * - `"Service.method"` or `"Service.event"` (wire name, e.g. `"Points.add_point"`, or the
 *   TypeScript name, `"Points.addPoint"`); `"Service"` for all its methods and events;
 * - a method, event or service descriptor (`Calculator.methods.add`, `Orders.events.orderPlaced`, `Calculator`).
 */
export type FaultTarget = string | MethodDescriptor<any, any, any> | EventDescriptor<any> | ServiceDescriptor;

/** What a {@link FaultRule.when} predicate sees of a message besides its body. */
export interface FaultMessage {
  /** `call` for a request, `event` for an event. */
  readonly kind: "call" | "event";
  /** Service name. */
  readonly service: string;
  /** Method or event wire name. */
  readonly name: string;
  /** The AMQP headers it carries (e.g. a call's `headers` option). */
  readonly headers: Readonly<Record<string, unknown>>;
}

type Action =
  | { kind: "delay"; ms: number }
  | { kind: "noReply" }
  | { kind: "lateReply" }
  | { kind: "malformedReply"; content: Buffer }
  | { kind: "noServer" }
  | { kind: "connectionLost" }
  | { kind: "duplicate" }
  | { kind: "nack" };

/** Actions only calls have (they act on the reply, or on the caller's connection). */
const CALL_ONLY = new Set<Action["kind"]>(["noReply", "lateReply", "malformedReply", "connectionLost"]);

/** How long after the caller's deadline a {@link FaultRule.lateReply} reply arrives: the caller's timer has fired by then. */
export const LATE_REPLY_MARGIN_MS = 20;

/**
 * One fault: what it applies to ({@link Faults.on}), how often ({@link once}, {@link times},
 * {@link when}) and what it does (one action: {@link delay}, {@link noReply}, ...). Modifiers
 * and the action may be chained in any order. Until it has an action a rule does nothing.
 * A rule applies to every matching message until it is used up or {@link remove}d.
 */
export class FaultRule<Body = any> {
  #action: Action | undefined;
  #left = Infinity;
  #hits = 0;
  #when: ((body: Body, message: FaultMessage) => boolean) | undefined;
  #removed = false;

  /** @internal created by {@link Faults.on}. */
  constructor(
    /** The target as given to {@link Faults.on}, for messages. */
    readonly target: FaultTarget,
    private readonly matches: (service: ServiceDescriptor, name: string) => boolean,
    private readonly onRemove: (rule: FaultRule<any>) => void,
  ) {}

  /** How many messages this rule has acted on so far. */
  get hits(): number { return this.#hits; }

  /** True while it can still act: it has an action, is not used up and not removed. */
  get active(): boolean { return this.#action !== undefined && !this.#removed && this.#left > 0; }

  /** Acts on the next matching message only. */
  once(): this { return this.times(1); }

  /** Acts on the next `n` matching messages only. */
  times(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`warren/testing: times(n) needs a positive integer, got ${n}`);
    this.#left = n;
    return this;
  }

  /** Acts only on messages for which `predicate` holds: `body` is the decoded request or event payload. Use it to pick one call. */
  when(predicate: (body: Body, message: FaultMessage) => boolean): this {
    this.#when = predicate;
    return this;
  }

  /** Calls and events: the broker holds the message `ms` before routing it (a call's handler starts that much later, with that much less of its budget). */
  delay(ms: number): this {
    if (!(ms >= 0)) throw new RangeError(`warren/testing: delay(ms) needs ms >= 0, got ${ms}`);
    return this.#set({ kind: "delay", ms });
  }

  /** Calls: the handler runs, its reply is lost. The caller gets `timeout`. */
  noReply(): this { return this.#set({ kind: "noReply" }); }

  /** Calls: the handler runs, its reply arrives {@link LATE_REPLY_MARGIN_MS} after the caller's deadline. The caller gets `timeout` and ignores the reply. */
  lateReply(): this { return this.#set({ kind: "lateReply" }); }

  /** Calls: the handler runs, its reply's body is replaced by `body` (default: text that is not JSON). The caller gets `invalid_response`. */
  malformedReply(body: string | Buffer = "{not json"): this {
    return this.#set({ kind: "malformedReply", content: Buffer.isBuffer(body) ? body : Buffer.from(body) });
  }

  /** Calls: the request comes back unrouted, as when no queue exists: the caller gets `no_server`, nothing runs. Events: routed nowhere (confirmed, as when no queue is bound). */
  noServer(): this { return this.#set({ kind: "noServer" }); }

  /**
   * Calls: the handler runs; then, instead of the reply, the caller's connection is lost (and
   * comes back at once). The caller gets `connection_lost`, or, for a method the contract
   * marks `idempotent`, the call is retried on the new connection (add {@link once} to let the
   * retry through).
   */
  connectionLost(): this { return this.#set({ kind: "connectionLost" }); }

  /** Calls and events: the broker delivers the message twice, the second time `redelivered`: the handler runs twice (a call's caller keeps the first reply). */
  duplicate(): this { return this.#set({ kind: "duplicate" }); }

  /** Events: the broker refuses the publish (`basic.nack`). The bus sends it once more on a fresh channel; a publish nacked both times rejects with `rejected`. */
  nack(): this { return this.#set({ kind: "nack" }); }

  /** Stops the rule; messages it already holds (delayed, late) still go on. */
  remove(): void {
    this.#removed = true;
    this.onRemove(this);
  }

  #set(action: Action): this {
    if (this.#action !== undefined) throw new TypeError(`warren/testing: a fault rule does one thing (this one: ${this.#action.kind}); add another rule with faults.on(...)`);
    this.#action = action;
    return this;
  }

  /** @internal The action to take on a message, counting the hit; undefined when the rule does not apply to it. */
  take(kind: "call" | "event", services: readonly ServiceDescriptor[], name: string, content: Buffer, headers: Record<string, unknown>): Action | undefined {
    const action = this.#action;
    if (!this.active || action === undefined) return undefined;
    if (kind === "event" ? CALL_ONLY.has(action.kind) : action.kind === "nack") return undefined;
    const service = services.find((s) => this.matches(s, name));
    if (service === undefined) return undefined;
    if (this.#when !== undefined) {
      let body: unknown;
      try {
        body = JSON.parse(content.toString("utf8"));
      } catch {
        return undefined;
      }
      if (!this.#when(body as Body, { kind, service: service.name, name, headers })) return undefined;
    }
    this.#left--;
    this.#hits++;
    return action;
  }
}

/** What becomes of the reply to a faulted request. */
interface ReplyFault {
  readonly action: Action;
  /** The caller's deadline (ms since the epoch), from the request. */
  readonly deadline: number | undefined;
  /** The caller's connection. */
  readonly caller: MemoryConnection;
}

/**
 * The fault rules of one test kit (`kit.faults`). The first active rule that matches a message
 * acts on it; the others do not see it. Rules match the calls and events of services the kit
 * has seen: called through its clients, served by its servers, published or subscribed on its
 * buses, or named by descriptor in {@link on}.
 */
export class Faults {
  readonly #rules: FaultRule<any>[] = [];
  /** Services by request queue and by event exchange. */
  readonly #queues = new Map<string, ServiceDescriptor[]>();
  readonly #exchanges = new Map<string, ServiceDescriptor[]>();
  readonly #replies = new Map<string, ReplyFault>();
  readonly #timers = new Set<NodeJS.Timeout>();

  /** @internal created by the test kit, which installs {@link hook} on its broker. */
  constructor() {}

  /**
   * A new rule for `target`; give it an action. Examples:
   * `faults.on("Calculator.add").delay(200)`, `faults.on(Calculator.methods.divide).once().noReply()`,
   * `faults.on("Points.add_point").when((req) => req.x === 0).duplicate()`, `faults.on("Orders.order_placed").nack()`.
   * @throws TypeError when a string target is not `Service` or `Service.name`.
   */
  on<M extends MethodDescriptor<any, any, any>>(target: M): FaultRule<RequestOf<M>>;
  /** A rule for one event; `when` gets its payload. */
  on<P>(target: EventDescriptor<P>): FaultRule<P>;
  /** A rule for a name (`"Service"`, `"Service.method"`, `"Service.event"`) or a service descriptor. */
  on(target: FaultTarget): FaultRule<any>;
  on(target: FaultTarget): FaultRule<any> {
    const rule = new FaultRule(target, matcher(target), (r) => {
      const i = this.#rules.indexOf(r);
      if (i >= 0) this.#rules.splice(i, 1);
    });
    if (typeof target !== "string") this.learnService("service" in target ? target.service : target);
    this.#rules.push(rule);
    return rule;
  }

  /** The rules added and not removed, in the order they are tried. */
  get rules(): readonly FaultRule<any>[] { return [...this.#rules]; }

  /** Removes every rule and forgets faulted replies; messages already held (delayed, late) are dropped. */
  clear(): void {
    this.#rules.length = 0;
    this.#replies.clear();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Messages held by a fault (delayed requests or events, late replies) that have not gone on yet. */
  get holding(): number { return this.#timers.size; }

  /** @internal Teaches the rules which service a request queue belongs to. */
  learnQueue(queue: string, service: ServiceDescriptor): void { add(this.#queues, queue, service); }

  /** @internal Teaches the rules which service an event exchange belongs to. */
  learnExchange(exchange: string, service: ServiceDescriptor): void { add(this.#exchanges, exchange, service); }

  /** @internal A service named by descriptor: its default queue and exchange. */
  learnService(service: ServiceDescriptor): void {
    this.learnQueue(service.queue, service);
    if (Object.keys(service.events).length > 0) this.learnExchange(service.exchange.name, service);
  }

  /** @internal The broker's publish hook (see `MemoryBroker.intercept`). */
  hook(p: InterceptedPublish): void {
    const props = p.properties;
    const id = props.correlationId;
    if (p.exchange === "" && id !== undefined && (props.type === RESULT_TYPE || props.type === ERROR_TYPE)) {
      const fault = this.#replies.get(id);
      if (fault !== undefined) {
        this.#replies.delete(id);
        return this.#reply(p, fault);
      }
    }
    if (this.#rules.length === 0) return p.route();
    const call = p.exchange === "" && props.replyTo !== undefined ? this.#queues.get(p.routingKey) : undefined;
    const services = call ?? (p.exchange !== "" ? this.#exchanges.get(p.exchange) : undefined);
    const name = props.type;
    if (services === undefined || name === undefined) return p.route();
    const kind = call !== undefined ? "call" : "event";
    const headers = props.headers ?? {};
    let action: Action | undefined;
    for (const rule of this.#rules) if ((action = rule.take(kind, services, name, p.content, headers)) !== undefined) break;
    if (action === undefined) return p.route();
    switch (action.kind) {
      case "delay":
        return this.#later(action.ms, () => p.route());
      case "noServer":
        return p.returnUnrouted();
      case "nack":
        return p.nack();
      case "duplicate":
        p.route();
        return p.route({ again: true, redelivered: true });
      default: {
        const deadline = readDeadline(headers);
        if (id !== undefined) this.#replies.set(id, { action, deadline: typeof deadline === "number" ? deadline : undefined, caller: p.connection });
        return p.route();
      }
    }
  }

  #reply(p: InterceptedPublish, fault: ReplyFault): void {
    switch (fault.action.kind) {
      case "noReply":
        return p.drop();
      case "lateReply":
        return this.#later(Math.max(0, (fault.deadline ?? Date.now()) - Date.now()) + LATE_REPLY_MARGIN_MS, () => p.route());
      case "malformedReply":
        return p.route({ content: fault.action.content });
      case "connectionLost": {
        p.drop();
        const caller = fault.caller;
        caller.drop();
        // Back at once, as after a quick reconnection; the calls in flight have failed by then.
        process.nextTick(() => caller.reconnect());
        return;
      }
      default:
        return p.route();
    }
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }
}

function add(map: Map<string, ServiceDescriptor[]>, key: string, service: ServiceDescriptor): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [service]);
  else if (!list.includes(service)) list.push(service);
}

/** Whether a message of `service` named `name` (a wire name) is one `target` means. */
function matcher(target: FaultTarget): (service: ServiceDescriptor, name: string) => boolean {
  if (typeof target !== "string") {
    if ("service" in target) return (service, name) => service === target.service && name === target.name;
    return (service) => service === target;
  }
  const m = /^([^.]+)(?:\.([^.]+))?$/.exec(target);
  if (m === null) throw new TypeError(`warren/testing: fault target ${JSON.stringify(target)} must be "Service" or "Service.method" (or "Service.event")`);
  const [, serviceName, member] = m;
  return (service, name) => {
    if (service.name !== serviceName) return false;
    if (member === undefined) return true;
    return name === member || service.methods[member]?.name === name || service.events[member]?.name === name;
  };
}
