/**
 * Child-process entry of `bench/otel.ts`: serves Calculator with one telemetry variant.
 *   argv: <variant> <url> <queue>
 * Sends {ready: true} (or {error}) over IPC; stops on the message "stop".
 */
import { serveInChild } from "./child.js";
import { otelServer, type Variant } from "./otel-variants.js";

const [variant, url, queue] = process.argv.slice(2) as [Variant, string, string];
await serveInChild(() => otelServer(url, variant, queue));
