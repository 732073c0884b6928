/**
 * The three telemetry set-ups `bench/otel.ts` compares, for a client (in the
 * benchmark process) and a server (in a child process each):
 *
 * - `off`: no telemetry interceptors: warren as it runs without `@opentelemetry/api`.
 * - `default`: what a connection installs by default (`defaultTelemetry()`) with
 *   the API installed and no SDK registered: nothing, so this is `off` again, an
 *   A/A control that shows how far two identical set-ups differ on this machine.
 * - `api`: `warrenTelemetry()` installed explicitly with the API's globals and no SDK
 *   registered: what a process pays when the API is installed (say, by another
 *   dependency) and nobody configured OpenTelemetry.
 * - `sdk`: the SDK's tracer and meter providers, every span sampled and handed
 *   to a batch processor whose exporter drops it, metrics aggregated but never
 *   exported, the W3C propagator, and (in the server) the AsyncLocalStorage
 *   context manager an SDK setup registers.
 */
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { serveCalculator, CalculatorClient } from "../../generated/calculator/index.js";
import { connect } from "../../src/index.js";
import { benchCalculatorHandlers } from "./impls.js";
import { defaultTelemetry } from "../../src/otel/default.js";
import { warrenTelemetry, type WarrenTelemetry } from "../../src/otel/index.js";

export type Variant = "off" | "default" | "api" | "sdk";
export const VARIANTS: readonly Variant[] = ["off", "default", "api", "sdk"];

const quiet = { warn() {}, error() {} };

/** Drops what it is given: the SDK does all its work, nothing leaves the process. */
class NoopExporter implements SpanExporter {
  exported = 0;
  export(spans: ReadableSpan[], done: (r: { code: ExportResultCode }) => void): void {
    this.exported += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function telemetryFor(variant: Variant, side: "client" | "server"): WarrenTelemetry | undefined {
  if (variant === "off") return undefined;
  if (variant === "default") {
    const t = defaultTelemetry();
    if (t !== undefined) throw new Error("defaultTelemetry() installed interceptors without an SDK");
    return t;
  }
  if (variant === "api") return warrenTelemetry()!;
  if (side === "server") context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(new NoopExporter())] });
  // No reader: instruments aggregate as the SDK does, and nothing collects them.
  const meterProvider = new MeterProvider({ readers: [] });
  return warrenTelemetry({ tracerProvider, meterProvider, propagator: new W3CTraceContextPropagator() })!;
}

/** A client of `queue` with `variant`'s telemetry; `add` checks every reply. */
export async function otelClient(url: string, variant: Variant, queue: string) {
  const conn = await connect(url, { name: `bench-otel-client-${variant}`, logger: quiet });
  const t = telemetryFor(variant, "client");
  const transport = await conn.client({ queues: { Calculator: queue }, interceptors: t === undefined ? [] : [t.client] });
  const calc = new CalculatorClient(transport);
  return {
    add: async (i: number) => {
      const { sum } = await calc.add({ a: i, b: 1 });
      if (sum !== i + 1) throw new Error(`wrong reply: ${sum} for ${i} + 1`);
    },
    close: async () => {
      await transport.close();
      await conn.close();
    },
  };
}

/** Serves Calculator on `queue` with `variant`'s telemetry. */
export async function otelServer(url: string, variant: Variant, queue: string) {
  const conn = await connect(url, { name: `bench-otel-server-${variant}`, logger: quiet });
  const t = telemetryFor(variant, "server");
  const server = conn.server({ prefetch: 64, interceptors: t === undefined ? [] : [t.server] });
  await serveCalculator(
    server,
    benchCalculatorHandlers,
    { queue },
  );
  return {
    close: async () => {
      await server.close();
      await conn.close();
    },
  };
}
