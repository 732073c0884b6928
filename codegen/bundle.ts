/**
 * `$ref` resolution. Every schema a service uses ends up in the service's
 * `defs` under one TypeScript-safe name, and every `$ref` becomes
 * `#/$defs/<Name>` — the only form the runtime's validator sees. Shared files'
 * definitions get names that are unique across the whole schemas directory, so
 * their types can be emitted once.
 */
import path from "node:path";
import type { ErrorSink } from "./errors.js";
import { pointerJoin } from "./errors.js";
import type { Loaded, LoadedFile } from "./load.js";
import { pascalCase } from "./naming.js";
import { didYouMean } from "./suggest.js";

/** A JSON Schema as plain data. */
export type Schema = boolean | { readonly [keyword: string]: unknown };

/** A named schema: an entry of a `defs` table and an exported type. */
export interface NamedSchema {
  readonly name: string;
  readonly schema: Schema;
  /** Where it was defined, for messages. */
  readonly file: string;
  readonly pointer: string;
}

/** Keywords whose value is one schema. */
export const SCHEMA_ONE: ReadonlySet<string> = new Set([
  "additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
  "unevaluatedItems", "unevaluatedProperties", "contentSchema",
]);
/** Keywords whose value is a list of schemas. */
export const SCHEMA_LIST: ReadonlySet<string> = new Set(["allOf", "anyOf", "oneOf", "prefixItems"]);
/** Keywords whose value maps names to schemas. */
export const SCHEMA_MAP: ReadonlySet<string> = new Set(["properties", "patternProperties", "dependentSchemas"]);
const NOT_NESTABLE = new Set([
  "$id", "$schema", "$defs", "definitions", "$anchor", "$dynamicAnchor", "$dynamicRef", "$recursiveRef", "$recursiveAnchor",
]);

/** Names of a file's own `$defs`, keyed by definition key. */
export type LocalNames = ReadonlyMap<string, string>;

/** Resolves and rewrites `$ref`s for every contract under one schemas directory. */
export class Bundler {
  /** `<file key>#<def key>` -> global name, for shared files. */
  readonly #sharedNames = new Map<string, string>();
  /** Shared definitions, bundled, in file then key order. */
  readonly sharedDefs: NamedSchema[] = [];
  /** Shared name -> shared names it references directly. */
  readonly #sharedDeps = new Map<string, Set<string>>();

  constructor(
    private readonly loaded: Loaded,
    private readonly sink: ErrorSink,
  ) {
    this.#nameShared();
    for (const file of loaded.shared.values()) {
      for (const [key, schema] of Object.entries(defsOf(file))) {
        const name = this.#sharedNames.get(`${file.key}#${key}`);
        if (name === undefined) continue;
        const deps = new Set<string>();
        const pointer = pointerJoin("/$defs", key);
        const bundled = this.rewrite(schema as Schema, file, pointer, this.localNames(file), (n) => deps.add(n));
        this.sharedDefs.push({ name, schema: bundled, file: file.display, pointer });
        this.#sharedDeps.set(name, deps);
      }
    }
  }

