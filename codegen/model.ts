/**
 * Stage 2: turn loaded contracts into a plain-data model that the emitters
 * print without further decisions. All semantic checks live here: names that
 * are reserved or collide, framework error codes, duplicate services and
 * queues, unresolved `$ref`s (through the bundler).
 */
import { Code } from "../src/core/codes.js";
import { defaultExchange, defaultQueue } from "../src/core/descriptor.js";
import { placeholders } from "../src/core/routing.js";
import { Bundler, defsOf, pureRefName, type NamedSchema, type Schema } from "./bundle.js";
import { ErrorSink, pointerJoin } from "./errors.js";
import { checkValues } from "./strict.js";
import type { Loaded, LoadedFile } from "./load.js";
import {
  RESERVED_METHOD_NAMES,
  RUNTIME_IMPORTS,
  camelCase,
  errorDataTypeName,
  eventTypeName,
  methodTypeNames,
  serviceNames,
} from "./naming.js";

export type { NamedSchema, Schema } from "./bundle.js";

/** A declared application error of a method. */
export interface ErrorModel {
  readonly code: string;
  readonly description: string;
  readonly data?: Schema;
  /** Exported type of `data`, when the error carries data. */
  readonly dataType?: string;
}

/** One method, with its schemas already bundled. */
export interface MethodModel {
  /** Name on the wire, as written in the contract (`add_point`). */
  readonly wireName: string;
  /** TypeScript name (`addPoint`). */
  readonly tsName: string;
  readonly description: string;
  readonly request: Schema;
  readonly response: Schema;
  readonly errors: readonly ErrorModel[];
  readonly timeoutMs?: number;
  readonly idempotent?: boolean;
  /** Exported type names of the request, response and declared-error union. */
  readonly types: { readonly request: string; readonly response: string; readonly error: string };
}

/** One event, with its payload schema already bundled. */
export interface EventModel {
  /** Name on the wire (the message's `type`), as written in the contract (`order_created`). */
  readonly wireName: string;
  /** TypeScript name (`orderCreated`). */
  readonly tsName: string;
  readonly description: string;
  readonly payload: Schema;
  /** Routing key template, e.g. `orders.{region}.created`. */
  readonly routingKey: string;
  /** Exported type name of the payload (`OrderCreatedEvent`). */
  readonly payloadType: string;
}

/** The exchange a service's events go to. */
export interface ExchangeModel {
  readonly name: string;
  readonly type: "topic" | "direct" | "fanout";
  /** True when the contract wrote `exchange` (then the descriptor spells it out even without events). */
  readonly explicit: boolean;
}

/** One service, ready to emit. */
export interface ServiceModel {
  readonly name: string;
  readonly version: string;
  readonly queue: string;
  readonly description: string;
  /** What receivers do with unknown properties (the contract's `unknownProperties`). */
  readonly unknownProperties: "drop" | "reject";
  /** Contract file as shown to the user (`schemas/calculator.service.json`). */
  readonly file: string;
  /** Contract file relative to the schemas directory (`calculator.service.json`). */
  readonly key: string;
  readonly names: ReturnType<typeof serviceNames>;
  /** The file's own `$defs`, in contract order. */
  readonly ownDefs: readonly NamedSchema[];
  /** Shared type names this service uses (transitively), sorted. */
  readonly sharedTypes: readonly string[];
  readonly methods: readonly MethodModel[];
  readonly exchange: ExchangeModel;
  readonly events: readonly EventModel[];
}

/** Everything one codegen run emits. */
export interface Model {
  readonly services: readonly ServiceModel[];
  /** Every shared definition, bundled, with globally unique names. */
  readonly shared: readonly NamedSchema[];
  /** Shared files relative to the schemas directory, for the header of the shared types module. */
  readonly sharedFiles: readonly string[];
}

/** Builds the model or throws `CodegenErrors` listing every problem found. */
export function buildModel(loaded: Loaded): Model {
  const sink = new ErrorSink(loaded.locate);
  const bundler = new Bundler(loaded, sink);
  const services = loaded.services.map((file) => buildService(file, bundler, sink));
  checkAcrossServices(services, bundler.sharedDefs, sink);
  // default and examples values are checked once every $ref resolves.
  if (sink.errors.length === 0) checkDefaultsAndExamples(services, bundler.sharedDefs, sink);
  sink.throwIfAny();
  return { services, shared: bundler.sharedDefs, sharedFiles: [...loaded.shared.keys()] };
}

interface ServiceDoc {
  service: string;
  version: string;
  description: string;
  queue?: string;
  unknownProperties?: "drop" | "reject";
  methods?: Record<string, MethodDoc>;
  exchange?: { name?: string; type?: ExchangeModel["type"] };
  events?: Record<string, { description: string; payload: Schema; routingKey?: string }>;
}
interface MethodDoc {
  description: string;
  request: Schema;
  response: Schema;
  errors?: Record<string, { description: string; data?: Schema }>;
  timeoutMs?: number;
  idempotent?: boolean;
}

