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

/** A service as generated code writes it. */
export interface ServiceSpec<M extends Record<string, MethodSpec<any, any, any>>> {
  /** Service name from the contract, e.g. `Calculator`. */
  readonly name: string;
  /** Contract version (semver), for humans and logs. */
  readonly version: string;
  /** Default request queue, e.g. `rpc.Calculator`; overridable at run time. */
  readonly queue: string;
  /** From the contract's `description`. */
  readonly description?: string;
  /** Shared schemas that method schemas reference as `#/$defs/<name>`. */
  readonly defs?: Readonly<Record<string, JsonSchema>>;
  /** Methods keyed by their TypeScript name (e.g. `addPoint`); each carries its wire `name`. */
  readonly methods: M;
}

/** A complete service descriptor as the runtime reads it. */
export interface ServiceDescriptor<M extends Record<string, MethodDescriptor<any, any, any>> = Record<string, MethodDescriptor<any, any, any>>> {
  /** Service name from the contract. */
  readonly name: string;
  /** Contract version. */
  readonly version: string;
  /** Default request queue. */
  readonly queue: string;
  /** From the contract's `description`. */
  readonly description?: string;
  /** Shared schemas (`#/$defs/<name>`); `{}` when none. */
  readonly defs: Readonly<Record<string, JsonSchema>>;
  /** Methods keyed by TypeScript name, each bound to this service. Frozen. */
  readonly methods: M;
}

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
export function defineService<M extends Record<string, MethodSpec<any, any, any>>>(
  spec: ServiceSpec<M>,
): ServiceDescriptor<BoundMethods<M>> {
  const methods: Record<string, MethodDescriptor> = {};
  const service = {
    name: spec.name,
    version: spec.version,
    queue: spec.queue,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    defs: spec.defs ?? {},
    methods,
  } as ServiceDescriptor;
  const wireNames = new Set<string>();
  for (const [key, m] of Object.entries(spec.methods)) {
    if (wireNames.has(m.name)) throw new Error(`${spec.name}: two methods share the wire name "${m.name}"`);
    wireNames.add(m.name);
    methods[key] = Object.freeze({ ...m, errors: m.errors ?? {}, service });
  }
  Object.freeze(methods);
  return Object.freeze(service) as unknown as ServiceDescriptor<BoundMethods<M>>;
}
