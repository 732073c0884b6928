/**
 * RPC spans and metrics, built on the client and server interceptors of
 * src/rpc/interceptors.ts, by the OpenTelemetry semantic conventions for RPC
 * (release candidate: `rpc.system.name`, fully-qualified `rpc.method`,
 * `rpc.response.status_code`, `error.type`) with the RabbitMQ messaging
 * attributes of the message that carries the request.
 *
 * - Client: one CLIENT span per logical call, retries included (the
 *   interceptor sits outside the client's retry loop), named `Service/method`;
 *   its context is injected into the request headers.
 * - Server: one SERVER span per handled request, its parent extracted from the
 *   request headers; a PRODUCER span `send` under it for the reply, whose
 *   destination (direct reply-to, or an exclusive server-named queue) is
 *   temporary and anonymous. Both end once the reply is published; when it
 *   could not be (its channel closed: the broker redelivers the request; or
 *   the channel refused it: dropped), both fail with the publish error's
 *   `error.type` and a status description that says which.
 */
import type { Attributes } from "@opentelemetry/api";
import { isFrameworkCode } from "../core/codes.js";
import { isRpcError } from "../core/errors.js";
import type { MethodDescriptor } from "../core/descriptor.js";
import { replyFailureOf } from "../rpc/context.js";
import type { HandlerContext } from "../rpc/handler.js";
import type { CallNext, ClientInterceptor, HandleNext, OutgoingCall, ServerInterceptor } from "../rpc/interceptors.js";
import { RPC_SYSTEM, endSpan, errorType, extract, messageOf, now, observe, type Instruments } from "./instruments.js";

/** Codes a server sends as they are; anything else a handler throws reaches the caller as `internal`. */
const SERVER_FAULTS: ReadonlySet<string> = new Set(["internal", "invalid_response", "unimplemented"]);
const REFUSALS: ReadonlySet<string> = new Set(["unimplemented", "unauthenticated", "permission_denied", "invalid_request", "idempotency_conflict"]);

/** The client interceptor: a CLIENT span and `rpc.client.call.duration` around each call. */
export function clientTelemetry(i: Instruments): ClientInterceptor {
  const { api, tracer } = i;
  return (next: CallNext): CallNext =>
    (call: OutgoingCall) => {
      const { name, attributes } = clientShape(i, call.method);
      // A traceparent the caller set is the parent it asked for; otherwise the active context (the handler's span, if any).
      const active = api.context.active();
      const parent = call.headers.traceparent === undefined ? active : extract(i, active, call.headers);
      const start = now();
      const span = tracer.startSpan(name, { kind: api.SpanKind.CLIENT, attributes, startTime: start }, parent);
      // Without an SDK (a no-op span, no metrics) nothing below would record anything: the call goes on as if we were not here.
      if (!i.metered && !span.isRecording() && !api.isSpanContextValid(span.spanContext())) return next(call);
      const ctx = api.trace.setSpan(parent, span);
      i.propagator.inject(ctx, call.headers, api.defaultTextMapSetter);
      let outcome: Promise<unknown>;
      try {
        outcome = api.context.with(ctx, next, undefined, call);
      } catch (err) {
        outcome = Promise.reject(err);
      }
      const done = (err: unknown, failed: boolean) => {
        const end = now();
        const extra: Attributes = {};
        const conversation = correlationIdOf(call);
        if (conversation !== undefined) extra["messaging.message.conversation_id"] = conversation;
        if (failed) {
          const type = errorType(err);
          extra["error.type"] = type;
          if (isRpcError(err)) extra["rpc.response.status_code"] = err.code;
        }
        endSpan(api, span, end, extra, failed, failed ? messageOf(err) : undefined);
        if (i.metered) recordDuration(i.clientDuration, i.clientDurationMs, attributes, extra, end - start, true);
      };
      return observe(outcome, done);
    };
}

/** The server interceptor: a SERVER span (child of the caller's context), a reply span, and `rpc.server.call.duration` around each handler. */
export function serverTelemetry(i: Instruments): ServerInterceptor {
  const { api, tracer } = i;
  return (next: HandleNext): HandleNext =>
    (request: unknown, ctx: HandlerContext<any>) => {
      const { name, attributes } = serverShape(i, ctx.service, ctx.method);
      const parent = extract(i, api.ROOT_CONTEXT, ctx.headers);
      const start = now();
      const span = tracer.startSpan(name, { kind: api.SpanKind.SERVER, attributes, startTime: start }, parent);
      if (!i.metered && !span.isRecording() && !api.isSpanContextValid(span.spanContext())) return next(request, ctx);
      span.setAttribute("messaging.message.conversation_id", ctx.correlationId);
      const spanCtx = api.trace.setSpan(parent, span);
      let outcome: Promise<unknown>;
      try {
        outcome = Promise.resolve(api.context.with(spanCtx, next, undefined, request, ctx));
      } catch (err) {
        outcome = Promise.reject(err);
      }
      const done = (err: unknown, failed: boolean) => {
        // The server validates the result and publishes the reply in the microtasks after this promise settles: the span covers them.
        const reply = tracer.startSpan("send", { kind: api.SpanKind.PRODUCER, attributes: replyAttributes(i, ctx), startTime: now() }, spanCtx);
        setImmediate(() => {
          const end = now();
          const extra: Attributes = {};
          let fault = false;
          let message: string | undefined;
          if (failed) {
            const code = wireCode(err);
            extra["error.type"] = code;
            extra["rpc.response.status_code"] = code;
            fault = SERVER_FAULTS.has(code);
            if (fault) message = messageOf(err);
          }
          // The server has tried to publish the reply by now; a failure there fails the call, whatever the handler did.
          const lost = replyFailureOf(ctx);
          if (lost === undefined) reply.end(end);
          else {
            const type = errorType(lost.error);
            message = `reply not published (${messageOf(lost.error) ?? type}): ${lost.redelivered ? "its channel closed, the broker redelivers the request" : "dropped, the request is acknowledged"}`;
            extra["error.type"] = type;
            fault = true;
            endSpan(api, reply, end, { "error.type": type }, true, message);
          }
          endSpan(api, span, end, extra, fault, message);
          if (i.metered) recordDuration(i.serverDuration, i.serverDurationMs, attributes, extra, end - start, false);
        });
      };
      return observe(outcome, done);
    };
}