function buildService(file: LoadedFile, bundler: Bundler, sink: ErrorSink): ServiceModel {
  const doc = file.doc as unknown as ServiceDoc;
  const local = bundler.localNames(file);
  const direct = new Set<string>();
  const onShared = (name: string) => direct.add(name);
  const rewrite = (schema: Schema, pointer: string) => bundler.rewrite(schema, file, pointer, local, onShared);
  const names = new NameTable(file, sink);
  const service = serviceNames(doc.service);
  for (const n of RUNTIME_IMPORTS) names.claim(n, "", `an import from the warren runtime`);
  names.claim(service.descriptor, "/service", "the service descriptor");
  names.claim(service.client, "/service", "the client class");
  names.claim(service.handlers, "/service", "the handlers interface");
  names.claim(service.serve, "/service", "the serve function");

  const defNames = new Set<string>();
  const ownDefs = Object.entries(defsOf(file)).map(([key, schema]): NamedSchema => {
    const pointer = pointerJoin("/$defs", key);
    const name = local.get(key) ?? key;
    // Two keys with one PascalCase name were reported by the bundler already.
    if (!defNames.has(name)) names.claim(name, pointer, `the type of $defs/${key}`);
    defNames.add(name);
    return { name, schema: rewrite(schema as Schema, pointer), file: file.display, pointer };
  });

  const tsNames = new Map<string, string>();
  const methods = Object.entries(doc.methods ?? {}).map(([wireName, m]): MethodModel => {
    const at = pointerJoin("/methods", wireName);
    const tsName = camelCase(wireName);
    if (RESERVED_METHOD_NAMES.has(tsName) || RESERVED_METHOD_NAMES.has(wireName)) {
      const shown = tsName === wireName ? `"${wireName}"` : `"${wireName}" ("${tsName}" in TypeScript)`;
      sink.add(file.display, at, `method name ${shown} is reserved: it would clash with a built-in member of JavaScript objects or promises`);
    }
    const other = tsNames.get(tsName);
    if (other !== undefined) sink.add(file.display, at, `methods "${other}" and "${wireName}" both become "${tsName}" in TypeScript`);
    tsNames.set(tsName, wireName);
    const types = methodTypeNames(tsName);
    const request = rewrite(m.request, pointerJoin(at, "request"));
    const response = rewrite(m.response, pointerJoin(at, "response"));
    // After a method-name clash its type names clash too; one message is enough.
    const claim = other === undefined ? names.claim.bind(names) : () => undefined;
    if (pureRefName(request) !== types.request) claim(types.request, pointerJoin(at, "request"), `the request type of ${wireName}`);
    if (pureRefName(response) !== types.response) claim(types.response, pointerJoin(at, "response"), `the response type of ${wireName}`);
    claim(types.error, pointerJoin(at, "errors"), `the error union of ${wireName}`);
    const errors = Object.entries(m.errors ?? {}).map(([code, e]): ErrorModel => {
      const eAt = pointerJoin(pointerJoin(at, "errors"), code);
      if (Object.hasOwn(Code, code)) sink.add(file.display, eAt, `error code "${code}" is reserved for the framework; pick an application-specific code`);
      if (e.data === undefined) return { code, description: e.description };
      const dataType = errorDataTypeName(tsName, code);
      claim(dataType, pointerJoin(eAt, "data"), `the data type of error ${code}`);
      return { code, description: e.description, data: rewrite(e.data, pointerJoin(eAt, "data")), dataType };
    });
    return {
      wireName,
      tsName,
      description: m.description,
      request,
      response,
      errors,
      types,
      ...(m.timeoutMs === undefined ? {} : { timeoutMs: m.timeoutMs }),
      ...(m.idempotent === undefined ? {} : { idempotent: m.idempotent }),
    };
  });

  const eventTsNames = new Map<string, string>();
  const events = Object.entries(doc.events ?? {}).map(([wireName, e]): EventModel => {
    const at = pointerJoin("/events", wireName);
    const tsName = camelCase(wireName);
    const other = eventTsNames.get(tsName);
    if (other !== undefined) sink.add(file.display, at, `events "${other}" and "${wireName}" both become "${tsName}" in TypeScript`);
    eventTsNames.set(tsName, wireName);
    const payloadType = eventTypeName(tsName);
    const payload = rewrite(e.payload, pointerJoin(at, "payload"));
    if (other === undefined && pureRefName(payload) !== payloadType) names.claim(payloadType, pointerJoin(at, "payload"), `the payload type of event ${wireName}`);
    const routingKey = e.routingKey ?? wireName;
    checkPlaceholders(routingKey, e.payload, file, pointerJoin(at, "routingKey"), sink);
    return { wireName, tsName, description: e.description, payload, routingKey, payloadType };
  });
  if (events.length > 0) {
    names.claim(service.publisher, "/service", "the publisher class");
    names.claim(service.subscriber, "/service", "the subscriber class");
  }
  const exchange: ExchangeModel = {
    name: doc.exchange?.name ?? defaultExchange(doc.service).name,
    type: doc.exchange?.type ?? "topic",
    explicit: doc.exchange !== undefined,
  };

  const sharedTypes = bundler.closure(direct);
  for (const name of sharedTypes) names.claim(name, "", `the shared type ${name}`);
  return {
    name: doc.service,
    version: doc.version,
    queue: doc.queue ?? defaultQueue(doc.service),
    description: doc.description,
    unknownProperties: doc.unknownProperties ?? "drop",
    file: file.display,
    key: file.key,
    names: service,
    ownDefs,
    sharedTypes,
    methods,
    exchange,
    events,
  };
}

