/**
 * Sample data for mocks: a schema's own `examples` (or `default`, `const`,
 * the first `enum` value), else a small deterministic value built from its
 * keywords — required properties only, `minItems` items, numbers at their
 * lower bound. Not a full generator: a `pattern` or a `not` it cannot satisfy
 * gives a value the runtime then refuses, and `warren serve --mock` says so
 * when it starts.
 */
import type { JsonSchema } from "../../src/index.js";
import { refName } from "./schema-walk.js";

type Obj = { readonly [keyword: string]: unknown };

const FORMATS: Record<string, string> = {
  "date-time": "2024-01-01T00:00:00Z",
  date: "2024-01-01",
  time: "00:00:00Z",
  duration: "P1D",
  email: "user@example.com",
  "idn-email": "user@example.com",
  hostname: "example.com",
  "idn-hostname": "example.com",
  ipv4: "192.0.2.1",
  ipv6: "2001:db8::1",
  uri: "https://example.com/",
  "uri-reference": "https://example.com/",
  iri: "https://example.com/",
  "iri-reference": "https://example.com/",
  url: "https://example.com/",
  uuid: "00000000-0000-4000-8000-000000000000",
  "json-pointer": "/a",
  "relative-json-pointer": "0",
  regex: ".*",
  byte: "AA==",
};

/** A value for `schema`, whose `$ref`s name entries of `defs`. */
export function sampleOf(schema: JsonSchema, defs: Readonly<Record<string, JsonSchema>>, depth = 0): unknown {
  if (typeof schema === "boolean" || depth > 24) return null;
  const s = schema as Obj;
  if (Array.isArray(s.examples) && s.examples.length > 0) return s.examples[0];
  if (s.default !== undefined) return s.default;
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  const ref = refName(s);
  if (ref !== undefined && defs[ref] !== undefined) return sampleOf(defs[ref]!, defs, depth + 1);
  if (Array.isArray(s.allOf) && s.allOf.length > 0) return sampleOf(merge(s, s.allOf as JsonSchema[], defs), defs, depth + 1);
  for (const key of ["oneOf", "anyOf"] as const) {
    const branches = s[key];
    if (Array.isArray(branches) && branches.length > 0) return sampleOf({ ...without(s, key), ...(branches[0] as Obj) }, defs, depth + 1);
  }
  switch (typeOf(s)) {
    case "null":
      return null;
    case "boolean":
      return true;
    case "integer":
      return numberIn(s, true);
    case "number":
      return numberIn(s, false);
    case "string":
      return stringIn(s);
    case "array": {
      const prefix = Array.isArray(s.prefixItems) ? (s.prefixItems as JsonSchema[]) : [];
      const count = Math.max(typeof s.minItems === "number" ? s.minItems : 0, prefix.length);
      const items = (s.items ?? true) as JsonSchema;
      return Array.from({ length: count }, (_, i) => sampleOf(prefix[i] ?? items, defs, depth + 1));
    }
    case "object": {
      const properties = (s.properties ?? {}) as Record<string, JsonSchema>;
      const required = Array.isArray(s.required) ? (s.required as string[]) : [];
      const names = [...required];
      const min = typeof s.minProperties === "number" ? s.minProperties : 0;
      for (const name of Object.keys(properties)) if (names.length < min && !names.includes(name)) names.push(name);
      return Object.fromEntries(names.map((name) => [name, sampleOf(properties[name] ?? true, defs, depth + 1)]));
    }
    default:
      return null;
  }
}

function typeOf(s: Obj): string | undefined {
  const type = s.type;
  if (typeof type === "string") return type;
  if (Array.isArray(type)) return (type.find((t) => t !== "null") ?? type[0]) as string | undefined;
  if (s.properties !== undefined || s.required !== undefined) return "object";
  if (s.items !== undefined || s.prefixItems !== undefined) return "array";
  if (s.minLength !== undefined || s.format !== undefined || s.pattern !== undefined) return "string";
  if (s.minimum !== undefined || s.maximum !== undefined || s.multipleOf !== undefined) return "number";
  return undefined;
}

function numberIn(s: Obj, integer: boolean): number {
  const num = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : undefined);
  let value = num("minimum") ?? (num("exclusiveMinimum") !== undefined ? num("exclusiveMinimum")! + (integer ? 1 : 0.5) : 0);
  const max = num("maximum") ?? (num("exclusiveMaximum") !== undefined ? num("exclusiveMaximum")! - (integer ? 1 : 0.5) : undefined);
  if (max !== undefined && value > max) value = max;
  if (integer) value = Math.ceil(value);
  const step = num("multipleOf");
  if (step !== undefined && step > 0) value = Math.ceil(value / step) * step;
  return value;
}

function stringIn(s: Obj): string {
  const format = typeof s.format === "string" ? FORMATS[s.format] : undefined;
  if (format !== undefined) return format;
  const min = typeof s.minLength === "number" ? s.minLength : 0;
  const max = typeof s.maxLength === "number" ? s.maxLength : Infinity;
  let text = "string";
  while (text.length < min) text += "x";
  return text.slice(0, Math.max(min, Math.min(max, text.length)));
}

function without(s: Obj, key: string): Obj {
  const { [key]: _dropped, ...rest } = s;
  return rest;
}

/** `allOf` folded into one object schema: properties and required lists joined, other keywords of later branches win. */
function merge(s: Obj, branches: readonly JsonSchema[], defs: Readonly<Record<string, JsonSchema>>): Obj {
  let out: Record<string, unknown> = { ...without(s, "allOf") };
  for (const b of branches) {
    let branch = b;
    for (let name = refName(branch); name !== undefined && defs[name] !== undefined; name = refName(branch)) branch = defs[name]!;
    if (typeof branch !== "object") continue;
    const properties = { ...((out.properties as object) ?? {}), ...((branch.properties as object) ?? {}) };
    const required = [...new Set([...((out.required as string[]) ?? []), ...((branch.required as string[]) ?? [])])];
    out = { ...out, ...branch, properties, required };
  }
  return out;
}
