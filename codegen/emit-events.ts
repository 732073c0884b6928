/**
 * events.ts of a service with events: a publisher class (`publishOrderCreated`)
 * and a subscriber class (`onOrderCreated`), each method a one-line call into
 * the event transport, like the RPC client stub.
 */
import { docComment, importLine, params } from "./emit-text.js";
import type { EventModel, ServiceModel } from "./model.js";
import { eventMemberNames } from "./naming.js";
import { docText } from "./text.js";

function eventDoc(e: EventModel, service: ServiceModel, extra: string): string {
  const key = service.exchange.type === "fanout" ? "" : ` Routing key \`${e.routingKey}\`.`;
  return docText(`${e.description}\n\n${extra}${key}`);
}

/** The events module of `service`, `<Service>Publisher` and `<Service>Subscriber` (without the header). */
export function emitEvents(service: ServiceModel, runtime: string): string {
  const { descriptor, publisher, subscriber } = service.names;
  const { name: exchange, type } = service.exchange;
  let out = importLine(["EventHandler", "EventHandlers", "EventTransport", "PublishOptions", "SubscribeOptions", "Subscription"], runtime, true);
  out += importLine([descriptor], "./descriptor.js");
  out += importLine([...new Set(service.events.map((e) => e.payloadType))].sort(), "./types.js", true);
  const head = (name: string, doc: string, prepare: boolean) =>
    `${docComment(doc)}export class ${name} {\n  readonly #transport: EventTransport;\n\n` +
    docComment("@param transport Carries the events, e.g. `connection.events()`.", "  ") +
    `  constructor(transport: EventTransport) {\n    this.#transport = transport;\n` +
    // Validators compiled now, not on the first publish.
    (prepare ? `    transport.prepare?.(${descriptor});\n` : "") +
    "  }\n";
  out += `\n${head(publisher, docText(`${service.description}\n\nPublishes the ${service.name} events to the ${type} exchange \`${exchange}\`. Each method validates the payload (\`invalid_event\` and nothing sent when it does not match) and resolves once the broker has confirmed the event.`), true)}`;
  for (const e of service.events) {
    out += `\n${docComment(eventDoc(e, service, `Publishes \`${e.wireName}\`.`), "  ")}`;
    out += `  ${eventMemberNames(e.tsName).publish}(${params([["payload", e.payloadType], ["options", "PublishOptions", true]])}): Promise<void> {\n`;
    out += `    return this.#transport.publish(${descriptor}.events.${e.tsName}, payload, options);\n  }\n`;
  }
  out += "}\n";
  out += `\n${head(subscriber, docText(`${service.description}\n\nSubscribes to the ${service.name} events on \`${exchange}\`. Without a \`group\` each subscriber sees every event (broadcast); subscribers sharing a \`group\` share one durable queue, so each event is handled once per group. Handlers get validated payloads; a throwing handler is retried, then the event is dead-lettered.`), false)}`;
  for (const e of service.events) {
    out += `\n${docComment(eventDoc(e, service, `Runs \`handler\` for each \`${e.wireName}\` event.`), "  ")}`;
    out += `  ${eventMemberNames(e.tsName).on}(${params([["handler", `EventHandler<${e.payloadType}>`], ["options", "SubscribeOptions", true]])}): Promise<Subscription> {\n`;
    out += `    return this.#transport.subscribe(${descriptor}.events.${e.tsName}, handler, options);\n  }\n`;
  }
  const allDoc = `Runs each handler for its event, all through one queue: one consumer and one prefetch for the events given (at least one). A group's queue is \`${exchange}.<group>\`; an event of the service without a handler here is acknowledged and skipped.`;
  out += `\n${docComment(docText(allDoc), "  ")}`;
  out += `  subscribeAll(${params([["handlers", `EventHandlers<typeof ${descriptor}>`], ["options", "SubscribeOptions", true]])}): Promise<Subscription> {\n`;
  out += `    return this.#transport.subscribeAll(${descriptor}, handlers, options);\n  }\n`;
  return `${out}}\n`;
}
