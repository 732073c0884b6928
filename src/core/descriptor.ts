/**
 * The contract between codegen and runtime: a plain data table of a service
 * (name, queue, methods, schemas). Generated `descriptor.ts` files build one
 * with {@link defineService} and {@link method}; the runtime reads nothing else.
 */
import type { RpcError } from "./errors.js";

/** A JSON Schema (draft 2020-12) as plain data. */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

/** The shape of one declared application error: its code and its data type. */
export interface ErrorShape {
  readonly code: string;
  readonly data?: unknown;
}

/** A declared application error of a method, as written in the contract. */
export interface ErrorSpec {
  /** What the error means and what a caller should do about it. */
  readonly description?: string;
  /** Schema of the error's `data`; absent when the error carries none. */
  readonly data?: JsonSchema;
}

/**
 * One method as generated code writes it. `Req`, `Res` and `Err` exist only at
 * the type level; they are what the generated types say the schemas mean.
 */
export interface MethodSpec<Req = unknown, Res = unknown, Err extends ErrorShape = ErrorShape> {
  /** Wire name as written in the contract (the request's `type` property), e.g. `add_point`. */
  readonly name: string;
  /** From the contract's `description`. */
  readonly description?: string;
  /** Request schema; `$ref`s point into the service's `defs` as `#/$defs/<name>`. */
  readonly request: JsonSchema;
  /** Response schema, same `$ref` rules. */
  readonly response: JsonSchema;
  /** Declared application errors by code. */
  readonly errors?: Readonly<Record<string, ErrorSpec>>;
  /** The method's default call timeout. */
  readonly timeoutMs?: number;
  /** Safe to run twice: documented to callers as retryable after `timeout` / `connection_lost`. @default false */
  readonly idempotent?: boolean;
  /** Type-level only; never present at run time. */
  readonly "~types"?: { readonly request: Req; readonly response: Res; readonly error: Err };
}

/** A method bound to its service: the spec plus its wire name and service. */
export interface MethodDescriptor<Req = unknown, Res = unknown, Err extends ErrorShape = ErrorShape>
  extends MethodSpec<Req, Res, Err> {
  /** Declared errors by code; `{}` when none. */
  readonly errors: Readonly<Record<string, ErrorSpec>>;
  /** The service this method belongs to. */
  readonly service: ServiceDescriptor;
}

/** Kind of a service's event exchange: how routing keys select subscriber queues. */
export type ExchangeType = "topic" | "direct" | "fanout";

/** The exchange a service publishes its events to. */
export interface ExchangeSpec {
  /** Exchange name, e.g. `events.Orders`; overridable at run time. */
  readonly name: string;
  /** `topic`: bindings match with `*` (one word) and `#` (any words); `direct`: exact key; `fanout`: every bound queue. */
  readonly type: ExchangeType;
}

/**
 * One event as generated code writes it. `Payload` exists only at the type
 * level; it is what the generated type says the payload schema means.
 */
export interface EventSpec<Payload = unknown> {
  /** Wire name as written in the contract (the message's `type` property), e.g. `order_created`. */
  readonly name: string;
  /** From the contract's `description`. */
  readonly description?: string;
  /**
   * Routing key, possibly with `{field}` placeholders that are filled from the
   * payload's top-level fields on publish, e.g. `orders.{region}.created`.
   */
  readonly routingKey: string;
  /** Payload schema; `$ref`s point into the service's `defs` as `#/$defs/<name>`. */
  readonly payload: JsonSchema;
  /** Type-level only; never present at run time. */
  readonly "~types"?: { readonly payload: Payload };
}

/** An event bound to its service: the spec plus a back-reference to the service. */
export interface EventDescriptor<Payload = unknown> extends EventSpec<Payload> {
  /** The service this event belongs to. */
  readonly service: ServiceDescriptor;
}

/** What a receiving end does with object properties its contract does not know: `drop` (tolerant, the default) or `reject` (strict). */
export type UnknownProperties = "drop" | "reject";

/** A service as generated code writes it. */
export interface ServiceSpec<
  M extends Record<string, MethodSpec<any, any, any>>,
  E extends Record<string, EventSpec<any>> = Record<never, never>,
> {
  /** Service name from the contract, e.g. `Calculator`. */
  readonly name: string;
  /** Contract version (semver): sent with every request and event; peers on another compatibility line are refused (docs/EVOLUTION.md). */
  readonly version: string;
  /** Default request queue, e.g. `rpc.Calculator`; overridable at run time. */
  readonly queue: string;
  /** From the contract's `description`. */
  readonly description?: string;
  /**
   * What a receiving end does with object properties its contract does not
   * know, where the schema forbids additional properties: `drop` them (a
   * newer compatible contract may send them) or `reject` the message.
   * @default "drop"
   */
  readonly unknownProperties?: UnknownProperties;
  /** Shared schemas that method schemas reference as `#/$defs/<name>`. */
  readonly defs?: Readonly<Record<string, JsonSchema>>;
  /** Methods keyed by their TypeScript name (e.g. `addPoint`); each carries its wire `name`. */
  readonly methods: M;
  /** The exchange events are published to; required when `events` is not empty. */
  readonly exchange?: ExchangeSpec;
  /** Events keyed by their TypeScript name (e.g. `orderCreated`); each carries its wire `name`. */
  readonly events?: E;
}

