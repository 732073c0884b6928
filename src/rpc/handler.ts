import type { DeclaredError, ErrorOf, ErrorShape, RequestOf, ResponseOf, ServiceDescriptor } from "../core/descriptor.js";

/** Arguments of {@link HandlerContext.error}: the data is required exactly when the contract declares a schema for it. */
export type ErrorDataArgs<Err extends ErrorShape, C extends Err["code"]> =
  Extract<Err, { code: C }>["data"] extends undefined ? [data?: undefined] : [data: Extract<Err, { code: C }>["data"]];

/**
 * What a handler knows about the call it serves.
 */
export interface HandlerContext<Err extends ErrorShape = never> {
  /** Service name. */
  readonly service: string;
  /** Method (wire) name. */
  readonly method: string;
  /** The request's correlation id. */
  readonly correlationId: string;
  /**
   * Names the request across redeliveries, the client's retries and a caller's
   * re-sends: the request's `message_id` (a warren client sends its call's
   * `idempotencyKey`, by default the first attempt's correlation id), else, from
   * a peer that sends none, the correlation id (then only redeliveries share it).
   * Deduplicate non-idempotent work on it, or let `dedupe()` do it.
   */
  readonly idempotencyKey: string;
  /** Where the reply goes (the request's `reply_to`: a direct reply-to address or the caller's callback queue). */
  readonly replyTo: string;
  /** The request's AMQP headers, as received. */
  readonly headers: Readonly<Record<string, unknown>>;
  /** Absolute deadline (ms since the epoch) the caller set, if any. */
  readonly deadline: number | undefined;
  /** Fires when the deadline passes or the server shuts down hard; pass it to I/O you start. */
  readonly signal: AbortSignal;
  /** True when the broker delivered this request before (a server died mid-call): guard non-idempotent work. */
  readonly redelivered: boolean;
  /**
   * Whether the caller still waits for the reply, as the broker knows it: its
   * reply channel (direct reply-to) or connection (callback queue) is still
   * open. Ask before expensive work: a caller that crashed or closed will never
   * read the result. Costs one round trip to the broker per question; resolves
   * `true` when the broker cannot tell (never abandons work on a guess), and
   * `false` for a request without `reply_to`. A caller that merely gave up
   * waiting (timeout, abort) is still there: the deadline covers that.
   */
  requesterAlive(): Promise<boolean>;
  /**
   * Builds a declared application error to `throw`; its data is validated
   * against the contract before it is sent.
   * @example throw ctx.error("division_by_zero", { dividend: 1 });
   */
  error<C extends Err["code"]>(code: C, ...data: ErrorDataArgs<Err, C>): DeclaredError<Extract<Err, { code: C }>>;
}

/** A handler for one method: may return the response or a promise of it. */
export type MethodHandler<M> = (
  request: RequestOf<M>,
  ctx: HandlerContext<ErrorOf<M>>,
) => ResponseOf<M> | Promise<ResponseOf<M>>;

/** Handlers for every method of a service, keyed by method name. */
export type ServiceHandlers<S extends ServiceDescriptor> = {
  [K in keyof S["methods"]]: MethodHandler<S["methods"][K]>;
};

