/** Small reads of bundled schemas: the `$defs` a schema reaches, and its `examples`. */
import type { JsonSchema } from "../../src/index.js";

const LOCAL_REF = /^#\/\$defs\/([^/]+)$/;

/** The name a `{ "$ref": "#/$defs/<name>" }` points at, if `schema` has such a `$ref`. */
export function refName(schema: unknown): string | undefined {
  if (typeof schema !== "object" || schema === null) return undefined;
  const ref = (schema as { $ref?: unknown }).$ref;
  return typeof ref === "string" ? LOCAL_REF.exec(ref)?.[1] : undefined;
}

/** Follows `$ref`s at the top of `schema` (not inside it) to the schema they name. */
export function resolveTop(schema: JsonSchema, defs: Readonly<Record<string, JsonSchema>>): JsonSchema {
  let current = schema;
  for (let i = 0; i < 32; i++) {
    const name = refName(current);
    const next = name === undefined ? undefined : defs[name];
    if (next === undefined) return current;
    current = next;
  }
  return current;
}

/** Names of every `$defs` entry `schemas` reach, transitively, in first-reached order. */
export function reachedDefs(schemas: readonly unknown[], defs: Readonly<Record<string, JsonSchema>>): string[] {
  const seen = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (typeof value !== "object" || value === null) return;
    const name = refName(value);
    if (name !== undefined && !seen.has(name) && defs[name] !== undefined) {
      seen.add(name);
      visit(defs[name]);
    }
    for (const [key, v] of Object.entries(value)) if (key !== "examples" && key !== "default" && key !== "const" && key !== "enum") visit(v);
  };
  schemas.forEach(visit);
  return [...seen];
}

/** The `examples` of `schema` (after top-level `$ref`s, whose own examples come first). */
export function examplesOf(schema: JsonSchema, defs: Readonly<Record<string, JsonSchema>>): unknown[] {
  const out: unknown[] = [];
  let current: JsonSchema | undefined = schema;
  for (let i = 0; i < 32 && current !== undefined; i++) {
    if (typeof current === "object" && Array.isArray(current.examples)) out.push(...(current.examples as unknown[]));
    const name = refName(current);
    current = name === undefined ? undefined : defs[name];
  }
  return out;
}