/** A complete service descriptor as the runtime reads it. */
export interface ServiceDescriptor<
  M extends Record<string, MethodDescriptor<any, any, any>> = Record<string, MethodDescriptor<any, any, any>>,
  E extends Record<string, EventDescriptor<any>> = Record<string, EventDescriptor<any>>,
> {
  /** Service name from the contract. */
  readonly name: string;
  /** Contract version (semver). */
  readonly version: string;
  /** Default request queue. */
  readonly queue: string;
  /** From the contract's `description`. */
  readonly description?: string;
  /** What receivers do with unknown properties. @default "drop" */
  readonly unknownProperties: UnknownProperties;
  /** Shared schemas (`#/$defs/<name>`); `{}` when none. */
  readonly defs: Readonly<Record<string, JsonSchema>>;
  /** Methods keyed by TypeScript name, each bound to this service. Frozen. */
  readonly methods: M;
  /** The event exchange. @default `{ name: "events.<Service>", type: "topic" }` */
  readonly exchange: ExchangeSpec;
  /** Events keyed by TypeScript name, each bound to this service; `{}` when none. Frozen. */
  readonly events: E;
}

/** Payload type of an event descriptor. */
export type PayloadOf<E> = E extends EventSpec<infer P> ? P : never;
/** Request type of a method descriptor. */
export type RequestOf<M> = M extends MethodSpec<infer Req, any, any> ? Req : never;
/** Response type of a method descriptor. */
export type ResponseOf<M> = M extends MethodSpec<any, infer Res, any> ? Res : never;
/** Declared-error union of a method descriptor (`never` when it declares none). */
export type ErrorOf<M> = M extends MethodSpec<any, any, infer Err> ? Err : never;

/** The {@link RpcError} a caller sees for a declared error: `code` narrows `data`. */
export type DeclaredError<E extends ErrorShape> = E extends ErrorShape ? RpcError<E["code"], E["data"]> : never;

type BoundMethods<M extends Record<string, MethodSpec<any, any, any>>> = {
  readonly [K in keyof M]: M[K] extends MethodSpec<infer Req, infer Res, infer Err>
    ? MethodDescriptor<Req, Res, Err>
    : never;
};

type BoundEvents<E extends Record<string, EventSpec<any>>> = {
  readonly [K in keyof E]: E[K] extends EventSpec<infer P> ? EventDescriptor<P> : never;
};

/** The default exchange of a service's events: `events.<Service>`, topic. Codegen and runtime both use it. */
export function defaultExchange(service: string): ExchangeSpec {
  return { name: `events.${service}`, type: "topic" };
}

/** The default request queue of a service: `rpc.<Service>`. Codegen and runtime both use it. */
export function defaultQueue(service: string): string {
  return `rpc.${service}`;
}

/** Declares one event with its payload type. Identity at run time, like {@link method}. */
export function event<Payload>(spec: EventSpec<Payload>): EventSpec<Payload> {
  return spec;
}

/**
 * Declares one method with its types. Identity at run time; used by generated
 * descriptors so the schemas and the TypeScript types travel together.
 */
export function method<Req, Res, Err extends ErrorShape = never>(spec: MethodSpec<Req, Res, Err>): MethodSpec<Req, Res, Err> {
  return spec;
}

/**
 * Builds a frozen {@link ServiceDescriptor}: each method gets a
 * back-reference to its service. Throws if two methods share a wire name.
 */
export function defineService<M extends Record<string, MethodSpec<any, any, any>>, E extends Record<string, EventSpec<any>> = Record<never, never>>(
  spec: ServiceSpec<M, E>,
): ServiceDescriptor<BoundMethods<M>, BoundEvents<E>> {
  const methods: Record<string, MethodDescriptor> = {};
  const events: Record<string, EventDescriptor> = {};
  const service = {
    name: spec.name,
    version: spec.version,
    queue: spec.queue,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    unknownProperties: spec.unknownProperties ?? "drop",
    defs: spec.defs ?? {},
    methods,
    exchange: Object.freeze({ ...(spec.exchange ?? defaultExchange(spec.name)) }),
    events,
  } as ServiceDescriptor;
  const wireNames = new Set<string>();
  for (const [key, m] of Object.entries(spec.methods)) {
    if (wireNames.has(m.name)) throw new Error(`${spec.name}: two methods share the wire name "${m.name}"`);
    wireNames.add(m.name);
    methods[key] = Object.freeze({ ...m, errors: m.errors ?? {}, service });
  }
  Object.freeze(methods);
  const eventNames = new Set<string>();
  for (const [key, e] of Object.entries(spec.events ?? {})) {
    if (eventNames.has(e.name)) throw new Error(`${spec.name}: two events share the wire name "${e.name}"`);
    eventNames.add(e.name);
    events[key] = Object.freeze({ ...e, service });
  }
  Object.freeze(events);
  return Object.freeze(service) as unknown as ServiceDescriptor<BoundMethods<M>, BoundEvents<E>>;
}
