/**
 * An AsyncAPI 3.0.0 document of every contract, from the caller's side:
 *
 * - each service with methods has a request channel (address = its queue,
 *   AMQP binding `is: queue`) and a reply channel (address `null`: the
 *   caller's `reply_to`, reached through the default exchange);
 * - each method is an operation `call.<Service>.<method>` (action `send` on
 *   the request channel) with a `reply` whose address is
 *   `$message.header#/replyTo`, its messages the result, each declared error
 *   and the framework error body (docs/PROTOCOL.md#error-body);
 * - each event is a channel on its exchange (address = the routing key, its
 *   `{field}`s as parameters, AMQP binding `is: routingKey` with the exchange)
 *   and an operation `receive.<Service>.<event>`.
 *
 * Schemas are the bundled contract schemas; their `#/$defs/<Name>` refs point
 * at `#/components/schemas/<Service>.<Name>`.
 */
import { CONTRACT_VERSION_HEADER, DEADLINE_HEADER, SERVER_CODES, type JsonSchema } from "../../src/index.js";
import { placeholders } from "../../src/core/routing.js";
import type { Model, ServiceModel } from "../model.js";
import { defsOf } from "./contracts.js";
import { examplesOf } from "./schema-walk.js";

const BINDING = "0.3.0";
type Doc = Record<string, unknown>;

/** Where the document says the broker is (no credentials). */
export interface ServerInfo {
  readonly host: string;
  readonly protocol: "amqp" | "amqps";
  readonly vhost: string;
}

/** The broker of an `amqp(s)://` URL, without user or password. @throws TypeError for anything else. */
export function serverOf(url: string): ServerInfo {
  const u = new URL(url);
  if (u.protocol !== "amqp:" && u.protocol !== "amqps:") throw new TypeError(`not an amqp:// or amqps:// URL: ${u.protocol}//`);
  const protocol = u.protocol === "amqps:" ? "amqps" : "amqp";
  const port = u.port || (protocol === "amqps" ? "5671" : "5672");
  const vhost = u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : "/";
  return { host: `${u.hostname}:${port}`, protocol, vhost };
}

/** `#/$defs/X` -> `#/components/schemas/<Service>.X`, everywhere in `schema`. */
function relink(schema: unknown, service: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => relink(s, service));
  if (typeof schema !== "object" || schema === null) return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [k, k === "$ref" && typeof v === "string" && v.startsWith("#/$defs/") ? `#/components/schemas/${service}.${v.slice("#/$defs/".length)}` : relink(v, service)]),
  );
}

const ref = (to: string) => ({ $ref: to });
/** A key usable in AsyncAPI maps (`^[A-Za-z0-9._-]+$`). */
const key = (...parts: string[]) => parts.join(".").replace(/[^A-Za-z0-9._-]/g, "_");

/** The AsyncAPI 3.0.0 document of `model`. */
export function asyncApiDocument(model: Model, server: ServerInfo): Doc {
  const channels: Doc = {};
  const operations: Doc = {};
  const schemas: Doc = {};
  const messages: Doc = {
    [key("warren", "error")]: {
      name: "error",
      title: "Framework error reply",
      summary: "An error reply with one of the framework codes a server sends (docs/PROTOCOL.md#error-codes).",
      contentType: "application/json",
      correlationId: ref("#/components/correlationIds/correlationId"),
      payload: {
        type: "object",
        required: ["code", "message"],
        properties: {
          code: { type: "string", enum: [...SERVER_CODES] },
          message: { type: "string" },
          data: {
            type: "object",
            description: "invalid_request and invalid_response: every schema violation, as a JSON pointer and a reason.",
            properties: { issues: { type: "array", items: { type: "object", required: ["path", "message"], properties: { path: { type: "string" }, message: { type: "string" } } } } },
          },
        },
      },
      bindings: { amqp: { messageType: "error", bindingVersion: BINDING } },
    },
  };
  for (const s of model.services) addService(s, model, server.vhost, { channels, operations, schemas, messages });
  const services = model.services.map((s) => `${s.name} ${s.version}`).join(", ");
  return {
    asyncapi: "3.0.0",
    info: {
      title: model.services.length === 1 ? `${model.services[0]!.name} (warren)` : "warren services",
      version: model.services.length === 1 ? model.services[0]!.version : services || "0.0.0",
      description: `${model.services.map((s) => `**${s.name}** ${s.version}: ${s.description}`).join("\n\n")}\n\nRequest/reply and events over RabbitMQ with warren; the wire format is warren protocol v1 (docs/PROTOCOL.md). Operations are described from the caller's and subscriber's side.`,
    },
    defaultContentType: "application/json",
    servers: {
      broker: {
        host: server.host,
        protocol: server.protocol,
        protocolVersion: "0.9.1",
        ...(server.vhost === "/" ? {} : { pathname: `/${server.vhost}` }),
        description: "The RabbitMQ broker the services use.",
      },
    },
    channels,
    operations,
    components: {
      schemas,
      messages,
      correlationIds: { correlationId: { description: "Unique per call; the reply carries the request's.", location: "$message.header#/correlation_id" } },
    },
  };
}

