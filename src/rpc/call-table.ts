/**
 * The client's calls: one {@link Call} per call across its attempts, and the
 * {@link CallTable} that finds them by correlation id and by deadline and
 * owns their state.
 */
import { randomUUID } from "node:crypto";
import type { MethodDescriptor } from "../core/descriptor.js";
import { SlotIndex } from "../core/slot-index.js";
import { RpcError, describeTarget } from "../core/errors.js";
import { abandoned } from "../core/parent.js";
import type { MethodChecks } from "../core/validation.js";
import { Deadlines, type Expiring } from "./deadlines.js";
import type { CallOptions } from "./transport.js";
import type { OutgoingCall } from "./interceptors.js";

/** Where pending calls were published (a reply channel): the table counts its unsettled calls. */
export interface Route {
  /** Calls published on this route that are still pending; kept by the table. */
  inFlight: number;
  /** Called by the table when `inFlight` drops to 0. */
  idle(): void;
}

/** Where a call is; see {@link CallTable}. */
export type CallState = "new" | "pending" | "retrying" | "settled";

/** Service and method names, for messages and `RpcError` fields. */
export type Target = { service: string; method: string };

/** Service and method names for error messages and `RpcError` fields. */
export function targetOf(method: MethodDescriptor<any, any, any>): Target {
  return { service: method.service.name, method: method.name };
}

/** The error of a call whose AbortSignal fired: `canceled`, or `timeout` when it fired for a deadline (see {@link abandoned}). */
export function canceled(target: Target, signal: AbortSignal): RpcError {
  return abandoned(target, signal);
}

/**
 * One call, from publish to its outcome, across retries (each attempt with a
 * new correlation id, resolving the same promise). A plain object with methods
 * rather than closures: it is the AbortSignal listener (`handleEvent`) and the
 * deadline entry (`expire`) itself.
 */
export class Call implements Expiring {
  resolve!: (value: unknown) => void;
  reject!: (err: RpcError) => void;
  /** Where the call is; only the {@link CallTable} changes it. */
  state: CallState = "new";
  attempt = 1;
  /** Where the current attempt was published; set by {@link CallTable.published}. */
  route: Route | undefined = undefined;
  /** The counter in the current correlation id: places the call in the table's index. */
  seq = 0;
  /** Sent as `message_id` on every attempt: the caller's `idempotencyKey`, else the first attempt's correlation id; set by the client. */
  idempotencyKey = "";
  /** What the client's interceptors saw of this call, told the correlation id of each attempt when it is published; `undefined` without interceptors. */
  outgoing: OutgoingCall | undefined = undefined;
  deadlinePrev: Expiring | undefined = undefined;
  deadlineNext: Expiring | undefined = undefined;
  deadlineList: Expiring["deadlineList"] = undefined;

  constructor(
    readonly table: CallTable,
    readonly method: MethodDescriptor<any, any, any>,
    /** The method's compiled checks (looked up once per call). */
    readonly checks: MethodChecks,
    readonly queue: string,
    /** Of the current attempt; set by {@link CallTable.assignId}. */
    public correlationId: string,
    /** The encoded request; dropped once published unless the method is idempotent (a retry sends it again). */
    public body: Buffer | undefined,
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly options: CallOptions,
  ) {}

  get target(): Target {
    return targetOf(this.method);
  }

  /** The reply arrived and passed its checks. */
  succeed(value: unknown): void {
    if (this.table.leave(this, "settled")) this.resolve(value);
  }

  /** The attempt failed: the call is tried again if the table's retry policy says so, else it rejects. */
  fail(err: RpcError): void {
    if (this.state !== "pending") return;
    if (this.table.retry(this, err)) this.table.leave(this, "retrying");
    else if (this.table.leave(this, "settled")) this.reject(err);
  }

  /** Deadline passed. */
  expire(): void {
    if (this.state === "pending") this.table.expired(this);
    this.fail(new RpcError("timeout", `${describeTarget(this.target)}: no reply within ${this.timeoutMs} ms (queue "${this.queue}")`, this.target));
  }

  /** The caller's AbortSignal fired: the call is canceled, pending or waiting for a retry. */
  handleEvent(): void {
    const err = canceled(this.target, this.options.signal!);
    if (this.table.abandon(this)) this.reject(err);
    else this.fail(err);
  }
}

