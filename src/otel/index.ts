/**
 * `warren/otel`: OpenTelemetry traces and metrics for warren's calls and
 * events, by the current semantic conventions (RPC, messaging, RabbitMQ).
 * Needs `@opentelemetry/api` (an optional peer dependency); an SDK registered
 * by the application decides where the data goes.
 *
 * ```ts
 * const t = warrenTelemetry();                     // undefined without @opentelemetry/api
 * const client = await conn.client({ interceptors: t ? [t.client] : [] });
 * ```
 */
import type { MeterProvider, TextMapPropagator, TracerProvider } from "@opentelemetry/api";
import { loadOtelApi, semconvMode } from "./api.js";
import { publishTelemetry, processTelemetry } from "./events.js";
import { createInstruments } from "./instruments.js";
import { clientTelemetry, serverTelemetry } from "./rpc.js";

/** Instrumentation scope version (warren's package version). */
const WARREN_VERSION = "0.1.0";
import { markTelemetry, type WarrenTelemetry } from "./telemetry.js";

export { isTelemetryInterceptor, type WarrenTelemetry } from "./telemetry.js";

/** Options of {@link warrenTelemetry}; every field is optional. */
export interface TelemetryOptions {
  /** Where spans go. @default the API's global tracer provider (what the SDK registered; no-op until it does) */
  tracerProvider?: TracerProvider;
  /** Where metrics go. Read when the telemetry is created: a provider registered later is not seen. @default the API's global meter provider */
  meterProvider?: MeterProvider;
  /** How trace context is written to and read from message headers. @default the API's global propagator (W3C `traceparent` with the usual SDK setup) */
  propagator?: TextMapPropagator;
  /**
   * The parent of an event's `process` span. `creation`: the publisher's
   * `send` span (one trace from publisher to subscribers), with a link to it
   * as well; `none`: no parent (each event
   * starts a trace of its own), correlated by the link only.
   * @default "creation"
   */
  processParent?: "creation" | "none";
  /** Overrides `OTEL_SEMCONV_STABILITY_OPT_IN`: `rpc/dup`, `messaging/dup` add the older attribute and metric names. @default process.env.OTEL_SEMCONV_STABILITY_OPT_IN */
  semconvStabilityOptIn?: string;
}

/**
 * The telemetry interceptors, or `undefined` when `@opentelemetry/api` is
 * not installed (nothing is imported then, and nothing runs per call). With
 * the API but no SDK registered, each interceptor starts a no-op span and
 * gets out of the way. Create it after the SDK is started: the meter is
 * taken now.
 */
export function warrenTelemetry(options: TelemetryOptions = {}): WarrenTelemetry | undefined {
  const api = loadOtelApi();
  if (api === undefined) return undefined;
  const instruments = createInstruments(
    api,
    {
      tracerProvider: options.tracerProvider,
      meterProvider: options.meterProvider,
      propagator: options.propagator,
      processParent: options.processParent,
      mode: semconvMode(options.semconvStabilityOptIn ?? process.env.OTEL_SEMCONV_STABILITY_OPT_IN),
    },
    WARREN_VERSION,
  );
  return markTelemetry({
    client: clientTelemetry(instruments),
    server: serverTelemetry(instruments),
    publish: publishTelemetry(instruments),
    process: processTelemetry(instruments),
  });
}
