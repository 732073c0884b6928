/**
 * types.ts of a service and of the shared types: json-schema-to-typescript
 * turns each named schema into one exported type; references between named
 * schemas stay references (`tsType`), so shared types are declared once and
 * imported.
 */
import { compile, type JSONSchema } from "json-schema-to-typescript";
import type { NamedSchema, Schema, ServiceModel } from "./model.js";
import { SCHEMA_LIST, SCHEMA_MAP, SCHEMA_ONE, pureRefName } from "./bundle.js";
import { docComment, formatTypeScript } from "./emit-text.js";
import { docText, stringLiteral } from "./text.js";

/** Type rules (documented in docs/SERVICE-FORMAT.md): absent additionalProperties means none, min/maxItems do not make tuples. */
const COMPILE_OPTIONS = {
  bannerComment: "",
  format: false,
  additionalProperties: false,
  ignoreMinAndMaxItems: true,
  declareExternallyReferenced: true,
  unknownAny: true,
  strictIndexSignatures: false,
} as const;

/** Copy of a bundled schema for json-schema-to-typescript: refs become type names, titles go (names come from the contract), text is comment-safe. */
function typeSchema(schema: Schema): JSONSchema {
  if (schema === true) return {};
  if (schema === false) return { tsType: "never" };
  const out: Record<string, unknown> = {};
  for (const [keyword, value] of Object.entries(schema)) {
    if (keyword === "$ref" && typeof value === "string") out.tsType = value.replace(/^#\/\$defs\//, "");
    else if (keyword === "title" || keyword === "$comment") continue;
    else if (keyword === "description" && typeof value === "string") out.description = docText(value);
    // Boolean subschemas stay as they are: json-schema-to-typescript reads `additionalProperties: false` itself.
    else if (SCHEMA_ONE.has(keyword) && typeof value === "object" && value !== null) out[keyword] = typeSchema(value as Schema);
    else if (SCHEMA_LIST.has(keyword) && Array.isArray(value)) out[keyword] = value.map((s: Schema) => typeSchema(s));
    else if (SCHEMA_MAP.has(keyword) && typeof value === "object" && value !== null) {
      out[keyword] = Object.fromEntries(Object.entries(value).map(([k, s]) => [k, typeSchema(s as Schema)]));
    } else out[keyword] = value;
  }
  if (isEmptyClosedObject(schema)) out.tsType = "Record<string, never>";
  const { tsType, description } = out as { tsType?: string; description?: string };
  if (tsType !== undefined) return description === undefined ? { tsType } : { tsType, description };
  return out as JSONSchema;
}

/**
 * An object schema whose type admits only `{}`: it declares no properties and
 * forbids others (or says nothing of them, which the type rules read as
 * forbidding). json-schema-to-typescript would print `{}`, a type every
 * non-null value (a string, an array) satisfies.
 */
function isEmptyClosedObject(schema: { readonly [keyword: string]: unknown }): boolean {
  if (schema.type !== "object" || (schema.additionalProperties !== false && schema.additionalProperties !== undefined)) return false;
  const declared = ["properties", "patternProperties", "unevaluatedProperties", "allOf", "anyOf", "oneOf", "$ref", "if", "dependentSchemas", "enum", "const"];
  return declared.every((k) => schema[k] === undefined || (k === "properties" && Object.keys(schema[k] as object).length === 0));
}

/**
 * Memo of formatted declarations by type name and schema: compiling one with
 * json-schema-to-typescript and formatting it costs a millisecond or more, so
 * watch mode (and a run in which services repeat a shape) pays it once per
 * distinct declaration.
 */
export type TypeCache = Map<string, Promise<string>>;

/** At most this many declarations stay memoised; past it the memo starts afresh. */
const TYPE_CACHE_LIMIT = 20_000;

/**
 * TypeScript declarations of named schemas, one per schema, in order, each
 * formatted and ending in a newline. With `lastEndsFile` the last one is
 * formatted as the end of a file that closes with a blank line, where
 * TypeScript's formatter inserts no semicolon after a final type alias (the
 * snapshots keep that quirk).
 */
export async function declareTypes(named: readonly NamedSchema[], cache: TypeCache = new Map(), lastEndsFile = false): Promise<string[]> {
  return Promise.all(
    named.map(({ name, schema }, i) => {
      const input = typeSchema(schema);
      const atEnd = lastEndsFile && i === named.length - 1;
      const key = `${name}\0${atEnd ? "end" : ""}\0${JSON.stringify(input)}`;
      let code = cache.get(key);
      if (code === undefined) {
        if (cache.size >= TYPE_CACHE_LIMIT) cache.clear();
        code = compileNamed(input, name, atEnd);
        cache.set(key, code);
        // A failed compile is not memoised: the next run tries again.
        code.catch(() => cache.delete(key));
      }
      return code;
    }),
  );
}

async function compileNamed(input: JSONSchema, name: string, atEnd: boolean): Promise<string> {
  const code = await compile(input, name, COMPILE_OPTIONS);
  if (!new RegExp(`^export (interface|type) ${name}\\b`, "m").test(code)) {
    throw new Error(`json-schema-to-typescript named the type for ${name} differently`);
  }
  // Doc text has no line separators left (docText), so these can only be inside string literals.
  const escaped = code.replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
  // Unindented and without semicolons as printed; a declaration formats the same alone as amid others.
  return formatTypeScript(`${escaped.trimEnd()}\n${atEnd ? "\n" : ""}`);
}

/** Every named schema a service's types.ts declares: own defs, then per method request, response, error data, then event payloads. */
export function serviceTypeSchemas(service: ServiceModel): NamedSchema[] {
  const out: NamedSchema[] = [...service.ownDefs];
  const at = (pointer: string) => ({ file: service.file, pointer });
  for (const m of service.methods) {
    if (pureRefName(m.request) !== m.types.request) out.push({ name: m.types.request, schema: withDoc(m.request, `Request of \`${m.wireName}\`: ${m.description}`), ...at("") });
    if (pureRefName(m.response) !== m.types.response) out.push({ name: m.types.response, schema: withDoc(m.response, `Response of \`${m.wireName}\`.`), ...at("") });
    for (const e of m.errors) {
      if (e.data !== undefined && e.dataType !== undefined) out.push({ name: e.dataType, schema: withDoc(e.data, `Data of the \`${e.code}\` error of \`${m.wireName}\`: ${e.description}`), ...at("") });
    }
  }
  for (const e of service.events) {
    if (pureRefName(e.payload) !== e.payloadType) out.push({ name: e.payloadType, schema: withDoc(e.payload, `Payload of the \`${e.wireName}\` event: ${e.description}`), ...at("") });
  }
  return out;
}

/** A schema with a description, keeping the schema's own when it has one. */
function withDoc(schema: Schema, fallback: string): Schema {
  if (typeof schema !== "object") return schema;
  return typeof schema.description === "string" ? schema : { description: fallback, ...schema };
}

/** Each method's declared-error union, `{ code: "x"; data: XData; } | { code: "y"; data?: undefined; }` or `never`, as formatted source text. */
export function errorUnions(service: ServiceModel): string {
  let out = "";
  for (const m of service.methods) {
    // Printed as TypeScript's formatter leaves it: a `;` after the last member too.
    const members = m.errors.map((e) =>
      e.dataType === undefined ? `{ code: ${stringLiteral(e.code)}; data?: undefined; }` : `{ code: ${stringLiteral(e.code)}; data: ${e.dataType}; }`,
    );
    const list = m.errors.map((e) => `- \`${e.code}\`: ${e.description}`).join("\n");
    const doc = docText(m.errors.length === 0 ? `\`${m.wireName}\` declares no errors.` : `Declared errors of \`${m.wireName}\`:\n${list}`);
    out += `\n${docComment(doc)}export type ${m.types.error} = ${members.length === 0 ? "never" : members.join(" | ")};\n`;
  }
  return out;
}

/** Shared type names that `code` mentions, for the import list. */
export function mentionedNames(code: string, names: readonly string[]): string[] {
  return names.filter((n) => new RegExp(`\\b${n}\\b`).test(code));
}
