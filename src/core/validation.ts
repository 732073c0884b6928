/**
 * Schema validation with Ajv (draft 2020-12). The only file that imports ajv.
 * Every schema is compiled once per method descriptor and cached; a call only
 * runs the compiled function.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { EventDescriptor, JsonSchema, MethodDescriptor } from "./descriptor.js";
import type { ValidationIssue } from "./errors.js";
import { useFastStringLength } from "./string-length.js";

/** Returns `undefined` when `value` is valid, else every failing path. */
export type Check = (value: unknown) => ValidationIssue[] | undefined;

/** The compiled checks of one method. */
export interface MethodChecks {
  readonly request: Check;
  readonly response: Check;
  /** By declared error code; an error without a data schema accepts only `undefined`. */
  readonly errors: ReadonlyMap<string, Check>;
}

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => void;

/**
 * The one Ajv set-up of warren (draft 2020-12, every error, formats checked),
 * shared by the runtime's validators and the generator's contract checks so
 * that a schema means the same to both. `options` adds to it (the generator
 * asks for `verbose`).
 */
export function createAjv(options: { verbose?: boolean } = {}): Ajv2020 {
  // strict: false — contracts may carry annotation keywords (e.g. `tsType`) Ajv does not know.
  const instance = new Ajv2020({ allErrors: true, strict: false, validateFormats: true, ...options });
  addFormats(instance);
  // maxLength / minLength count code points only when a string's length cannot decide (same results and errors as Ajv's).
  useFastStringLength(instance);
  return instance;
}

const ajv = createAjv();

const cache = new WeakMap<MethodDescriptor<any, any, any>, MethodChecks>();

/** The compiled checks for `method`, compiled on first use. Throws if a schema does not compile (a codegen bug). */
export function checksFor(method: MethodDescriptor<any, any, any>): MethodChecks {
  let checks = cache.get(method);
  if (checks === undefined) {
    const defs = method.service.defs;
    const errors = new Map<string, Check>();
    for (const [code, spec] of Object.entries(method.errors)) {
      errors.set(code, spec.data === undefined ? isUndefined : compile(spec.data, defs));
    }
    checks = { request: compile(method.request, defs), response: compile(method.response, defs), errors };
    cache.set(method, checks);
  }
  return checks;
}

const eventCache = new WeakMap<EventDescriptor<any>, Check>();

/** The compiled payload check of `event`, compiled on first use. */
export function payloadCheck(event: EventDescriptor<any>): Check {
  let check = eventCache.get(event);
  if (check === undefined) {
    check = compile(event.payload, event.service.defs);
    eventCache.set(event, check);
  }
  return check;
}

/** Compiles `schema` with `defs` available as `#/$defs/<name>`. */
export function compile(schema: JsonSchema, defs: Readonly<Record<string, JsonSchema>>): Check {
  const root =
    typeof schema === "boolean"
      ? { $defs: defs, ...(schema ? {} : { not: {} }) }
      : { ...schema, $defs: { ...defs, ...((schema.$defs as object | undefined) ?? {}) } };
  const validate = ajv.compile(root);
  return (value) => (validate(value) ? undefined : toIssues(validate));
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
