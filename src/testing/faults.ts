/**
 * Fault rules for the in-memory broker: `kit.faults.on("Calculator.add").once().noReply()`.
 * Every fault is done by the broker to the messages (a request held back, returned unrouted,
 * delivered twice; a reply lost, held past the deadline, corrupted; the caller's connection
 * dropped; an event nacked), never inside warren's client or server: what a caller then sees
 * is decided by the same code as over RabbitMQ.
 */
import type { EventDescriptor, MethodDescriptor, RequestOf, ServiceDescriptor } from "../core/descriptor.js";
import { ERROR_TYPE, RESULT_TYPE, readDeadline } from "../core/protocol.js";
import { didYouMean } from "../core/suggest.js";
import type { InterceptedPublish, MemoryConnection } from "./memory-broker.js";

/**
 * What a fault rule applies to:
 * - `"Service.method"` or `"Service.event"` (wire name, e.g. `"Points.add_point"`, or the
 *   TypeScript name, `"Points.addPoint"`); `"Service"` for all its methods and events;
 * - a method, event or service descriptor (`Calculator.methods.add`, `Orders.events.orderPlaced`, `Calculator`).
 *
 * A rule that could never act is refused with a `TypeError` naming the rule (see {@link Faults.on}
 * for when a name is checked).
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
/** Actions only events have (they act on the publish). */
const EVENT_ONLY = new Set<Action["kind"]>(["nack"]);

/** What a message is: a request (`call`) or an event. */
type Kind = FaultMessage["kind"];

/** How long after the caller's deadline a {@link FaultRule.lateReply} reply arrives: the caller's timer has fired by then. */
export const LATE_REPLY_MARGIN_MS = 20;

