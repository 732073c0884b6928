/**
 * The data of `warren-codegen breaking` and the pure helpers of its schema
 * comparison: where a schema sits and how `$ref`s resolve, canonical JSON,
 * type sets and numeric bounds. No verdicts here; codegen/breaking-schema.ts
 * decides them.
 */
import path from "node:path";
import { pointerJoin } from "./errors.js";
import type { Loaded, LoadedFile } from "./load.js";

/** One classified difference between two contract versions. */
export interface Change {
  readonly service: string;
  /** Peers still on the old contract fail at run time against peers on the new one. */
  readonly wire: boolean;
  /** Existing user code stops compiling after regeneration. */
  readonly code: boolean;
  /** A safe change that adds to the API (method, event, field, error code, enum value): needs a minor version. */
  readonly addition: boolean;
  /** File as shown to the user: the new file, or the old one for removals. */
  readonly file: string;
  readonly pointer: string;
  readonly reason: string;
}

/** Where a schema sits: the file, a JSON pointer into it, and the value (`undefined` when absent). */
export interface Loc {
  readonly file: LoadedFile;
  readonly pointer: string;
  readonly schema: unknown;
}

/** How one schema of a service is used; fixed for one comparison from its root. */
export interface Use {
  readonly service: string;
  readonly oldVersion: string;
  readonly newVersion: string;
  /** `in`: old senders, new receiver (requests). `out`: new sender, old receivers. */
  readonly dir: "in" | "out";
  /** The receiver rejects unknown properties (`"unknownProperties": "reject"` in the receiving contract). */
  readonly strict: boolean;
  /** `request`, `response`, `error "x" data`, `payload`. */
  readonly part: string;
  /** Who builds values of this schema in code, and who reads them: `callers`/`handlers`, `handlers`/`callers`, `publishers`/`subscribers`. */
  readonly builders: string;
  readonly readers: string;
  /** Who sends and receives on the wire: `callers`/`the server`, `the server`/`callers`, `publishers`/`subscribers`. */
  readonly sender: string;
  readonly receiver: string;
  /** `Calculator.add request`, appended to lines found behind a `$ref`. */
  readonly label: string;
}

/** State shared by every comparison of one run. */
export interface Session {
  readonly old: Loaded;
  readonly new: Loaded;
  readonly changes: Change[];
  /** `$ref` target pairs already compared, per direction and service: stops recursion and repeats. */
  readonly seen: Set<string>;
}


/** A schema object. */
export type Obj = { readonly [k: string]: unknown };

export function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Resolves `#/$defs/X` in `from`, or `<file>.json#/$defs/X` relative to it among `side`'s shared files. */
export function resolveRef(side: Loaded, from: LoadedFile, ref: string): Loc | undefined {
  const hash = ref.indexOf("#");
  const filePart = hash < 0 ? ref : ref.slice(0, hash);
  let fragment = hash < 0 ? "" : ref.slice(hash + 1);
  try {
    fragment = decodeURIComponent(fragment);
  } catch {
    // keep it as written
  }
  const match = /^\/\$defs\/([^/]+)$/.exec(fragment);
  if (!match?.[1]) return undefined;
  const key = match[1].replace(/~1/g, "/").replace(/~0/g, "~");
  const file = filePart === "" ? from : side.shared.get(path.posix.normalize(path.posix.join(path.posix.dirname(from.key), filePart)));
  const defs = file?.doc.$defs;
  if (file === undefined || !isObject(defs) || !Object.hasOwn(defs, key)) return undefined;
  return { file, pointer: pointerJoin("/$defs", key), schema: defs[key] };
}

/** The `$ref` of a schema with siblings, as its own location. */
export function locOf(side: Loaded, file: LoadedFile, pointer: string, s: Obj): Loc {
  return resolveRef(side, file, s.$ref as string) ?? { file, pointer: pointerJoin(pointer, "$ref"), schema: true };
}

export function child(parent: Loc, rel: string, schema: unknown): Loc {
  return { file: parent.file, pointer: `${parent.pointer}/${rel}`, schema };
}

export function esc(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** Where a keyword's change is reported: in the new schema if it has the keyword, else in the old one (a removal). */
export function at(o: Loc, n: Loc, kw: string): { file: LoadedFile; pointer: string } {
  if (isObject(n.schema) && kw in n.schema) return { file: n.file, pointer: pointerJoin(n.pointer, kw) };
  if (isObject(o.schema) && kw in o.schema) return { file: o.file, pointer: pointerJoin(o.pointer, kw) };
  return n.schema !== undefined ? n : o;
}

/** Canonical JSON (sorted keys), for equality. */
export function canon(v: unknown): string {
  if (v === undefined) return "undefined";
  return JSON.stringify(v, (_k, value: unknown) =>
    isObject(value) ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]])) : value,
  );
}

export function show(v: unknown): string {
  return v === undefined ? "absent" : JSON.stringify(v);
}

const ALL_TYPES = ["array", "boolean", "integer", "null", "number", "object", "string"];

export function typeSet(t: unknown): Set<string> | undefined {
  if (typeof t === "string") return new Set([t]);
  if (Array.isArray(t)) return new Set(t.filter((x): x is string => typeof x === "string"));
  return undefined;
}

export function covers(set: Set<string> | undefined, t: string): boolean {
  return set === undefined || set.has(t) || (t === "integer" && set.has("number"));
}

export function sameSet(a: Set<string> | undefined, b: Set<string> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && [...a].every((x) => b.has(x));
}

export function tsKinds(t: Set<string> | undefined): Set<string> | undefined {
  return t === undefined ? undefined : new Set([...t].map((x) => (x === "integer" ? "number" : x)));
}

export function showType(t: Set<string> | undefined): string {
  if (t === undefined) return "any";
  const list = ALL_TYPES.filter((x) => t.has(x));
  return list.length === 1 ? list[0]! : `[${list.join(", ")}]`;
}

export function showTs(t: Set<string> | undefined): string {
  const k = tsKinds(t);
  return k === undefined ? "unknown" : ALL_TYPES.filter((x) => k.has(x)).join(" | ");
}

export function allowed(s: Obj): Set<string> | undefined {
  if ("const" in s) return new Set([canon(s.const)]);
  if (Array.isArray(s.enum)) return new Set(s.enum.map((v) => canon(v)));
  return undefined;
}

export interface Bound {
  readonly value: number;
  readonly exclusive: boolean;
}

export function bound(s: Obj, incl: string, excl: string, side: "lower" | "upper"): Bound | undefined {
  const a = typeof s[incl] === "number" ? { value: s[incl] as number, exclusive: false } : undefined;
  const b = typeof s[excl] === "number" ? { value: s[excl] as number, exclusive: true } : undefined;
  if (a === undefined || b === undefined) return a ?? b;
  return compareBounds(a, b, side) >= 0 ? b : a;
}

/** > 0 when `b` is tighter than `a`, < 0 when looser, 0 when equal. */
export function compareBounds(a: Bound | undefined, b: Bound | undefined, side: "lower" | "upper"): number {
  if (a === undefined && b === undefined) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  if (a.value !== b.value) return side === "lower" ? Math.sign(b.value - a.value) : Math.sign(a.value - b.value);
  return Number(b.exclusive) - Number(a.exclusive);
}

export function showBound(b: Bound | undefined, side: "lower" | "upper"): string {
  if (b === undefined) return "none";
  return `${side === "lower" ? (b.exclusive ? ">" : ">=") : b.exclusive ? "<" : "<="} ${b.value}`;
}
