/**
 * The client's calls: one {@link Call} per call across its attempts, and the
 * {@link CallTable} that finds them by correlation id and by deadline and
 * owns their state.
 */
import type { MethodDescriptor } from "../core/descriptor.js";
import { RpcError, describeTarget } from "../core/errors.js";
import type { MethodChecks } from "../core/validation.js";
import { Deadlines, type Expiring } from "./deadlines.js";
import type { CallOptions } from "./transport.js";

/** Where a call is; see {@link CallTable}. */
export type CallState = "new" | "pending" | "retrying" | "settled";

/** Service and method names, for messages and `RpcError` fields. */
export type Target = { service: string; method: string };

/** Service and method names for error messages and `RpcError` fields. */
export function targetOf(method: MethodDescriptor<any, any, any>): Target {
  return { service: method.service.name, method: method.name };
}

/** The `canceled` error of a call whose AbortSignal fired. */
export function canceled(target: Target, signal: AbortSignal): RpcError {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new RpcError("canceled", `${describeTarget(target)}: canceled by the caller${reason}`, { ...target, cause: signal.reason });
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
  deadlinePrev: Expiring | undefined = undefined;
  deadlineNext: Expiring | undefined = undefined;
  deadlineList: Expiring["deadlineList"] = undefined;

  constructor(
    readonly table: CallTable,
    readonly method: MethodDescriptor<any, any, any>,
    /** The method's compiled checks (looked up once per call). */
    readonly checks: MethodChecks,
    readonly queue: string,
    /** Of the current attempt. */
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
    this.fail(new RpcError("timeout", `${describeTarget(this.target)}: no reply within ${this.timeoutMs} ms (queue "${this.queue}")`, this.target));
  }

  /** The caller's AbortSignal fired. */
  handleEvent(): void {
    this.fail(canceled(this.target, this.options.signal!));
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
  readonly byId = new Map<string, Call>();
  readonly #deadlines = new Deadlines<Call>();

  /** `retry(call, err)` decides whether a failed call is tried again (true: it will be; the table parks it as `retrying`). */
  constructor(readonly retry: (call: Call, err: RpcError) => boolean) {}

  /** Makes `call` (new or retrying) pending under its current correlation id, due `dueInMs` from now. */
  add(call: Call, dueInMs: number): void {
    call.state = "pending";
    this.byId.set(call.correlationId, call);
    this.#deadlines.add(call, dueInMs);
    call.options.signal?.addEventListener("abort", call, { once: true });
  }

  /** Takes a pending `call` out of the table into `state`; false (and nothing changes) when it was not pending. */
  leave(call: Call, state: "retrying" | "settled"): boolean {
    if (call.state !== "pending") return false;
    call.state = state;
    this.byId.delete(call.correlationId);
    this.#deadlines.delete(call);
    call.options.signal?.removeEventListener("abort", call);
    return true;
  }

  /** Settles a call that waits for a retry (the client closed, or the caller aborted meanwhile); false when it was not waiting. */
  abandon(call: Call): boolean {
    if (call.state !== "retrying") return false;
    call.state = "settled";
    return true;
  }

  /** Fails every call with `make(call)`. */
  failAll(make: (call: Call) => RpcError): void {
    for (const call of [...this.byId.values()]) call.fail(make(call));
    this.#deadlines.clear();
  }
}

