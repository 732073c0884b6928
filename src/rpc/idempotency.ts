/**
 * Server-side deduplication: a {@link ServerInterceptor} that runs each
 * idempotency key once and replays its stored outcome to every duplicate — a
 * redelivery, a client's automatic retry, or a caller sending the same
 * request again with the same `idempotencyKey`.
 *
 * @see docs/FAILURES.md#guarding-non-idempotent-handlers
 */
import { createHash } from "node:crypto";
import { isFrameworkCode } from "../core/codes.js";
import { RpcError, isRpcError } from "../core/errors.js";
import { consoleLogger, type Logger } from "../core/logging.js";
import type { DedupeStore } from "./dedupe-store.js";
import type { HandlerContext } from "./handler.js";
import type { HandleNext, ServerInterceptor } from "./interceptors.js";

/** Options of {@link dedupe}. */
export interface DedupeOptions {
  /** Where keys, claims and outcomes live; every server process of a queue must share it (`memoryDedupeStore()` serves one process). */
  store: DedupeStore;
  /** How long an outcome is kept and replayed; a duplicate arriving later runs again. @default 86400000 (24 h) */
  ttlMs?: number;
  /**
   * How long a claim outlives its last renewal. A running handler renews it
   * every `leaseMs / 3`; the claim of a process that died (SIGKILL, lost host)
   * is taken over after at most `leaseMs`, so duplicates wait up to that long.
   * @default 30000
   */
  leaseMs?: number;
  /** The longest pause between two looks of a duplicate waiting for the first run's outcome (it starts at 10 ms and doubles). @default 200 */
  pollMs?: number;
  /** The methods to deduplicate, as `"Service.method"` (wire names); the others run as they are. @default every method */
  methods?: readonly string[];
  /** Where store failures after the handler ran (an outcome not stored, a lost claim) are logged. @default the console */
  logger?: Logger;
}

/** What is stored for a key: the handler's result, or the declared error it threw. */
type Outcome = { result?: unknown } | { error: { code: string; message: string; data?: unknown } };

/**
 * A server interceptor that runs each request's `ctx.idempotencyKey` once:
 *
 * 1. The first request with a key claims it in the store and runs the
 *    handler, renewing its claim while it runs. A result or a declared
 *    (application) error is stored for `ttlMs`; anything else (`internal`,
 *    a refusal such as `permission_denied`, the deadline passing) frees the
 *    key, so that a retry runs again.
 * 2. A duplicate of a stored key gets the stored result, or the stored error
 *    thrown again; one that arrives while the first still runs waits for its
 *    outcome (within its own deadline), and runs itself if the first claim
 *    expires unfinished (its process died).
 * 3. A key that comes back with a different request (other service, method
 *    or arguments: compared by a SHA-256 of the canonical JSON) is refused
 *    with `idempotency_conflict`.
 * 4. When the store cannot be reached before the handler runs, the request
 *    fails (`internal`) unrun: a retry may succeed.
 *
 * Put it after authentication interceptors (so refused callers claim
 * nothing) and before those that should run once per key.
 * @throws TypeError when an option is out of range.
 * @see docs/FAILURES.md#guarding-non-idempotent-handlers
 */
