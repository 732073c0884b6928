import type { MethodDescriptor, ErrorShape, ServiceDescriptor } from "../core/descriptor.js";
import type { Parent } from "../core/parent.js";

/** Per-call options; every field is optional and overrides the client's defaults for this call only. */
export interface CallOptions {
  /**
   * Time budget for the call in milliseconds, from the moment it is made.
   * @default the method's `timeoutMs` from the contract, else the client's `timeoutMs`
   */
  timeoutMs?: number;
  /** Aborting it rejects the call with `canceled` (`timeout` when aborted for a deadline, e.g. `AbortSignal.timeout()`) and ignores any late reply. */
  signal?: AbortSignal;
  /**
   * The request this call is made for — pass the handler's `ctx`: the call
   * gets the smaller of its own budget and the time left on the parent's
   * deadline (the request carries that deadline on, so the next server drops
   * it unrun once it has passed), and is canceled when the parent's signal
   * fires. A parent whose deadline has passed fails the call with `timeout`,
   * nothing sent. On a server with `asyncContext: true` calls made inside a
   * handler inherit its context without this; `null` opts a call out (work
   * that must outlive the request).
   * @default none (or the handler's context on a server with `asyncContext: true`)
   */
  parent?: Parent | null;
  /** Wait for a server within the deadline when the service's queue has no consumer, instead of failing with `no_server` at once. @default the client's `waitForServer` (false) */
  waitForServer?: boolean;
  /**
   * Extra AMQP headers sent with the request (e.g. a `traceparent`). Keys starting with `x-warren-` are reserved.
   * Inside a handler of a request or event that carried a `traceparent`, calls carry it (and its `tracestate`) unless set here.
   */
  headers?: Readonly<Record<string, string | number | boolean>>;
  /**
   * Names this request across its retries and re-sends; sent as the AMQP
   * `message_id`, read by handlers as `ctx.idempotencyKey`, and what a server's
   * `dedupe()` interceptor runs once per. Pass the same key when sending the same
   * request again (after a `timeout`, or from another process) and a new one for a
   * new request. A non-empty string of at most 255 bytes (UTF-8), else the call
   * fails with `invalid_request` before anything is sent.
   * @default the first attempt's correlation id: unique per call, the same on every automatic retry
   */
  idempotencyKey?: string;
}

/**
 * What a generated client stub calls. Contract for implementations:
 *
 * 1. `call` resolves with a response that passed the method's response schema,
 *    or rejects with an `RpcError` — never anything else, never both, never neither.
 * 2. It settles no later than the call's deadline (plus timer slack).
 * 3. A request that fails its schema is rejected with `invalid_request` before
 *    anything is sent.
 * 4. All per-call state is released when the call settles, whatever the outcome.
 * 5. The deadline runs from the moment `call` is invoked.
 */
export interface RpcTransport {
  /** Performs one request/reply round trip for `method`. */
  call<Req, Res, Err extends ErrorShape>(
    method: MethodDescriptor<Req, Res, Err>,
    request: Req,
    options?: CallOptions,
  ): Promise<Res>;
  /**
   * Optional: does the per-service work of later calls now (compiling the
   * validators), so that the first call of a method costs no more than the
   * next. Generated clients call it when they are created.
   */
  prepare?(service: ServiceDescriptor): void;
}
