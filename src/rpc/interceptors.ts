/**
 * Interceptors: code that runs around every call a client makes and around
 * every handler a server runs — for authentication headers, tracing, metrics,
 * logging, caching. The shape is Connect's: an interceptor takes the next
 * step and returns a step that wraps it.
 *
 * Order: `interceptors: [a, b, c]` runs a, then b, then c, then the call (or
 * the handler); the outcome comes back through c, b, a. The first is the
 * outermost. The chain is composed once, when the client is created or the
 * service registered; a client or server without interceptors runs none of
 * this.
 */
import type { MethodDescriptor } from "../core/descriptor.js";
import type { HandlerContext } from "./handler.js";
import type { CallOptions } from "./transport.js";

/** One outgoing call, as client interceptors see it. */
export interface OutgoingCall {
  /** The method called (its `name` is the wire name; `service` its service). */
  readonly method: MethodDescriptor<any, any, any>;
  /** The request, before validation (the client validates it after the interceptors). */
  readonly request: unknown;
  /** The options the caller passed (its `headers` are copied into {@link headers}). */
  readonly options: CallOptions;
  /**
   * Headers the request is sent with: the caller's, and whatever interceptors
   * add. Keys starting with `x-warren-` are reserved for the protocol.
   */
  readonly headers: Record<string, string | number | boolean>;
  /** When the call was made (ms since the epoch): its deadline runs from here, interceptors included. */
  readonly startedAt: number;
  /** The correlation id of the latest attempt, set by the client when it is published; `undefined` before, and for a call answered without `next`. */
  correlationId?: string;
  /** The idempotency key the request is sent with (`message_id`, the same on every attempt), set by the client when it is first published. */
  idempotencyKey?: string;
}

/** The rest of a client's chain: resolves with the response or rejects with an `RpcError`. */
export type CallNext = (call: OutgoingCall) => Promise<unknown>;

/**
 * Wraps each call of a client. It may add headers (`call.headers.authorization = …`),
 * call `next` with the call or a changed copy, answer without calling `next`
 * (short-circuit: its value is returned to the caller as is), and observe or
 * replace the outcome. An interceptor that throws something other than an
 * `RpcError` fails the call with code `internal` and that error as `cause`.
 */
export type ClientInterceptor = (next: CallNext) => CallNext;

/** The rest of a server's chain for one request: the handler, or the next interceptor. */
export type HandleNext = (request: unknown, ctx: HandlerContext<any>) => unknown;

/**
 * Wraps each handler of a server. It sees the validated request and the
 * handler's context (service, method, headers, deadline, signal,
 * redelivered); it may refuse the request by throwing — a declared error
 * (`ctx.error(…)`), or an `RpcError` with code `unauthenticated`,
 * `permission_denied`, `invalid_request`, `unimplemented` or `idempotency_conflict`, which the caller
 * receives as such (anything else thrown becomes `internal`) — and observe or
 * replace the outcome. It may return a value or a promise.
 */
export type ServerInterceptor = (next: HandleNext) => HandleNext;

/** `interceptors` around `last`, the first outermost. */
export function compose<F>(interceptors: readonly ((next: F) => F)[], last: F): F {
  let chain = last;
  for (let i = interceptors.length - 1; i >= 0; i--) chain = interceptors[i]!(chain);
  return chain;
}