/**
 * The calls of one client and their states: `pending` (published or about to
 * be, in the table by correlation id and by deadline, listening to its
 * AbortSignal), `retrying` (out of the table, waiting to be tried again) and
 * `settled` (resolved or rejected, for good). Only the table moves a call
 * between states.
 */
export class CallTable {
  /** Pending calls by their id's counter (see {@link SlotIndex}: no Map churn per call). */
  readonly #byId = new SlotIndex<Call>((call) => call.seq);
  readonly #deadlines = new Deadlines<Call>();
  /** Correlation ids are `<prefix><counter in base 36>`: the prefix is a UUID per client, so ids are unique across clients. */
  readonly #prefix: string;
  #next = 0;
  /** Calls waiting for a retry (out of the index and the deadlines). */
  readonly #retrying = new Set<Call>();

  /**
   * @param retry decides whether a failed call is tried again (true: it will be; the table parks it as `retrying`).
   * @param expired is told of each pending call whose deadline passed, before it fails.
   */
  constructor(
    readonly retry: (call: Call, err: RpcError) => boolean,
    readonly expired: (call: Call) => void = () => {},
    prefix = `${randomUUID()}.`,
  ) {
    this.#prefix = prefix;
  }

  /** Number of pending calls. */
  get size(): number {
    return this.#byId.size;
  }

  /** Gives `call` (new, or about to be retried) a fresh correlation id. */
  assignId(call: Call): void {
    call.seq = ++this.#next;
    call.correlationId = this.#prefix + call.seq.toString(36);
  }

  /** The pending call with correlation id `id`, if any. */
  find(id: string): Call | undefined {
    // The counter read off the id's base-36 digits in place (no slice, no parseInt); the index then compares the whole id.
    let seq = 0;
    for (let i = this.#prefix.length; i < id.length; i++) {
      const c = id.charCodeAt(i);
      seq = seq * 36 + (c <= 57 ? c - 48 : c - 87);
    }
    const call = this.#byId.get(seq);
    return call?.correlationId === id ? call : undefined;
  }

  /** Makes `call` (new or retrying) pending under its current correlation id, due `dueInMs` from now. */
  add(call: Call, dueInMs: number): void {
    call.state = "pending";
    this.#retrying.delete(call);
    this.#byId.add(call);
    this.#deadlines.add(call, dueInMs);
    call.options.signal?.addEventListener("abort", call, { once: true });
  }

  /** A pending `call` was published on `route`. */
  published(call: Call, route: Route): void {
    call.route = route;
    route.inFlight++;
  }

  /**
   * Takes a pending `call` out of the table into `state`; false (and nothing
   * changes) when it was not pending. A call waiting for a retry keeps its
   * abort listener, so that its caller can still cancel it.
   */
  leave(call: Call, state: "retrying" | "settled"): boolean {
    if (call.state !== "pending") return false;
    call.state = state;
    this.#byId.delete(call);
    this.#deadlines.delete(call);
    if (state === "retrying") this.#retrying.add(call);
    else call.options.signal?.removeEventListener("abort", call);
    const route = call.route;
    if (route !== undefined) {
      call.route = undefined;
      if (--route.inFlight === 0) route.idle();
    }
    return true;
  }

  /** Settles a call that waits for a retry (the client closed, or the caller aborted meanwhile); false when it was not waiting. */
  abandon(call: Call): boolean {
    if (call.state !== "retrying") return false;
    call.state = "settled";
    this.#retrying.delete(call);
    call.options.signal?.removeEventListener("abort", call);
    return true;
  }

  /** Fails every pending call with `make(call)`, and settles every call waiting for a retry with it. */
  failAll(make: (call: Call) => RpcError): void {
    for (const call of this.#byId.values()) call.fail(make(call));
    for (const call of [...this.#retrying]) if (this.abandon(call)) call.reject(make(call));
  }

  /** Fails every pending call published on `route` with `make(call)`. */
  failRoute(route: Route, make: (call: Call) => RpcError): void {
    if (route.inFlight === 0) return;
    for (const call of this.#byId.values()) if (call.route === route) call.fail(make(call));
  }
}