/** A method's span name and the attributes its spans start with: built once per method, not per call (the SDK copies them). */
interface Shape {
  readonly name: string;
  readonly attributes: Readonly<Attributes>;
}
const clientShapes = new WeakMap<Instruments, WeakMap<MethodDescriptor<any, any, any>, Shape>>();
const serverShapes = new WeakMap<Instruments, Map<string, Map<string, Shape>>>();

function clientShape(i: Instruments, method: MethodDescriptor<any, any, any>): Shape {
  let shapes = clientShapes.get(i);
  if (shapes === undefined) clientShapes.set(i, (shapes = new WeakMap()));
  let shape = shapes.get(method);
  if (shape === undefined) {
    const name = `${method.service.name}/${method.name}`;
    const attributes = rpcAttributes(i, method.service.name, name);
    // The request goes to the default exchange with the queue as routing key: the destination is the queue.
    attributes["server.address"] = method.service.queue;
    attributes["messaging.system"] = "rabbitmq";
    attributes["messaging.destination.name"] = method.service.queue;
    shapes.set(method, (shape = { name, attributes: Object.freeze(attributes) }));
  }
  return shape;
}

function serverShape(i: Instruments, service: string, method: string): Shape {
  let services = serverShapes.get(i);
  if (services === undefined) serverShapes.set(i, (services = new Map()));
  let methods = services.get(service);
  if (methods === undefined) services.set(service, (methods = new Map()));
  let shape = methods.get(method);
  if (shape === undefined) {
    const name = `${service}/${method}`;
    const attributes = rpcAttributes(i, service, name);
    attributes["messaging.system"] = "rabbitmq";
    methods.set(method, (shape = { name, attributes: Object.freeze(attributes) }));
  }
  return shape;
}

/** The attributes every RPC span and metric of this method starts with (plus the pre-1.38 ones under `rpc/dup`). */
function rpcAttributes(i: Instruments, service: string, fullName: string): Attributes {
  const attributes: Attributes = { "rpc.system.name": RPC_SYSTEM, "rpc.method": fullName };
  if (i.mode.rpcDup) {
    attributes["rpc.system"] = RPC_SYSTEM;
    attributes["rpc.service"] = service;
  }
  return attributes;
}

/** The reply's attributes: a send to a temporary, anonymous destination, in the call's conversation. */
function replyAttributes(i: Instruments, ctx: HandlerContext<any>): Attributes {
  const attributes: Attributes = {
    "messaging.system": "rabbitmq",
    "messaging.operation.name": "send",
    "messaging.operation.type": "send",
    "messaging.destination.temporary": true,
    "messaging.destination.anonymous": true,
    "messaging.message.conversation_id": ctx.correlationId,
  };
  // Published to the default exchange with the request's reply_to as routing key: that address is the destination.
  const replyTo = (ctx as { readonly replyTo?: unknown }).replyTo;
  if (typeof replyTo === "string") attributes["messaging.destination.name"] = replyTo;
  if (i.mode.messagingDup) attributes["messaging.operation"] = "publish";
  return attributes;
}

/** The code the caller receives for what a handler (or a server interceptor) threw; see docs/PROTOCOL.md#server-behaviour. */
function wireCode(err: unknown): string {
  if (!isRpcError(err)) return "internal";
  return !isFrameworkCode(err.code) || REFUSALS.has(err.code) ? err.code : "internal";
}

/** The correlation id of the call's last attempt, when the client tells interceptors (`OutgoingCall.correlationId`). */
function correlationIdOf(call: OutgoingCall): string | undefined {
  const id = (call as { readonly correlationId?: unknown }).correlationId;
  return typeof id === "string" ? id : undefined;
}

/** Records a duration (ms) in seconds, and in milliseconds under `rpc/dup`, with the conventions' metric attributes. */
function recordDuration(seconds: Instruments["clientDuration"], millis: Instruments["clientDurationMs"], base: Attributes, outcome: Attributes, ms: number, client: boolean): void {
  const attributes: Attributes = { "rpc.system.name": base["rpc.system.name"], "rpc.method": base["rpc.method"] };
  if (client) attributes["server.address"] = base["server.address"];
  if (outcome["error.type"] !== undefined) attributes["error.type"] = outcome["error.type"];
  if (outcome["rpc.response.status_code"] !== undefined) attributes["rpc.response.status_code"] = outcome["rpc.response.status_code"];
  seconds.record(ms / 1000, attributes);
  if (millis !== undefined) {
    const method = String(base["rpc.method"]);
    const old: Attributes = { "rpc.system": RPC_SYSTEM, "rpc.service": base["rpc.service"], "rpc.method": method.slice(method.indexOf("/") + 1) };
    if (outcome["error.type"] !== undefined) old["error.type"] = outcome["error.type"];
    millis.record(ms, old);
  }
}
