/**
 * The telemetry a connection installs by itself: {@link defaultTelemetry}.
 * Its declarations name no OpenTelemetry type, so the package's main entry
 * compiles for users without `@opentelemetry/api`.
 */
import { loadOtelApi, type OtelApi } from "./api.js";
import { warrenTelemetry } from "./index.js";
import type { WarrenTelemetry } from "./telemetry.js";

export { isTelemetryInterceptor } from "./telemetry.js";

/**
 * The telemetry interceptors with the API's global providers, for
 * `Connection.client()`, `server()` and `events()` to put first in their
 * interceptor lists. `undefined` — install nothing, pay nothing per call —
 * when `@opentelemetry/api` is not installed, when no SDK has registered a
 * tracer or meter provider yet (start the SDK before creating clients and
 * servers), or when `WARREN_TELEMETRY=off`. Each call reads the globals
 * afresh.
 */
export function defaultTelemetry(): WarrenTelemetry | undefined {
  if (process.env.WARREN_TELEMETRY === "off") return undefined;
  const api = loadOtelApi();
  if (api === undefined || !sdkRegistered(api)) return undefined;
  return warrenTelemetry();
}

/** Whether an SDK registered a global tracer provider or meter provider (the API's own are no-ops). */
function sdkRegistered(api: OtelApi): boolean {
  const tracerProvider = api.trace.getTracerProvider() as { getDelegate?: () => object };
  const tracing = typeof tracerProvider.getDelegate === "function" ? tracerProvider.getDelegate().constructor.name !== "NoopTracerProvider" : true;
  return tracing || api.metrics.getMeterProvider().constructor.name !== "NoopMeterProvider";
}