/**
 * One fault: what it applies to ({@link Faults.on}), how often ({@link once}, {@link times},
 * {@link when}) and what it does (one action: {@link delay}, {@link noReply}, ...). Modifiers
 * and the action may be chained in any order. Until it has an action a rule does nothing (the
 * kit's `close()` then reports it).
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
    /** Throws when `action` could never act on the target (the rule is then removed). */
    private readonly check: (rule: FaultRule<any>, action: Action["kind"]) => void,
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

  /**
   * Calls and events: the broker holds the message `ms` before routing it (a call's handler
   * starts that much later, with that much less of its budget). An event's `publish()` resolves
   * only once the delay has passed (the broker confirms it then); under fake timers, advance them.
   */
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
    this.check(this, action.kind);
    this.#action = action;
    return this;
  }

  /** @internal The action's name (`noReply`, ...); undefined until one is given. */
  get actionName(): Action["kind"] | undefined { return this.#action?.kind; }

  /** @internal The action to take on a message, counting the hit; undefined when the rule does not apply to it. */
  take(kind: "call" | "event", services: readonly ServiceDescriptor[], name: string, content: Buffer, headers: Record<string, unknown>): Action | undefined {
    const action = this.#action;
    if (!this.active || action === undefined) return undefined;
    if ((kind === "event" ? CALL_ONLY : EVENT_ONLY).has(action.kind)) return undefined;
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
 * has learned: called through its clients, served by its servers, published or subscribed on its
 * buses, or named by descriptor in {@link on}. A rule that could never act is refused (see {@link on}).
 */
export class Faults {
  readonly #rules: FaultRule<any>[] = [];
  /** Services by request queue, by event exchange and by name (several descriptors where versions of one contract meet). */
  readonly #queues = new Map<string, ServiceDescriptor[]>();
  readonly #exchanges = new Map<string, ServiceDescriptor[]>();
  readonly #services = new Map<string, ServiceDescriptor[]>();
  /** Rules whose string target names a service the kit had not learned: checked when it learns it, else reported by {@link unapplied}. */
  readonly #unchecked = new Set<FaultRule<any>>();
  readonly #replies = new Map<string, ReplyFault>();
  readonly #timers = new Set<NodeJS.Timeout>();

  /** @internal created by the test kit, which installs {@link hook} on its broker. */
  constructor() {}

  /**
   * A new rule for `target`; give it an action. Examples:
   * `faults.on("Calculator.add").delay(200)`, `faults.on(Calculator.methods.divide).once().noReply()`,
   * `faults.on("Points.add_point").when((req) => req.x === 0).duplicate()`, `faults.on("Orders.order_placed").nack()`.
   *
   * A rule that could never act is refused with a `TypeError` that names it and says why (with a
   * "did you mean" for a misspelt name): a method or event its service does not have, a call-only
   * action (`noReply`, `lateReply`, `malformedReply`, `connectionLost`) on an event or on a service
   * without methods, `nack` on a method or on a service without events. When this is known:
   * 1. A descriptor target, or a name whose service the kit has learned: at once, here and when
   *    the action is given.
   * 2. A name whose service the kit has not learned yet (no client has called it, no server
   *    serves it, no bus has published or subscribed to it): when the kit learns it, before any
   *    of its messages; the call, `register`, `publish` or `subscribe` that taught it rejects
   *    with the error, and the rule is removed.
   * 3. A name of a service the kit never learns (e.g. `"Calculater.add"`), and a rule given no
   *    action: the kit's `close()` throws, after closing everything.
   * @throws TypeError when a string target is not `Service` or `Service.name`, or the rule could never act (1).
   */
  on<M extends MethodDescriptor<any, any, any>>(target: M): FaultRule<RequestOf<M>>;
  /** A rule for one event; `when` gets its payload. */
  on<P>(target: EventDescriptor<P>): FaultRule<P>;
  /** A rule for a name (`"Service"`, `"Service.method"`, `"Service.event"`) or a service descriptor. */
  on(target: FaultTarget): FaultRule<any>;
  on(target: FaultTarget): FaultRule<any> {
    const matches = matcher(target);
    if (typeof target !== "string") this.learnService("service" in target ? target.service : target);
    const reach = reachOf(target, this.#services);
    if (typeof reach === "string") throw new TypeError(ruleError(target, reach));
    const rule = new FaultRule(target, matches, (r) => this.#forget(r), (r, action) => {
      const problem = problemOf(r.target, action, this.#services);
      if (problem === undefined) return;
      r.remove();
      throw new TypeError(ruleError(r.target, problem));
    });
    if (reach === undefined) this.#unchecked.add(rule);
    this.#rules.push(rule);
    return rule;
  }

  /** The rules added and not removed, in the order they are tried. */
  get rules(): readonly FaultRule<any>[] { return [...this.#rules]; }

  /** Removes every rule and forgets faulted replies; messages already held (delayed, late) are dropped. */
  clear(): void {
    this.#rules.length = 0;
    this.#unchecked.clear();
    this.#replies.clear();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Messages held by a fault (delayed requests or events, late replies) that have not gone on yet. */
  get holding(): number { return this.#timers.size; }

  /**
   * @internal Teaches the rules which service a request queue belongs to.
   * @throws TypeError for rules naming the service, made before the kit knew it, that could never act (they are removed).
   */
  learnQueue(queue: string, service: ServiceDescriptor): void {
    add(this.#queues, queue, service);
    this.#learn(service);
  }

  /**
   * @internal Teaches the rules which service an event exchange belongs to.
   * @throws TypeError as {@link learnQueue}.
   */
  learnExchange(exchange: string, service: ServiceDescriptor): void {
    add(this.#exchanges, exchange, service);
    this.#learn(service);
  }

  /** @internal A service named by descriptor: its default queue and exchange. */
  learnService(service: ServiceDescriptor): void {
    this.learnQueue(service.queue, service);
    if (Object.keys(service.events).length > 0) this.learnExchange(service.exchange.name, service);
  }

  /**
   * @internal For the kit's `close()`: what is wrong with the rules still in place, one line
   * each: a name of a service the kit never learned, or no action given. Empty when all is well.
   */
  unapplied(): string[] {
    const problems: string[] = [];
    for (const rule of this.#rules) {
      if (this.#unchecked.has(rule)) {
        const name = serviceNameOf(rule.target);
        problems.push(ruleError(rule.target, `the kit never learned a service "${name}" (no client called it, no server served it, no bus published or subscribed to it)${didYouMean(name, this.#services.keys())}`));
      } else if (rule.actionName === undefined) {
        problems.push(ruleError(rule.target, "it was given no action (delay(), noReply(), noServer(), duplicate(), nack(), ...)"));
      }
    }
    return problems;
  }

  /** A service is known: the rules made for its name before then are checked now. */
  #learn(service: ServiceDescriptor): void {
    const known = this.#services.get(service.name);
    if (known?.includes(service)) return;
    add(this.#services, service.name, service);
    const problems: string[] = [];
    for (const rule of this.#unchecked) {
      if (serviceNameOf(rule.target) !== service.name) continue;
      this.#unchecked.delete(rule);
      const problem = problemOf(rule.target, rule.actionName, this.#services);
      if (problem === undefined) continue;
      rule.remove();
      problems.push(ruleError(rule.target, problem));
    }
    if (problems.length > 0) throw new TypeError(problems.join("\n"));
  }

  #forget(rule: FaultRule<any>): void {
    const i = this.#rules.indexOf(rule);
    if (i >= 0) this.#rules.splice(i, 1);
    this.#unchecked.delete(rule);
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
  const [serviceName, member] = parseName(target);
  return (service, name) => {
    if (service.name !== serviceName) return false;
    if (member === undefined) return true;
    return name === member || service.methods[member]?.name === name || service.events[member]?.name === name;
  };
}

/** `"Service"` or `"Service.member"`, split. */
function parseName(target: string): [service: string, member: string | undefined] {
  const m = /^([^.]+)(?:\.([^.]+))?$/.exec(target);
  if (m === null) throw new TypeError(`warren/testing: fault target ${JSON.stringify(target)} must be "Service" or "Service.method" (or "Service.event")`);
  return [m[1]!, m[2]];
}

/** The name of the service a target means. */
function serviceNameOf(target: FaultTarget): string {
  if (typeof target === "string") return parseName(target)[0];
  return "service" in target ? target.service.name : target.name;
}

/** How a rule names its target in errors: `Service.name` or `Service`. */
function labelOf(target: FaultTarget): string {
  if (typeof target === "string") return target;
  return "service" in target ? `${target.service.name}.${target.name}` : target.name;
}

/** The error text for a rule that could never act. */
function ruleError(target: FaultTarget, problem: string): string {
  return `warren/testing: fault rule ${JSON.stringify(labelOf(target))}: ${problem}`;
}

/** Which messages a target can match: calls, events; `whole` for a whole service. */
interface Reach {
  readonly calls: boolean;
  readonly events: boolean;
  readonly whole: boolean;
}

/**
 * What `target` can match among the services the kit knows (by name); a string saying why it
 * can match nothing; undefined when it names a service the kit does not know yet.
 */
function reachOf(target: FaultTarget, services: ReadonlyMap<string, readonly ServiceDescriptor[]>): Reach | string | undefined {
  if (typeof target !== "string") {
    if (!("service" in target)) return wholeReach(target.name, [target]);
    const call = "request" in target;
    return { calls: call, events: !call, whole: false };
  }
  const [serviceName, member] = parseName(target);
  const known = services.get(serviceName);
  if (known === undefined) return undefined;
  if (member === undefined) return wholeReach(serviceName, known);
  const calls = known.some((s) => hasMember(s.methods, member));
  const events = known.some((s) => hasMember(s.events, member));
  if (calls || events) return { calls, events, whole: false };
  const names = known.flatMap((s) => [...Object.entries(s.methods), ...Object.entries(s.events)].flatMap(([key, d]) => [key, d.name]));
  return `${serviceName} has no method or event "${member}"${didYouMean(member, names)}`;
}

/** What a whole service can match: calls if it has methods, events if it has events; a reason when it has neither. */
function wholeReach(name: string, services: readonly ServiceDescriptor[]): Reach | string {
  const calls = services.some((s) => Object.keys(s.methods).length > 0);
  const events = services.some((s) => Object.keys(s.events).length > 0);
  return calls || events ? { calls, events, whole: true } : `${name} has no methods and no events`;
}

/** Whether `member` is the TypeScript key or the wire name of one of `members`. */
function hasMember(members: Readonly<Record<string, { readonly name: string }>>, member: string): boolean {
  return Object.hasOwn(members, member) || Object.values(members).some((d) => d.name === member);
}

/** Why a rule for `target` doing `action` could never act; undefined when it can, or when its service is not known yet. */
function problemOf(target: FaultTarget, action: Action["kind"] | undefined, services: ReadonlyMap<string, readonly ServiceDescriptor[]>): string | undefined {
  const reach = reachOf(target, services);
  if (reach === undefined || typeof reach === "string") return reach;
  if (action === undefined) return undefined;
  const needs: Kind | undefined = CALL_ONLY.has(action) ? "call" : EVENT_ONLY.has(action) ? "event" : undefined;
  if (needs === undefined || (needs === "call" ? reach.calls : reach.events)) return undefined;
  const label = labelOf(target);
  const lacks = reach.whole ? `${label} has no ${needs === "call" ? "methods" : "events"}` : `${label} is ${needs === "call" ? "an event" : "a method"}`;
  return `${action}() acts on ${needs === "call" ? "calls" : "events"} only, and ${lacks}: the rule could never act`;
}
