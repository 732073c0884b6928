/**
 * The interceptors telemetry is made of, as one value: the type that
 * `warren/otel` and the connection's defaults hand out. It names no
 * OpenTelemetry type, so code that only passes it along compiles without
 * `@opentelemetry/api` installed.
 */
import type { PublishInterceptor } from "../events/bus.js";
import type { ProcessInterceptor } from "../events/subscription.js";
import type { ClientInterceptor, ServerInterceptor } from "../rpc/interceptors.js";

/**
 * Interceptors that make spans and metrics by the OpenTelemetry semantic
 * conventions. Each may be put in any interceptor list, but the spans measure
 * most when it is the first (outermost): `interceptors: [t.client, auth]`.
 */
export interface WarrenTelemetry {
  /** For `ClientOptions.interceptors`: a CLIENT span `Service/method` per call (retries included) and `rpc.client.call.duration`. */
  readonly client: ClientInterceptor;
  /** For `ServerOptions.interceptors`: a SERVER span `Service/method` per request, its reply's `send` span, and `rpc.server.call.duration`. */
  readonly server: ServerInterceptor;
  /** For `EventBusOptions.publishInterceptors`: a PRODUCER span `send …` per event and `messaging.client.sent.messages`. */
  readonly publish: PublishInterceptor;
  /** For `EventBusOptions.processInterceptors`: a CONSUMER span `process …` per handler run and `messaging.process.duration`. */
  readonly process: ProcessInterceptor;
}

/** Interceptors made by `warrenTelemetry()`, so that defaults are not installed twice. */
const made = new WeakSet<object>();

/** Marks the interceptors of `t` as telemetry (see {@link isTelemetryInterceptor}); returns `t`. */
export function markTelemetry(t: WarrenTelemetry): WarrenTelemetry {
  for (const interceptor of [t.client, t.server, t.publish, t.process]) made.add(interceptor);
  return t;
}

/**
 * True for an interceptor made by `warrenTelemetry()` or `defaultTelemetry()`:
 * code installing telemetry by default skips a list that already has one, so
 * a call never gets two client spans.
 */
export function isTelemetryInterceptor(interceptor: unknown): boolean {
  return typeof interceptor === "function" && made.has(interceptor);
}
