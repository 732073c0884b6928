/**
 * events.ts of a service with events: a publisher class (`publishOrderCreated`)
 * and a subscriber class (`onOrderCreated`), each method a one-line call into
 * the event transport, like the RPC client stub.
 */
import type { SourceFile } from "ts-morph";
import type { EventModel, ServiceModel } from "./model.js";
import { eventMemberNames } from "./naming.js";
import { docText } from "./text.js";

function eventDoc(e: EventModel, service: ServiceModel, extra: string): string {
  const key = service.exchange.type === "fanout" ? "" : ` Routing key \`${e.routingKey}\`.`;
  return docText(`${e.description}\n\n${extra}${key}`);
}

/** Fills `file` with `<Service>Publisher` and `<Service>Subscriber`. */
export function emitEvents(file: SourceFile, service: ServiceModel, runtime: string): void {
  const { descriptor, publisher, subscriber } = service.names;
  const { name: exchange, type } = service.exchange;
  file.addImportDeclaration({
    isTypeOnly: true,
    moduleSpecifier: runtime,
    namedImports: ["EventHandler", "EventTransport", "PublishOptions", "SubscribeOptions", "Subscription"],
  });
  file.addImportDeclaration({ moduleSpecifier: "./descriptor.js", namedImports: [descriptor] });
  file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: "./types.js", namedImports: [...new Set(service.events.map((e) => e.payloadType))].sort() });
  const transport = { name: "#transport", isReadonly: true, type: "EventTransport" };
  const ctor = {
    docs: ["@param transport Carries the events, e.g. `connection.events()`."],
    parameters: [{ name: "transport", type: "EventTransport" }],
    statements: "this.#transport = transport;",
  };
  file.addClass({
    name: publisher,
    isExported: true,
    docs: [docText(`${service.description}\n\nPublishes the ${service.name} events to the ${type} exchange \`${exchange}\`. Each method validates the payload (\`invalid_event\` and nothing sent when it does not match) and resolves once the broker has confirmed the event.`)],
    properties: [transport],
    // Validators compiled now, not on the first publish.
    ctors: [{ ...ctor, statements: [ctor.statements, `transport.prepare?.(${descriptor});`] }],
    methods: service.events.map((e) => ({
      name: eventMemberNames(e.tsName).publish,
      docs: [eventDoc(e, service, `Publishes \`${e.wireName}\`.`)],
      parameters: [
        { name: "payload", type: e.payloadType },
        { name: "options", type: "PublishOptions", hasQuestionToken: true },
      ],
      returnType: "Promise<void>",
      statements: `return this.#transport.publish(${descriptor}.events.${e.tsName}, payload, options);`,
    })),
  });
  file.addClass({
    name: subscriber,
    isExported: true,
    docs: [docText(`${service.description}\n\nSubscribes to the ${service.name} events on \`${exchange}\`. Without a \`group\` each subscriber sees every event (broadcast); subscribers sharing a \`group\` share one durable queue, so each event is handled once per group. Handlers get validated payloads; a throwing handler is retried, then the event is dead-lettered.`)],
    properties: [transport],
    ctors: [ctor],
    methods: service.events.map((e) => ({
      name: eventMemberNames(e.tsName).on,
      docs: [eventDoc(e, service, `Runs \`handler\` for each \`${e.wireName}\` event.`)],
      parameters: [
        { name: "handler", type: `EventHandler<${e.payloadType}>` },
        { name: "options", type: "SubscribeOptions", hasQuestionToken: true },
      ],
      returnType: "Promise<Subscription>",
      statements: `return this.#transport.subscribe(${descriptor}.events.${e.tsName}, handler, options);`,
    })),
  });
}
