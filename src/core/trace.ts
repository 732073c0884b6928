/**
 * W3C trace context propagation, without a tracer: while a handler runs for a
 * request or event that carries a `traceparent` (and `tracestate`), the calls
 * it makes and the events it publishes carry the same headers, so a tracing
 * backend can join the hops. Nothing is generated: a chain that starts
 * without a `traceparent` stays without one.
 *
 * The context lives in an AsyncLocalStorage that is entered only for traced
 * requests and events: a process that never receives a `traceparent` never
 * enables it (once enabled, Node tracks every promise, a cost to all code).
 *
 * With OpenTelemetry (src/otel/), the telemetry interceptors write the trace
 * context of their own spans into a message's headers through the API's
 * propagator; a `traceparent` set that way is the caller's, so it wins over
 * the one forwarded here (see {@link inheritedTrace}). This forwarding is
 * what remains when no propagator writes one: `@opentelemetry/api` absent,
 * or present with no SDK registered — so nothing regresses either way.
 *
 * The same storage carries the {@link Parent} of a handler run on a server
 * that asked for it (`asyncContext: true`), so that calls and publishes made
 * inside the handler inherit its deadline and signal without being passed
 * `parent` (src/core/parent.ts).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Parent } from "./parent.js";

/** The trace headers carried from a handled message to the messages its handler sends. */
export interface TraceHeaders {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/** What a handler run carries to the messages it sends. */
interface Ambient {
  readonly trace: TraceHeaders | undefined;
  readonly parent: Parent | undefined;
}

const current = new AsyncLocalStorage<Ambient>();
/** version-traceid-parentid-flags, lower-case hex (W3C Trace Context). */
const TRACEPARENT = /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;

/** The trace headers among a message's `headers`, when its `traceparent` is well-formed. */
function traceOf(headers: Readonly<Record<string, unknown>> | undefined): TraceHeaders | undefined {
  const traceparent = headers?.traceparent;
  if (typeof traceparent !== "string" || !TRACEPARENT.test(traceparent)) return undefined;
  const tracestate = headers!.tracestate;
  return typeof tracestate === "string" ? { traceparent, tracestate } : { traceparent };
}

/** Runs the handler `fn(a, b)` of a message with these `headers`, inside their trace context when they carry one. */
export function handleTraced<A, B, R>(headers: Readonly<Record<string, unknown>> | undefined, fn: (a: A, b: B) => R, a: A, b: B): R {
  return handleWithin(headers, undefined, fn, a, b);
}

/**
 * Runs the handler `fn(a, b)` of a message with these `headers` inside its
 * trace context (when the headers carry one) and with `parent` as the ambient
 * parent of what it sends (when given); with neither, it just calls `fn`.
 */
export function handleWithin<A, B, R>(headers: Readonly<Record<string, unknown>> | undefined, parent: Parent | undefined, fn: (a: A, b: B) => R, a: A, b: B): R {
  const trace = traceOf(headers);
  return trace === undefined && parent === undefined ? fn(a, b) : current.run({ trace, parent }, fn, a, b);
}

/**
 * The trace headers an outgoing message with the caller's `headers` inherits:
 * those of the handler it is sent from, unless the caller set a `traceparent`.
 */
export function inheritedTrace(headers: Readonly<Record<string, unknown>> | undefined): TraceHeaders | undefined {
  return headers?.traceparent === undefined ? current.getStore()?.trace : undefined;
}

/** The parent of the handler run this code is part of, on a server with `asyncContext: true`; else undefined. */
export function ambientParent(): Parent | undefined {
  return current.getStore()?.parent;
}