/** Every `default` and `examples` value validates against the schema it sits in. */
function checkDefaultsAndExamples(services: readonly ServiceModel[], shared: readonly NamedSchema[], sink: ErrorSink): void {
  const sharedDefs = Object.fromEntries(shared.map((d) => [d.name, d.schema]));
  for (const d of shared) checkValues(d.schema, sharedDefs, d.file, d.pointer, sink);
  for (const s of services) {
    const defs = { ...sharedDefs, ...Object.fromEntries(s.ownDefs.map((d) => [d.name, d.schema])) };
    for (const d of s.ownDefs) checkValues(d.schema, defs, s.file, d.pointer, sink);
    for (const m of s.methods) {
      const at = pointerJoin("/methods", m.wireName);
      checkValues(m.request, defs, s.file, `${at}/request`, sink);
      checkValues(m.response, defs, s.file, `${at}/response`, sink);
      for (const e of m.errors) if (e.data !== undefined) checkValues(e.data, defs, s.file, `${pointerJoin(`${at}/errors`, e.code)}/data`, sink);
    }
    for (const e of s.events) checkValues(e.payload, defs, s.file, `${pointerJoin("/events", e.wireName)}/payload`, sink);
  }
}

/**
 * Each `{field}` of a routing key must be a required top-level field of the
 * payload, when the payload is an inline object schema or a `$ref` to one of
 * this file's `$defs` (other payloads are checked at publish time).
 */
function checkPlaceholders(routingKey: string, payload: Schema, file: LoadedFile, pointer: string, sink: ErrorSink): void {
  const fields = placeholders(routingKey);
  if (fields.length === 0) return;
  let schema: Schema | undefined = payload;
  const ref = typeof payload === "object" ? payload.$ref : undefined;
  if (typeof ref === "string") {
    const local = /^#\/\$defs\/([^/]+)$/.exec(ref)?.[1];
    schema = local === undefined ? undefined : (defsOf(file)[local] as Schema | undefined);
  }
  if (typeof schema !== "object" || schema.type !== "object") return;
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  for (const field of fields) {
    if (!required.has(field)) sink.add(file.display, pointer, `routing key placeholder {${field}} must name a required top-level field of the payload`);
  }
}

/** The exported names of one service's modules; a second claim of a name is an error. */
class NameTable {
  readonly #owners = new Map<string, string>();
  constructor(
    private readonly file: LoadedFile,
    private readonly sink: ErrorSink,
  ) {}

  claim(name: string, pointer: string, what: string): void {
    const owner = this.#owners.get(name);
    if (owner === undefined) this.#owners.set(name, what);
    else this.sink.add(this.file.display, pointer, `the generated name "${name}" of ${what} collides with ${owner}; rename one`);
  }
}

/** Service names, output directories, queues and top-level exported names are unique across services. */
function checkAcrossServices(services: readonly ServiceModel[], shared: readonly NamedSchema[], sink: ErrorSink): void {
  const seen = new Map<string, string>();
  for (const def of shared) seen.set(`export:${def.name}`, `the shared type in ${def.file}`);
  seen.set("dir:common", "the shared types directory");
  for (const s of services) {
    const claims: Array<[string, string, string]> = [
      [`service:${s.name}`, "/service", `service name "${s.name}"`],
      [`dir:${s.names.dir.toLowerCase()}`, "/service", `output directory "${s.names.dir}"`],
      [`queue:${s.queue}`, s.queue === defaultQueue(s.name) ? "/service" : "/queue", `queue "${s.queue}"`],
      ...(s.events.length > 0 || s.exchange.explicit
        ? [[`exchange:${s.exchange.name}`, s.exchange.explicit ? "/exchange" : "/service", `exchange "${s.exchange.name}"`] as [string, string, string]]
        : []),
      ...[s.names.descriptor, s.names.client, s.names.handlers, s.names.serve, s.names.types, ...(s.events.length > 0 ? [s.names.publisher, s.names.subscriber] : [])].map(
        (n): [string, string, string] => [`export:${n}`, "/service", `exported name "${n}"`],
      ),
    ];
    const reported = new Set<string>();
    for (const [key, pointer, what] of claims) {
      const owner = seen.get(key);
      if (owner === undefined) seen.set(key, s.file);
      else if (!reported.has(pointer + owner)) {
        reported.add(pointer + owner);
        sink.add(s.file, pointer, `${what} is already claimed by ${owner}`);
      }
    }
  }
}
