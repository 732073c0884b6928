/**
 * Schema validation with Ajv (draft 2020-12). The only file that imports ajv.
 * Every schema is compiled once per method descriptor and cached; a call only
 * runs the compiled function.
 *
 * Senders check strictly ({@link Check}). Receivers ({@link Receive}) are
 * tolerant unless the contract says `unknownProperties: "reject"`: where a
 * schema forbids additional properties, properties it does not know are
 * dropped instead of refused, so a peer on a newer compatible contract that
 * added fields is understood (docs/EVOLUTION.md). A message that passes the
 * strict check costs nothing more; only one that fails it on an unknown
 * property is copied and checked again with the unknown properties removed.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { EventDescriptor, JsonSchema, MethodDescriptor, UnknownProperties } from "./descriptor.js";
import type { ValidationIssue } from "./errors.js";
import { useFastStringLength } from "./string-length.js";

/** Returns `undefined` when `value` is valid, else every failing path. */
export type Check = (value: unknown) => ValidationIssue[] | undefined;

/** A receiver's refusal: why the value does not fit the contract. */
export class Invalid {
  constructor(readonly issues: ValidationIssue[]) {}
}

/**
 * A receiving end's check: returns the value to use (the same object when it
 * fits as it is, else a copy without the unknown properties) or an
 * {@link Invalid}.
 */
export type Receive = (value: unknown) => unknown;

/** The compiled checks of one method. */
export interface MethodChecks {
  /** Strict: the caller checks a request before sending it. */
  readonly request: Check;
  /** Strict: the server checks a handler's result before replying. */
  readonly response: Check;
  /** By declared error code, strict (the server); an error without a data schema accepts only `undefined`. */
  readonly errors: ReadonlyMap<string, Check>;
  /** The server receiving a request. */
  readonly receiveRequest: Receive;
  /** The caller receiving a result. */
  readonly receiveResponse: Receive;
  /** The caller receiving a declared error's data, by code. */
  readonly receiveErrors: ReadonlyMap<string, Receive>;
}

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => void;

/**
 * The one Ajv set-up of warren (draft 2020-12, every error, formats checked),
 * shared by the runtime's validators and the generator's contract checks so
 * that a schema means the same to both. `options` adds to it (the generator
 * asks for `verbose`).
 */
export function createAjv(options: { verbose?: boolean; removeAdditional?: boolean; validateSchema?: boolean } = {}): Ajv2020 {
  // strict: false — contracts may carry annotation keywords (e.g. `tsType`) Ajv does not know.
  const instance = new Ajv2020({ allErrors: true, strict: false, validateFormats: true, ...options });
  addFormats(instance);
  // maxLength / minLength count code points only when a string's length cannot decide (same results and errors as Ajv's).
  useFastStringLength(instance);
  return instance;
}

const ajv = createAjv();
/** Removes what `additionalProperties: false` forbids instead of failing on it; only for receivers. */
let dropping: Ajv2020 | undefined;

const cache = new WeakMap<MethodDescriptor<any, any, any>, MethodChecks>();

/** The compiled checks for `method`, compiled on first use. Throws if a schema does not compile (a codegen bug). */
export function checksFor(method: MethodDescriptor<any, any, any>): MethodChecks {
  let checks = cache.get(method);
  if (checks === undefined) {
    const { defs, unknownProperties } = method.service;
    const errors = new Map<string, Check>();
    const receiveErrors = new Map<string, Receive>();
    for (const [code, spec] of Object.entries(method.errors)) {
      const data = spec.data === undefined ? undefined : compileBoth(spec.data, defs, unknownProperties);
      errors.set(code, data?.check ?? isUndefined);
      // Data on an error that declares none: a newer contract added it. Dropped, unless receiving is strict.
      receiveErrors.set(code, data?.receive ?? (unknownProperties === "reject" ? receiveUndefined : dropData));
    }
    const request = compileBoth(method.request, defs, unknownProperties);
    const response = compileBoth(method.response, defs, unknownProperties);
    checks = { request: request.check, response: response.check, errors, receiveRequest: request.receive, receiveResponse: response.receive, receiveErrors };
    cache.set(method, checks);
  }
  return checks;
}

const eventCache = new WeakMap<EventDescriptor<any>, { check: Check; receive: Receive }>();

function eventChecks(event: EventDescriptor<any>): { check: Check; receive: Receive } {
  let checks = eventCache.get(event);
  if (checks === undefined) {
    checks = compileBoth(event.payload, event.service.defs, event.service.unknownProperties);
    eventCache.set(event, checks);
  }
  return checks;
}

/** The compiled strict payload check of `event` (the publisher's), compiled on first use. */
export function payloadCheck(event: EventDescriptor<any>): Check {
  return eventChecks(event).check;
}

/** The subscriber's check of `event`'s payload (see {@link Receive}). */
export function payloadReceive(event: EventDescriptor<any>): Receive {
  return eventChecks(event).receive;
}

/** Compiles `schema` with `defs` available as `#/$defs/<name>`. */
export function compile(schema: JsonSchema, defs: Readonly<Record<string, JsonSchema>>): Check {
  const validate = ajv.compile(withDefs(schema, defs));
  return (value) => (validate(value) ? undefined : toIssues(validate));
}

function withDefs(schema: JsonSchema, defs: Readonly<Record<string, JsonSchema>>): object {
  return typeof schema === "boolean"
    ? { $defs: defs, ...(schema ? {} : { not: {} }) }
    : { ...schema, $defs: { ...defs, ...((schema.$defs as object | undefined) ?? {}) } };
}

/** The strict check of `schema` and its receiver; the dropping validator is compiled on the first message that needs it. */
function compileBoth(schema: JsonSchema, defs: Readonly<Record<string, JsonSchema>>, unknown: UnknownProperties): { check: Check; receive: Receive } {
  const root = withDefs(schema, defs);
  const validate = ajv.compile(root);
  const check: Check = (value) => (validate(value) ? undefined : toIssues(validate));
  let drop: ValidateFunction | undefined;
  const receive: Receive = (value) => {
    if (validate(value)) return value;
    if (unknown === "reject" || !validate.errors!.some((e) => e.keyword === "additionalProperties")) return new Invalid(toIssues(validate));
    dropping ??= createAjv({ removeAdditional: true });
    drop ??= dropping.compile(root);
    const copy = structuredClone(value);
    return drop(copy) ? copy : new Invalid(toIssues(drop));
  };
  return { check, receive };
}

function dropData(): unknown {
  return undefined;
}

function receiveUndefined(value: unknown): unknown {
  const issues = isUndefined(value);
  return issues === undefined ? value : new Invalid(issues);
}

function isUndefined(value: unknown): ValidationIssue[] | undefined {
  return value === undefined ? undefined : [{ path: "", message: "must be absent (the error declares no data)" }];
}

function toIssues(validate: ValidateFunction): ValidationIssue[] {
  return (validate.errors ?? []).map(toIssue);
}

function toIssue(e: ErrorObject): ValidationIssue {
  const params = e.params as { missingProperty?: string; additionalProperty?: string };
  if (e.keyword === "required" && params.missingProperty !== undefined) {
    return { path: `${e.instancePath}/${escapePointer(params.missingProperty)}`, message: "is required" };
  }
  if (e.keyword === "additionalProperties" && params.additionalProperty !== undefined) {
    return { path: `${e.instancePath}/${escapePointer(params.additionalProperty)}`, message: "is not allowed" };
  }
  return { path: e.instancePath, message: e.message ?? e.keyword };
}

function escapePointer(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}
