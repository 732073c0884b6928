/**
 * Finding `@opentelemetry/api`, an optional peer dependency, without paying
 * for it when it is absent: it is looked up synchronously with `require` on
 * first use (never at import time, never with a top-level `await`, so warren
 * stays loadable by `require()`), once per process, and the answer is kept.
 *
 * Loading the API's CommonJS build from an ES module is safe: the API keeps
 * its registered tracer provider, meter provider, propagator and context
 * manager on a process-wide global, so this copy sees the SDK an application
 * registered through its own `import`.
 */
import { createRequire } from "node:module";
import type * as Api from "@opentelemetry/api";

/** The `@opentelemetry/api` module. */
export type OtelApi = typeof Api;

let loaded: OtelApi | null | undefined;

/**
 * The `@opentelemetry/api` module when it is installed, else `undefined`.
 * The first call resolves it (about a millisecond when it is absent); later
 * calls return the kept answer.
 */
export function loadOtelApi(): OtelApi | undefined {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)("@opentelemetry/api") as OtelApi;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

/** Which older convention names are emitted next to the current ones; see {@link semconvMode}. */
export interface SemconvMode {
  /** `rpc/dup`: also `rpc.system`, `rpc.service` and the millisecond metrics `rpc.client.duration` / `rpc.server.duration` (semantic conventions ≤ 1.37). */
  readonly rpcDup: boolean;
  /** `messaging/dup`: also `messaging.operation` (semantic conventions ≤ 1.24). */
  readonly messagingDup: boolean;
}

/**
 * Reads `OTEL_SEMCONV_STABILITY_OPT_IN` (a comma-separated list). warren had
 * no telemetry before, so it has no older conventions to keep by default: it
 * emits the current names whatever the variable says (`rpc` and `messaging`
 * change nothing), and `rpc/dup` / `messaging/dup` add the older names for
 * dashboards that still read them.
 */
export function semconvMode(value: string | undefined = process.env.OTEL_SEMCONV_STABILITY_OPT_IN): SemconvMode {
  const list = (value ?? "").split(",").map((v) => v.trim().toLowerCase());
  return { rpcDup: list.includes("rpc/dup"), messagingDup: list.includes("messaging/dup") };
}