export function dedupe(options: DedupeOptions): ServerInterceptor {
  const store = options.store;
  if (typeof store?.claim !== "function") throw new TypeError("warren: dedupe: `store` must be a DedupeStore, e.g. memoryDedupeStore()");
  const ttlMs = positive("ttlMs", options.ttlMs, 86_400_000);
  const leaseMs = positive("leaseMs", options.leaseMs, 30_000);
  const pollMs = positive("pollMs", options.pollMs, 200);
  const logger = options.logger ?? consoleLogger;
  const only = options.methods === undefined ? undefined : new Set(options.methods);

  return (next: HandleNext): HandleNext =>
    async (request, ctx) => {
      if (only !== undefined && !only.has(`${ctx.service}.${ctx.method}`)) return next(request, ctx);
      const key = keyOf(ctx);
      const mine = fingerprint(ctx.service, ctx.method, request);
      let delay = 10;
      for (;;) {
        const entry = await store.claim(key, mine, leaseMs);
        if (entry.state === "claimed") return run(next, request, ctx, entry.token);
        if (entry.fingerprint !== mine) {
          throw new RpcError("idempotency_conflict", `idempotency key ${JSON.stringify(key)} was already used for a different request`);
        }
        if (entry.state === "done") return replay(entry.outcome);
        await pause(delay, ctx);
        delay = Math.min(pollMs, delay * 2);
      }
    };

  /** Runs the handler holding the claim `token`, stores what it came to, and returns or throws it. */
  async function run(next: HandleNext, request: unknown, ctx: HandlerContext<any>, token: string): Promise<unknown> {
    const key = keyOf(ctx);
    const fields = { service: ctx.service, method: ctx.method, correlationId: ctx.correlationId };
    let lost = false;
    const renewal = setInterval(() => {
      store.renew(key, token, leaseMs).then(
        (held) => {
          if (!held && !lost) {
            lost = true;
            logger.warn(fields, `the claim of idempotency key ${JSON.stringify(key)} expired while its handler ran; a duplicate may run too (raise leaseMs)`);
          }
        },
        (err: unknown) => logger.warn({ ...fields, err }, `could not renew the claim of idempotency key ${JSON.stringify(key)}: ${(err as Error)?.message ?? String(err)}`),
      );
    }, Math.max(1, Math.floor(leaseMs / 3)));
    renewal.unref();
    let outcome: Outcome;
    let value: unknown;
    try {
      value = await next(request, ctx);
      outcome = value === undefined ? {} : { result: value };
    } catch (err) {
      clearInterval(renewal);
      if (!isRpcError(err) || isFrameworkCode(err.code)) {
        // Not an outcome of the request (a bug, a refusal, a deadline): free the key so that a retry runs it.
        await store.release(key, token).catch((failure: unknown) => logger.warn({ ...fields, err: failure }, `could not release idempotency key ${JSON.stringify(key)}: ${(failure as Error)?.message ?? String(failure)}`));
        throw err;
      }
      await keep(key, token, { error: { code: err.code, message: err.message, ...(err.data === undefined ? {} : { data: err.data }) } }, fields);
      throw err;
    }
    clearInterval(renewal);
    await keep(key, token, outcome, fields);
    return value;
  }

  /** Stores `outcome` for `key`; a failure is logged, not thrown: the request ran, its caller gets its answer. */
  async function keep(key: string, token: string, outcome: Outcome, fields: { service: string; method: string; correlationId: string }): Promise<void> {
    let text: string;
    try {
      text = JSON.stringify(outcome);
    } catch {
      // Not JSON (the server answers `internal` for it too): nothing to replay, so let a retry run.
      await store.release(key, token).catch(() => {});
      return;
    }
    try {
      if (!(await store.finish(key, token, text, ttlMs))) {
        logger.warn(fields, `the claim of idempotency key ${JSON.stringify(key)} expired before its outcome was stored; a duplicate may run again (raise leaseMs)`);
      }
    } catch (err) {
      logger.error({ ...fields, err }, `could not store the outcome of idempotency key ${JSON.stringify(key)} (${(err as Error)?.message ?? String(err)}); a duplicate runs again once its claim expires`);
    }
  }
}

/** The stored outcome as the handler gave it: a result returned, a declared error thrown. */
function replay(text: string): unknown {
  const outcome = JSON.parse(text) as Outcome;
  if ("error" in outcome) {
    const { code, message, data } = outcome.error;
    throw new RpcError(code, message, data === undefined ? {} : { data });
  }
  return outcome.result;
}

/** Waits `ms` before a duplicate looks again; throws once its deadline passes (the caller has given up by then). */
function pause(ms: number, ctx: HandlerContext<any>): Promise<void> {
  const signal = ctx.deadline === undefined ? undefined : ctx.signal;
  if (signal?.aborted) return Promise.reject(gaveUp(ctx));
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(gaveUp(ctx));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The request's idempotency key; a context made by hand (in a test) without one stands for its correlation id. */
function keyOf(ctx: HandlerContext<any>): string {
  return (ctx.idempotencyKey as string | undefined) ?? ctx.correlationId;
}

function gaveUp(ctx: HandlerContext<any>): Error {
  return new Error(`the deadline passed while waiting for the first run of idempotency key ${JSON.stringify(keyOf(ctx))}`);
}

/**
 * What identifies a request for {@link dedupe}: a SHA-256 (hex) of the service,
 * the method and the request as canonical JSON (object keys sorted), so that
 * the same arguments in another key order match.
 */
export function fingerprint(service: string, method: string, request: unknown): string {
  return createHash("sha256").update(`${service}\u0000${method}\u0000${canonicalJson(request)}`).digest("hex");
}

/** JSON with every object's keys sorted (`undefined` members left out, as `JSON.stringify` does). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const members = Object.keys(value)
    .sort()
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${members.join(",")}}`;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw new TypeError(`warren: dedupe: ${name} must be a positive number of milliseconds, got ${String(value)}`);
  return value;
}
