/**
 * descriptor.ts of a service: `defineService({...})` with every schema written
 * out as a readable object literal, keys in contract order.
 */
import { docComment, importLine } from "./emit-text.js";
import type { EventModel, MethodModel, Model, ServiceModel } from "./model.js";
import { docText, jsDocBlock, propertyKey, stringLiteral } from "./text.js";

const WIDTH = 100;

/** Prints JSON data as a TypeScript literal: one line when short, else one entry per line. */
export function literal(value: unknown, indent = ""): string {
  if (value === null || typeof value === "boolean" || typeof value === "number") return JSON.stringify(value);
  if (typeof value === "string") return stringLiteral(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    const items = value.map((v) => literal(v, inner));
    const flat = `[${items.join(", ")}]`;
    if (items.length === 0 || (flat.length + indent.length <= WIDTH && !flat.includes("\n"))) return flat;
    return `[\n${items.map((i) => `${inner}${i},\n`).join("")}${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).map(([k, v]) => `${propertyKey(k)}: ${literal(v, inner)}`);
  if (entries.length === 0) return "{}";
  const flat = `{ ${entries.join(", ")} }`;
  if (flat.length + indent.length <= WIDTH && !flat.includes("\n")) return flat;
  return `{\n${entries.map((e) => `${inner}${e},\n`).join("")}${indent}}`;
}

function methodLiteral(m: MethodModel, indent: string): string {
  const spec: Record<string, unknown> = { name: m.wireName, description: m.description, request: m.request, response: m.response };
  if (m.errors.length > 0) {
    spec.errors = Object.fromEntries(m.errors.map((e) => [e.code, e.data === undefined ? { description: e.description } : { description: e.description, data: e.data }]));
  }
  if (m.timeoutMs !== undefined) spec.timeoutMs = m.timeoutMs;
  if (m.idempotent !== undefined) spec.idempotent = m.idempotent;
  const { request, response, error } = m.types;
  return `method<${request}, ${response}, ${error}>(${literal(spec, indent)})`;
}

function eventLiteral(e: EventModel, indent: string): string {
  return `event<${e.payloadType}>(${literal({ name: e.wireName, description: e.description, routingKey: e.routingKey, payload: e.payload }, indent)})`;
}

/** The descriptor module of `service` (without the header). */
export function emitDescriptor(service: ServiceModel, model: Model, runtime: string): string {
  const runtimeNames = ["defineService", ...(service.events.length > 0 ? ["event"] : []), ...(service.methods.length > 0 ? ["method"] : [])];
  let out = importLine(runtimeNames, runtime);
  const typeNames = [...service.methods.flatMap((m) => [m.types.request, m.types.response, m.types.error]), ...service.events.map((e) => e.payloadType)];
  if (typeNames.length > 0) out += importLine([...new Set(typeNames)].sort(), "./types.js", true);
  const shared = new Map(model.shared.map((d) => [d.name, d.schema]));
  const defs = Object.fromEntries([
    ...service.ownDefs.map((d) => [d.name, d.schema] as const),
    ...service.sharedTypes.map((n) => [n, shared.get(n)] as const),
  ]);
  const head: Record<string, unknown> = {
    name: service.name,
    version: service.version,
    queue: service.queue,
    ...(service.unknownProperties === "reject" ? { unknownProperties: service.unknownProperties } : {}),
    description: service.description,
    ...(Object.keys(defs).length > 0 ? { defs } : {}),
  };
  const lines = Object.entries(head).map(([k, v]) => `  ${propertyKey(k)}: ${literal(v, "  ")},\n`);
  const methods = service.methods.map((m) => `${jsDocBlock(m.description, "    ")}    ${m.tsName}: ${methodLiteral(m, "    ")},\n`);
  const methodsText = methods.length === 0 ? "  methods: {},\n" : `  methods: {\n${methods.join("")}  },\n`;
  // Services without events keep the runtime's default exchange and an unchanged descriptor.
  const hasEvents = service.events.length > 0;
  const exchangeText = hasEvents || service.exchange.explicit ? `  exchange: ${literal({ name: service.exchange.name, type: service.exchange.type }, "  ")},\n` : "";
  const events = service.events.map((e) => `${jsDocBlock(e.description, "    ")}    ${e.tsName}: ${eventLiteral(e, "    ")},\n`);
  const eventsText = hasEvents ? `  events: {\n${events.join("")}  },\n` : "";
  const initializer = `defineService({\n${lines.join("")}${methodsText}${exchangeText}${eventsText}})`;
  out += "\n";
  out += docComment(
    docText(
      `${service.description}\n\nDescriptor of ${service.name} ${service.version}; default queue \`${service.queue}\`${hasEvents ? `; events on the ${service.exchange.type} exchange \`${service.exchange.name}\`` : ""}.`,
    ),
  );
  return `${out}export const ${service.names.descriptor} = ${initializer};\n`;
}
