/**
 * What the telemetry interceptors share: the API, a tracer, the metric
 * instruments, the propagator, the conventions mode, and the small helpers
 * that turn an outcome into `error.type` and a span status.
 */
import type { Attributes, Context, Counter, Histogram, Meter, MeterProvider, Span, TextMapPropagator, Tracer, TracerProvider } from "@opentelemetry/api";
import { isRpcError } from "../core/errors.js";
import type { OtelApi, SemconvMode } from "./api.js";

/** Instrumentation scope name of every span and metric warren makes. */
export const SCOPE = "warren";

/** `rpc.system.name` of warren's calls (a custom value: the conventions list no RabbitMQ RPC system). */
export const RPC_SYSTEM = "warren";

/** Bucket boundaries (seconds) the RPC and messaging conventions advise for duration histograms. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** The tracer, instruments and settings of one {@link warrenTelemetry} instance. */
export interface Instruments {
  readonly api: OtelApi;
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  readonly mode: SemconvMode;
  /** False when the meter provider is the API's no-op one: metric bookkeeping is skipped. */
  readonly metered: boolean;
  readonly clientDuration: Histogram;
  readonly serverDuration: Histogram;
  /** `rpc/dup` only: the older millisecond histograms. */
  readonly clientDurationMs: Histogram | undefined;
  readonly serverDurationMs: Histogram | undefined;
  readonly sentMessages: Counter;
  readonly processDuration: Histogram;
  /** Whether a process span's parent is the message's creation context (it links to it either way). */
  readonly processParent: "creation" | "none";
}

/** The providers and settings {@link createInstruments} reads; see `TelemetryOptions`. */
export interface InstrumentSources {
  readonly tracerProvider?: TracerProvider | undefined;
  readonly meterProvider?: MeterProvider | undefined;
  readonly propagator?: TextMapPropagator | undefined;
  readonly processParent?: "creation" | "none" | undefined;
  readonly mode: SemconvMode;
}

/** Gets the tracer and creates the instruments, from the given providers or the API's global ones. */
export function createInstruments(api: OtelApi, sources: InstrumentSources, version: string): Instruments {
  const tracer = (sources.tracerProvider ?? api.trace.getTracerProvider()).getTracer(SCOPE, version);
  const meterProvider = sources.meterProvider ?? api.metrics.getMeterProvider();
  const meter: Meter = meterProvider.getMeter(SCOPE, version);
  const seconds = (name: string, description: string) =>
    meter.createHistogram(name, { unit: "s", description, advice: { explicitBucketBoundaries: DURATION_BUCKETS } });
  const ms = (name: string, description: string) => meter.createHistogram(name, { unit: "ms", description });
  return {
    api,
    tracer,
    propagator: sources.propagator ?? api.propagation,
    mode: sources.mode,
    // The API hands out a no-op meter until an SDK registers a provider; its instruments do nothing, so neither need we.
    metered: !(meterProvider.constructor?.name === "NoopMeterProvider"),
    clientDuration: seconds("rpc.client.call.duration", "Measures the duration of outbound remote procedure calls (RPC)."),
    serverDuration: seconds("rpc.server.call.duration", "Measures the duration of inbound remote procedure calls (RPC)."),
    clientDurationMs: sources.mode.rpcDup ? ms("rpc.client.duration", "Measures the duration of outbound RPC.") : undefined,
    serverDurationMs: sources.mode.rpcDup ? ms("rpc.server.duration", "Measures the duration of inbound RPC.") : undefined,
    sentMessages: meter.createCounter("messaging.client.sent.messages", { unit: "{message}", description: "Number of messages producer attempted to send to the broker." }),
    processDuration: seconds("messaging.process.duration", "Duration of processing operation."),
    processParent: sources.processParent ?? "creation",
  };
}

/**
 * `error.type` of a failure: the `RpcError` code (a framework code or one the
 * contract declares: low cardinality), else the thrown error's class name
 * (`TypeError`), else `_OTHER`.
 */
export function errorType(err: unknown): string {
  if (isRpcError(err)) return err.code;
  const name = (err as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return err instanceof Error && typeof name === "string" && name !== "" ? name : "_OTHER";
}

/** `outcome`, after calling `done` with how it settled (the error and `true` when it failed): the outcome is passed on unchanged. */
export function observe<T>(outcome: Promise<T>, done: (err: unknown, failed: boolean) => void): Promise<T> {
  return outcome.then(
    (value) => (done(undefined, false), value),
    (err: unknown) => {
      done(err, true);
      throw err;
    },
  );
}

/** Now, in milliseconds since the epoch with sub-millisecond precision: the span times and the metric durations come from the same clock. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Ends `span` at `end` (ms), with `attributes` of its outcome and, if `failed`, status ERROR with `message`. */
export function endSpan(api: OtelApi, span: Span, end: number, attributes: Attributes | undefined, failed: boolean, message: string | undefined): void {
  if (attributes !== undefined) span.setAttributes(attributes);
  if (failed) span.setStatus(message === undefined ? { code: api.SpanStatusCode.ERROR } : { code: api.SpanStatusCode.ERROR, message });
  span.end(end);
}

/** The message of a thrown value, for a span status. */
export function messageOf(err: unknown): string | undefined {
  return err instanceof Error ? err.message : typeof err === "string" ? err : undefined;
}

/** The context carried by `headers` (W3C `traceparent`, or whatever the propagator reads), on top of `base`. */
export function extract(i: Instruments, base: Context, headers: Readonly<Record<string, unknown>>): Context {
  return i.propagator.extract(base, headers, HEADER_GETTER);
}

/** Reads AMQP headers as a propagation carrier: only string values are trace context. */
const HEADER_GETTER = {
  keys: (carrier: Readonly<Record<string, unknown>>) => Object.keys(carrier),
  get: (carrier: Readonly<Record<string, unknown>>, key: string) => {
    const value = carrier[key];
    return typeof value === "string" ? value : Buffer.isBuffer(value) ? value.toString("utf8") : undefined;
  },
};
