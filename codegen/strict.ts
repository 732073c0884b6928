/**
 * Strict checks of the JSON Schemas inside contracts, beyond what the
 * meta-schema can say: JSON Schema ignores keywords it does not know, so a
 * misspelt `"typ"` or `"minLenght"` would silently mean "anything". Here every
 * keyword must be known (or an `x-` extension), every `format` known, every
 * `required` name reachable where additional properties are forbidden, and
 * every `default` and `examples` value valid against its own schema.
 */
import { createAjv } from "../src/core/validation.js";
import { SCHEMA_LIST, SCHEMA_MAP, SCHEMA_ONE, type Schema } from "./bundle.js";
import { pointerJoin, type ErrorSink } from "./errors.js";
import { didYouMean } from "./suggest.js";

/** Every keyword of JSON Schema draft 2020-12 (core, applicator, unevaluated, validation, format, content, meta-data). */
export const KNOWN_KEYWORDS: ReadonlySet<string> = new Set([
  "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$defs", "$comment", "$vocabulary",
  "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "prefixItems", "items", "contains",
  "properties", "patternProperties", "additionalProperties", "propertyNames", "unevaluatedItems", "unevaluatedProperties",
  "type", "const", "enum", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
  "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required",
  "dependentRequired", "format", "contentEncoding", "contentMediaType", "contentSchema",
  "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
]);

/** Keywords refused elsewhere with a message of their own (codegen/bundle.ts). */
const REPORTED_ELSEWHERE = new Set(["tsType", "tsEnumNames", "definitions", "$recursiveRef", "$recursiveAnchor"]);

/** Keywords from other schema dialects, with what to write instead. */
const FOREIGN_HINTS: Readonly<Record<string, string>> = {
  nullable: 'JSON Schema has no "nullable"; allow null with "type": ["string", "null"] (or "anyOf" with {"type": "null"})',
  example: 'the keyword is "examples", a list: "examples": [ ... ]',
  dependencies: 'split into "dependentRequired" (names) and "dependentSchemas" (schemas), as draft 2020-12 does',
  additionalItems: 'draft 2020-12 spells a tuple as "prefixItems": [ ... ] with "items" for the rest',
};

let formats: readonly string[] | undefined;

/** Format names the runtime's validator checks. */
export function knownFormats(): readonly string[] {
  formats ??= Object.keys(createAjv().formats).sort();
  return formats;
}

/**
 * Checks one schema of a contract (as written, before `$ref`s are bundled)
 * and everything nested in it; problems go to `sink` with their pointers.
 */
export function checkSchema(schema: unknown, file: string, pointer: string, sink: ErrorSink): void {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return;
  const s = schema as Record<string, unknown>;
  for (const [keyword, value] of Object.entries(s)) {
    const at = pointerJoin(pointer, keyword);
    if (KNOWN_KEYWORDS.has(keyword)) {
      if (SCHEMA_ONE.has(keyword)) checkSchema(value, file, at, sink);
      else if (SCHEMA_LIST.has(keyword) && Array.isArray(value)) value.forEach((v, i) => checkSchema(v, file, pointerJoin(at, i), sink));
      else if (SCHEMA_MAP.has(keyword) && isObject(value)) for (const [k, v] of Object.entries(value)) checkSchema(v, file, pointerJoin(at, k), sink);
      continue;
    }
    if (REPORTED_ELSEWHERE.has(keyword) || keyword.startsWith("x-")) continue;
    const hint = FOREIGN_HINTS[keyword];
    sink.add(
      file,
      at,
      hint !== undefined
        ? `unknown keyword "${keyword}": ${hint}`
        : `unknown keyword "${keyword}"${didYouMean(keyword, KNOWN_KEYWORDS) || "; JSON Schema would ignore it (name your own annotations x-…)"}`,
    );
  }
  if (typeof s.format === "string" && !knownFormats().includes(s.format)) {
    const near = didYouMean(s.format, knownFormats());
    sink.add(file, pointerJoin(pointer, "format"), `unknown format "${s.format}"${near || `; known: ${knownFormats().join(", ")}`}`);
  }
  checkRequired(s, file, pointer, sink);
}

