/**
 * Deadline propagation: a call or publish made on behalf of an incoming
 * request (its `parent`, usually the handler's context) gets the smaller of
 * its own budget and the time left on the parent's deadline, and is canceled
 * when the parent's signal fires. So A → B → C, where A's caller gives up at
 * A's deadline, leaves nobody waiting past it: B's call to C carries A's
 * deadline (C's server drops the request unrun once it has passed) and is
 * settled by then.
 */
import { RpcError, describeTarget } from "./errors.js";

/** Who is called or published to, for error messages and `RpcError` fields. */
type Target = { readonly service: string; readonly method?: string; readonly event?: string };

/**
 * What a call or publish inherits from the request it is made for: a
 * {@link HandlerContext} (or an event handler's context) fits, as does any
 * object with an absolute `deadline` and/or a `signal`.
 */
export interface Parent {
  /** Absolute deadline (ms since the epoch); undefined: none. */
  readonly deadline?: number | undefined;
  /** Fires when the parent's work is abandoned. */
  readonly signal?: AbortSignal | undefined;
}

/** A call's budget and signal once its parent is taken into account. */
export interface Inherited {
  /** The call's budget in ms: its own, or less when the parent's deadline comes first. */
  readonly timeoutMs: number;
  /** The caller's signal, the parent's, or one that fires when either does; undefined: neither. */
  readonly signal: AbortSignal | undefined;
}

/**
 * The budget and signal of a call with its own `timeoutMs` and `signal`, made
 * at `now` for `parent`. Throws the `RpcError` the caller should see when the
 * parent's deadline has passed (`timeout`) or its signal has fired
 * (`canceled`, or `timeout` when it fired for its deadline), so that nothing
 * is sent.
 */
export function inherit(parent: Parent, target: Target, timeoutMs: number, signal: AbortSignal | undefined, now: number): Inherited {
  const deadline = parent.deadline;
  if (typeof deadline === "number") {
    const left = deadline - now;
    if (left <= 0) throw new RpcError("timeout", `${describeTarget(target)}: the deadline of the request being handled passed ${-left} ms ago; nothing sent`, target);
    if (left < timeoutMs) timeoutMs = left;
  }
  const theirs = parent.signal;
  if (theirs === undefined || theirs === signal) return { timeoutMs, signal };
  if (theirs.aborted) throw abandoned(target, theirs);
  if (signal === undefined) return { timeoutMs, signal: theirs };
  return { timeoutMs, signal: AbortSignal.any([signal, theirs]) };
}

/**
 * The error of a call whose signal fired: `timeout` when it fired for a
 * deadline (an `RpcError` with code `timeout` as its reason, as a handler
 * context's signal has, or a `TimeoutError` as from `AbortSignal.timeout()`),
 * else `canceled`.
 */
export function abandoned(target: Target, signal: AbortSignal): RpcError {
  const reason: unknown = signal.reason;
  const detail = reason instanceof Error ? `: ${reason.message}` : "";
  if ((reason instanceof RpcError && reason.code === "timeout") || (reason instanceof Error && reason.name === "TimeoutError")) {
    return new RpcError("timeout", `${describeTarget(target)}: the deadline passed${detail}`, { ...target, cause: reason });
  }
  return new RpcError("canceled", `${describeTarget(target)}: canceled by the caller${detail}`, { ...target, cause: reason });
}