  /** Type names of a file's own `$defs` (reports two keys that convert to one name). */
  localNames(file: LoadedFile): LocalNames {
    if (this.loaded.shared.get(file.key) === file) {
      const names = new Map<string, string>();
      for (const key of Object.keys(defsOf(file))) names.set(key, this.#sharedNames.get(`${file.key}#${key}`) ?? pascalCase(key));
      return names;
    }
    return uniqueNames(Object.keys(defsOf(file)), file, this.sink);
  }

  /** Shared names reachable from `direct`, sorted. */
  closure(direct: Iterable<string>): string[] {
    const seen = new Set<string>();
    const visit = (name: string) => {
      if (seen.has(name)) return;
      seen.add(name);
      for (const dep of this.#sharedDeps.get(name) ?? []) visit(dep);
    };
    for (const name of direct) visit(name);
    return [...seen].sort();
  }

  /**
   * Copies `schema` (found at `pointer` in `file`) with every `$ref` rewritten
   * to `#/$defs/<Name>`; calls `onShared` for each shared definition it uses.
   * Problems go to the sink; the copy is then incomplete but never thrown away
   * half-way, so one run reports every problem.
   */
  rewrite(schema: Schema, file: LoadedFile, pointer: string, local: LocalNames, onShared: (name: string) => void): Schema {
    if (typeof schema !== "object" || schema === null) return schema;
    const out: Record<string, unknown> = {};
    for (const [keyword, value] of Object.entries(schema)) {
      const at = pointerJoin(pointer, keyword);
      if (keyword === "$ref" && typeof value === "string") {
        const name = this.#resolve(value, file, at, local, onShared);
        out.$ref = `#/$defs/${name ?? "unresolved"}`;
      } else if (keyword === "tsType" || keyword === "tsEnumNames") {
        this.sink.add(file.display, at, `"${keyword}" is not allowed in a contract: it would put raw TypeScript into generated code`);
      } else if (NOT_NESTABLE.has(keyword)) {
        this.sink.add(file.display, at, `"${keyword}" is not supported inside a schema; put named schemas in the file's top-level $defs`);
      } else if (SCHEMA_ONE.has(keyword) && isSchema(value)) {
        out[keyword] = this.rewrite(value, file, at, local, onShared);
      } else if (SCHEMA_LIST.has(keyword) && Array.isArray(value)) {
        out[keyword] = value.map((s: Schema, i) => this.rewrite(s, file, pointerJoin(at, i), local, onShared));
      } else if (SCHEMA_MAP.has(keyword) && isPlainObject(value)) {
        const map: Record<string, unknown> = {};
        for (const [k, s] of Object.entries(value)) map[k] = this.rewrite(s as Schema, file, pointerJoin(at, k), local, onShared);
        out[keyword] = map;
      } else {
        out[keyword] = value;
      }
    }
    return out;
  }

  #resolve(ref: string, file: LoadedFile, at: string, local: LocalNames, onShared: (name: string) => void): string | undefined {
    const hash = ref.indexOf("#");
    const filePart = hash < 0 ? ref : ref.slice(0, hash);
    const fragment = hash < 0 ? "" : safeDecode(ref.slice(hash + 1));
    const match = /^\/\$defs\/([^/]+)$/.exec(fragment);
    if (!match?.[1]) {
      this.sink.add(file.display, at, `unsupported $ref "${ref}": use "#/$defs/<Name>" or "<file>.json#/$defs/<Name>"`);
      return undefined;
    }
    const defKey = match[1].replace(/~1/g, "/").replace(/~0/g, "~");
    if (filePart === "") {
      const name = local.get(defKey);
      if (name === undefined) this.sink.add(file.display, at, `unresolved $ref "${ref}": this file has no $defs/${defKey}${didYouMean(defKey, local.keys())}`);
      else if (this.loaded.shared.get(file.key) === file) onShared(name);
      return name;
    }
    const targetKey = path.posix.normalize(path.posix.join(path.posix.dirname(file.key), safeDecode(filePart)));
    const target = this.loaded.shared.get(targetKey);
    if (!target) {
      const why = targetKey.startsWith("../") ? "it points outside the schemas directory"
        : targetKey.endsWith(".service.json") ? "a service file cannot be referenced; move shared types to schemas/common/"
        : `file ${targetKey} not found in the schemas directory${didYouMean(targetKey, this.loaded.shared.keys())}`;
      this.sink.add(file.display, at, `unresolved $ref "${ref}": ${why}`);
      return undefined;
    }
    const name = this.#sharedNames.get(`${target.key}#${defKey}`);
    if (name === undefined) this.sink.add(file.display, at, `unresolved $ref "${ref}": ${target.key} has no $defs/${defKey}${didYouMean(defKey, Object.keys(defsOf(target)))}`);
    else onShared(name);
    return name;
  }

  /** Shared names: the PascalCase key, prefixed with the file's name where two files define the same one. */
  #nameShared(): void {
    const count = new Map<string, number>();
    for (const file of this.loaded.shared.values()) {
      for (const key of Object.keys(defsOf(file))) count.set(pascalCase(key), (count.get(pascalCase(key)) ?? 0) + 1);
    }
    const taken = new Map<string, string>();
    for (const file of this.loaded.shared.values()) {
      const prefix = pascalCase(file.key.replace(/^common\//, "").replace(/\.json$/, "").replace(/[^A-Za-z0-9]+/g, "_"));
      for (const key of Object.keys(defsOf(file))) {
        const base = pascalCase(key);
        const name = (count.get(base) ?? 0) > 1 ? `${prefix}${base}` : base;
        const pointer = pointerJoin("/$defs", key);
        const other = taken.get(name);
        if (other !== undefined) this.sink.add(file.display, pointer, `shared type name "${name}" is already used by ${other}; rename one`);
        else taken.set(name, `${file.display}#${pointer}`);
        this.#sharedNames.set(`${file.key}#${key}`, name);
      }
    }
  }
}

/** Definition keys -> PascalCase names, reporting keys that collide after conversion. */
function uniqueNames(keys: readonly string[], file: LoadedFile, sink: ErrorSink): Map<string, string> {
  const names = new Map<string, string>();
  const byName = new Map<string, string>();
  for (const key of keys) {
    const name = pascalCase(key);
    const other = byName.get(name);
    if (other !== undefined) sink.add(file.display, pointerJoin("/$defs", key), `$defs "${other}" and "${key}" both become the type name "${name}"`);
    byName.set(name, key);
    names.set(key, name);
  }
  return names;
}

/** A file's top-level `$defs` (empty when absent). */
export function defsOf(file: LoadedFile): Record<string, unknown> {
  const defs = file.doc.$defs;
  return isPlainObject(defs) ? defs : {};
}

/** The name a schema that is exactly `{ "$ref": "#/$defs/<Name>" }` points to. */
export function pureRefName(schema: Schema): string | undefined {
  if (typeof schema !== "object" || Object.keys(schema).length !== 1 || typeof schema.$ref !== "string") return undefined;
  return /^#\/\$defs\/(.+)$/.exec(schema.$ref)?.[1];
}

function isSchema(value: unknown): value is Schema {
  return typeof value === "boolean" || isPlainObject(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