/** With additional properties forbidden, a `required` name missing from `properties` makes every value invalid. */
function checkRequired(s: Record<string, unknown>, file: string, pointer: string, sink: ErrorSink): void {
  if (!Array.isArray(s.required) || s.patternProperties !== undefined) return;
  // unevaluatedProperties also counts properties that subschemas evaluate.
  const composed = ["allOf", "anyOf", "oneOf", "$ref", "if", "dependentSchemas"].some((k) => s[k] !== undefined);
  const forbidding = s.additionalProperties === false ? "additionalProperties" : s.unevaluatedProperties === false && !composed ? "unevaluatedProperties" : undefined;
  if (forbidding === undefined) return;
  const properties = isObject(s.properties) ? Object.keys(s.properties) : [];
  s.required.forEach((name, i) => {
    if (typeof name !== "string" || properties.includes(name)) return;
    sink.add(
      file,
      pointerJoin(pointerJoin(pointer, "required"), i),
      `required property "${name}" is not in "properties" and ${forbidding} is false, so no value can pass${didYouMean(name, properties)}`,
    );
  });
}

/**
 * Checks every `default` and `examples` value inside a bundled schema against
 * the schema it sits in; `defs` are the bundled named schemas its `$ref`s
 * point to (`#/$defs/<Name>`).
 */
export function checkValues(schema: Schema, defs: Readonly<Record<string, Schema>>, file: string, pointer: string, sink: ErrorSink): void {
  if (typeof schema !== "object" || schema === null) return;
  const values: Array<[string, unknown]> = [];
  if (Object.hasOwn(schema, "default")) values.push([pointerJoin(pointer, "default"), schema.default]);
  if (Array.isArray(schema.examples)) schema.examples.forEach((v, i) => values.push([pointerJoin(pointerJoin(pointer, "examples"), i), v]));
  if (values.length > 0) {
    const validate = valueChecker(schema, defs);
    for (const [at, value] of values) {
      const problem = validate(value);
      if (problem !== undefined) sink.add(file, at, `${at.endsWith("/default") ? "default" : "example"} ${short(value)} does not match its schema: ${problem}`);
    }
  }
  for (const [keyword, value] of Object.entries(schema)) {
    const at = pointerJoin(pointer, keyword);
    if (SCHEMA_ONE.has(keyword) && isSchema(value)) checkValues(value, defs, file, at, sink);
    else if (SCHEMA_LIST.has(keyword) && Array.isArray(value)) value.forEach((v: Schema, i) => checkValues(v, defs, file, pointerJoin(at, i), sink));
    else if (SCHEMA_MAP.has(keyword) && isObject(value)) for (const [k, v] of Object.entries(value)) checkValues(v as Schema, defs, file, pointerJoin(at, k), sink);
  }
}

let ajv: ReturnType<typeof createAjv> | undefined;

/** A validator of `schema` (with `defs`) that returns the first problem as text, or `undefined`. */
function valueChecker(schema: Schema, defs: Readonly<Record<string, Schema>>): (value: unknown) => string | undefined {
  ajv ??= createAjv();
  const { default: _default, examples: _examples, ...rest } = schema as Record<string, unknown>;
  let validate: ReturnType<typeof ajv.compile>;
  try {
    validate = ajv.compile({ ...rest, $defs: defs });
  } catch (error) {
    return () => `the schema does not compile (${(error as Error).message})`;
  }
  return (value) => {
    if (validate(value)) return undefined;
    const e = validate.errors![0]!;
    const params = e.params as { additionalProperty?: string; missingProperty?: string };
    const detail = e.keyword === "additionalProperties" ? `property "${params.additionalProperty}" is not allowed` : e.message ?? e.keyword;
    return `${e.instancePath === "" ? "" : `${e.instancePath} `}${detail}`;
  };
}

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSchema(value: unknown): value is Schema {
  return typeof value === "boolean" || isObject(value);
}
