/**
 * Event spans and metrics, built on the event bus's publish and process
 * interceptors, by the OpenTelemetry semantic conventions for messaging and
 * their RabbitMQ rules.
 *
 * - Publish: a PRODUCER span `send {exchange}:{routing key template}` per
 *   event; its context is the message's creation context, injected into the
 *   event's headers (unless the publisher set its own `traceparent`, which is
 *   then left alone and linked).
 * - Process: a CONSUMER span `process {exchange}:{binding key}[:{group queue}]`
 *   per handler run (each attempt). It links to the creation context and, by
 *   default, is its child too (one trace from publisher to subscribers; the
 *   conventions allow it for single-message processing with no ambient span).
 *   With `processParent: "none"` it is the root of a trace of its own,
 *   correlated by the link only.
 */
import type { Attributes, Context, Link } from "@opentelemetry/api";
import type { OutgoingEvent, PublishInterceptor, PublishNext } from "../events/bus.js";
import type { EventContext, ProcessInterceptor, ProcessNext } from "../events/subscription.js";
import { endSpan, errorType, extract, messageOf, now, observe, type Instruments } from "./instruments.js";

/** The publish interceptor: a PRODUCER span and `messaging.client.sent.messages` around each publish. */
export function publishTelemetry(i: Instruments): PublishInterceptor {
  const { api, tracer } = i;
  return (next: PublishNext): PublishNext =>
    (event: OutgoingEvent) => {
      const template = `${event.exchange}:${event.event.routingKey}`;
      const attributes: Attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": destinationName(event.exchange, event.routingKey),
        "messaging.destination.template": template,
        "messaging.message.id": event.messageId,
      };
      if (event.routingKey !== "") attributes["messaging.rabbitmq.destination.routing_key"] = event.routingKey;
      if (i.mode.messagingDup) attributes["messaging.operation"] = "publish";
      // A traceparent set by the publisher is a creation context of its own: not replaced, linked.
      const custom = event.headers.traceparent !== undefined ? spanContextIn(i, extract(i, api.ROOT_CONTEXT, event.headers)) : undefined;
      const start = now();
      const parent = api.context.active();
      const span = tracer.startSpan(`send ${template}`, { kind: api.SpanKind.PRODUCER, attributes, startTime: start, links: custom === undefined ? [] : [custom] }, parent);
      if (!i.metered && !span.isRecording() && !api.isSpanContextValid(span.spanContext())) return next(event);
      const ctx = api.trace.setSpan(parent, span);
      if (custom === undefined) i.propagator.inject(ctx, event.headers, api.defaultTextMapSetter);
      let outcome: Promise<void>;
      try {
        outcome = api.context.with(ctx, next, undefined, event);
      } catch (err) {
        outcome = Promise.reject(err);
      }
      const done = (err: unknown, failed: boolean) => {
        const outcomeAttributes: Attributes | undefined = failed ? { "error.type": errorType(err) } : undefined;
        endSpan(api, span, now(), outcomeAttributes, failed, failed ? messageOf(err) : undefined);
        if (i.metered) {
          const metric: Attributes = { "messaging.system": "rabbitmq", "messaging.operation.name": "send", "messaging.destination.template": template };
          // The name only when it cannot vary with the payload: a routing key without {fields}.
          if (!event.event.routingKey.includes("{")) metric["messaging.destination.name"] = attributes["messaging.destination.name"];
          if (failed) metric["error.type"] = outcomeAttributes!["error.type"];
          i.sentMessages.add(1, metric);
        }
      };
      return observe(outcome, done);
    };
}

/** The process interceptor: a CONSUMER span and `messaging.process.duration` around each handler run. */
export function processTelemetry(i: Instruments): ProcessInterceptor {
  const { api, tracer } = i;
  return (next: ProcessNext): ProcessNext =>
    (payload: unknown, ctx: EventContext) => {
      const creation = extract(i, api.ROOT_CONTEXT, ctx.headers);
      const link = spanContextIn(i, creation);
      const group = ctx.group;
      // A group's queue is named and durable; a broadcast subscriber's is server-named and goes away with it.
      const queue = group === undefined ? undefined : ctx.queue;
      const template = [ctx.exchange, ctx.bindingKey ?? ctx.routingKey, queue].filter((part) => part !== undefined && part !== "").join(":");
      const attributes: Attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": [ctx.exchange, ctx.routingKey, queue].filter((part) => part !== undefined && part !== "").join(":"),
        "messaging.destination.template": template,
      };
      if (ctx.routingKey !== "") attributes["messaging.rabbitmq.destination.routing_key"] = ctx.routingKey;
      if (group !== undefined) attributes["messaging.consumer.group.name"] = group;
      else {
        attributes["messaging.destination.temporary"] = true;
        attributes["messaging.destination.anonymous"] = true;
      }
      if (ctx.messageId !== undefined) attributes["messaging.message.id"] = ctx.messageId;
      if (i.mode.messagingDup) attributes["messaging.operation"] = "process";
      // Delivery starts no context of its own (the consumer callback runs under none): the parent is the creation context, or nothing.
      const parent: Context = i.processParent === "creation" && link !== undefined ? creation : api.ROOT_CONTEXT;
      const start = now();
      const span = tracer.startSpan(`process ${template}`, { kind: api.SpanKind.CONSUMER, attributes, startTime: start, links: link === undefined ? [] : [link] }, parent);
      if (!i.metered && !span.isRecording() && !api.isSpanContextValid(span.spanContext())) return next(payload, ctx);
      const spanCtx = api.trace.setSpan(parent, span);
      let outcome: Promise<void>;
      try {
        outcome = Promise.resolve(api.context.with(spanCtx, next, undefined, payload, ctx));
      } catch (err) {
        outcome = Promise.reject(err);
      }
      const done = (err: unknown, failed: boolean) => {
        const end = now();
        const outcomeAttributes: Attributes | undefined = failed ? { "error.type": errorType(err) } : undefined;
        endSpan(api, span, end, outcomeAttributes, failed, failed ? messageOf(err) : undefined);
        if (i.metered) {
          const metric: Attributes = { "messaging.system": "rabbitmq", "messaging.operation.name": "process", "messaging.destination.template": template };
          if (group !== undefined) metric["messaging.consumer.group.name"] = group;
          if (failed) metric["error.type"] = outcomeAttributes!["error.type"];
          i.processDuration.record((end - start) / 1000, metric);
        }
      };
      return observe(outcome, done);
    };
}

/** `{exchange}:{routing key}` by the RabbitMQ rule: one of them when the other is empty, `amq.default` when both are. */
function destinationName(exchange: string, routingKey: string): string {
  if (exchange !== "" && routingKey !== "") return `${exchange}:${routingKey}`;
  return exchange !== "" ? exchange : routingKey !== "" ? routingKey : "amq.default";
}

/** A link to the remote span context in `ctx`, when it holds a valid one. */
function spanContextIn(i: Instruments, ctx: Context): Link | undefined {
  const spanContext = i.api.trace.getSpanContext(ctx);
  return spanContext !== undefined && i.api.isSpanContextValid(spanContext) ? { context: spanContext } : undefined;
}