interface Parts {
  channels: Doc;
  operations: Doc;
  schemas: Doc;
  messages: Doc;
}

function addService(s: ServiceModel, model: Model, vhost: string, { channels, operations, schemas, messages }: Parts): void {
  const defs = defsOf(s, model);
  for (const [name, schema] of Object.entries(defs)) schemas[key(s.name, name)] = relink(schema, s.name);
  const payload = (schema: JsonSchema) => relink(schema, s.name);
  const examples = (schema: JsonSchema) => examplesOf(schema, defs).map((x) => ({ payload: x }));
  const withExamples = (schema: JsonSchema) => {
    const list = examples(schema);
    return list.length > 0 ? { examples: list } : {};
  };

  if (s.methods.length > 0) {
    const requests = key(s.name, "requests");
    const replies = key(s.name, "replies");
    const requestMessages: Doc = {};
    const replyMessages: Doc = { error: ref(`#/components/messages/${key("warren", "error")}`) };
    for (const m of s.methods) {
      const req = key(s.name, m.wireName, "request");
      const res = key(s.name, m.wireName, "result");
      messages[req] = {
        name: m.wireName,
        title: `${s.name}.${m.wireName} request`,
        summary: m.description,
        contentType: "application/json",
        correlationId: ref("#/components/correlationIds/correlationId"),
        headers: {
          type: "object",
          properties: {
            [DEADLINE_HEADER]: { type: "integer", description: "Absolute deadline, ms since the Unix epoch." },
            [CONTRACT_VERSION_HEADER]: { type: "string", const: s.version, description: "The caller's contract version." },
            traceparent: { type: "string", description: "W3C trace context (optional)." },
          },
        },
        payload: payload(m.request),
        ...withExamples(m.request),
        bindings: { amqp: { messageType: m.wireName, bindingVersion: BINDING } },
      };
      requestMessages[key(m.wireName, "request")] = ref(`#/components/messages/${req}`);
      messages[res] = {
        name: "result",
        title: `${s.name}.${m.wireName} result`,
        summary: `The result of ${s.name}.${m.wireName}.`,
        contentType: "application/json",
        correlationId: ref("#/components/correlationIds/correlationId"),
        payload: payload(m.response),
        ...withExamples(m.response),
        bindings: { amqp: { messageType: "result", bindingVersion: BINDING } },
      };
      replyMessages[key(m.wireName, "result")] = ref(`#/components/messages/${res}`);
      const errorKeys: string[] = [];
      for (const e of m.errors) {
        const id = key(s.name, m.wireName, "error", e.code);
        messages[id] = {
          name: "error",
          title: `${s.name}.${m.wireName} error ${e.code}`,
          summary: e.description,
          contentType: "application/json",
          correlationId: ref("#/components/correlationIds/correlationId"),
          payload: {
            type: "object",
            required: ["code", "message", ...(e.data === undefined ? [] : ["data"])],
            properties: { code: { type: "string", const: e.code }, message: { type: "string" }, ...(e.data === undefined ? {} : { data: payload(e.data) }) },
          },
          bindings: { amqp: { messageType: "error", bindingVersion: BINDING } },
        };
        errorKeys.push(key(m.wireName, "error", e.code));
        replyMessages[key(m.wireName, "error", e.code)] = ref(`#/components/messages/${id}`);
      }
      operations[key("call", s.name, m.wireName)] = {
        action: "send",
        channel: ref(`#/channels/${requests}`),
        title: `${s.name}.${m.wireName}`,
        summary: m.description,
        description: [
          `Request \`type\` = \`${m.wireName}\` on queue \`${s.queue}\`.`,
          `Timeout: ${m.timeoutMs === undefined ? "the client's default (30000 ms)" : `${m.timeoutMs} ms`}.`,
          m.idempotent ? "Idempotent: safe to retry after `timeout` or `connection_lost`." : "Not idempotent: after `timeout` or `connection_lost` it may have run.",
          m.errors.length > 0 ? `Declared errors: ${m.errors.map((e) => `\`${e.code}\``).join(", ")}.` : "",
        ]
          .filter(Boolean)
          .join(" "),
        messages: [ref(`#/channels/${requests}/messages/${key(m.wireName, "request")}`)],
        reply: {
          address: { location: "$message.header#/replyTo", description: "The request's `reply_to`: `amq.rabbitmq.reply-to` (direct reply-to) or the caller's exclusive callback queue." },
          channel: ref(`#/channels/${replies}`),
          messages: [
            ref(`#/channels/${replies}/messages/${key(m.wireName, "result")}`),
            ...errorKeys.map((k) => ref(`#/channels/${replies}/messages/${k}`)),
            ref(`#/channels/${replies}/messages/error`),
          ],
        },
        bindings: { amqp: { ...(m.timeoutMs === undefined ? {} : { expiration: m.timeoutMs }), deliveryMode: 1, mandatory: true, timestamp: true, bindingVersion: BINDING } },
        ...(m.idempotent ? { "x-warren-idempotent": true } : {}),
        ...(m.timeoutMs === undefined ? {} : { "x-warren-timeout-ms": m.timeoutMs }),
      };
    }
    channels[requests] = {
      address: s.queue,
      title: `${s.name} requests`,
      description: `Requests to ${s.name}, published to the default exchange with routing key \`${s.queue}\` (mandatory).`,
      messages: requestMessages,
      bindings: { amqp: { is: "queue", queue: { name: s.queue, durable: true, exclusive: false, autoDelete: false, vhost }, bindingVersion: BINDING } },
    };
    channels[replies] = {
      address: null,
      title: `${s.name} replies`,
      description: "Replies to the caller, published to the default exchange with routing key = the request's `reply_to`, carrying its `correlation_id`; `type` is `result` or `error`.",
      messages: replyMessages,
      bindings: { amqp: { is: "routingKey", exchange: { name: "", type: "default", durable: true, autoDelete: false, vhost }, bindingVersion: BINDING } },
    };
  }

  for (const e of s.events) {
    const channel = key(s.name, "events", e.wireName);
    const message = key(s.name, "events", e.wireName);
    const fields = placeholders(e.routingKey);
    messages[message] = {
      name: e.wireName,
      title: `${s.name}.${e.wireName}`,
      summary: e.description,
      contentType: "application/json",
      headers: {
        type: "object",
        properties: {
          [CONTRACT_VERSION_HEADER]: { type: "string", const: s.version, description: "The publisher's contract version." },
          traceparent: { type: "string", description: "W3C trace context (optional)." },
        },
      },
      payload: payload(e.payload),
      ...withExamples(e.payload),
      bindings: { amqp: { messageType: e.wireName, bindingVersion: BINDING } },
    };
    channels[channel] = {
      address: e.routingKey,
      title: `${s.name}.${e.wireName}`,
      description: `Event \`${e.wireName}\` on the ${s.exchange.type} exchange \`${s.exchange.name}\`, routing key \`${e.routingKey}\`. Consumer groups share the durable queue \`${s.exchange.name}.${e.wireName}.<group>\`; dead letters go to \`<queue>.dead\`.`,
      ...(fields.length > 0 ? { parameters: Object.fromEntries(fields.map((f) => [f, { description: `The payload's top-level field \`${f}\`.` }])) } : {}),
      messages: { [e.wireName]: ref(`#/components/messages/${message}`) },
      bindings: { amqp: { is: "routingKey", exchange: { name: s.exchange.name, type: s.exchange.type, durable: true, autoDelete: false, vhost }, bindingVersion: BINDING } },
    };
    operations[key("receive", s.name, e.wireName)] = {
      action: "receive",
      channel: ref(`#/channels/${channel}`),
      title: `${s.name}.${e.wireName}`,
      summary: e.description,
      messages: [ref(`#/channels/${channel}/messages/${e.wireName}`)],
      bindings: { amqp: { deliveryMode: 2, ack: true, timestamp: true, bindingVersion: BINDING } },
    };
  }
}
