/**
 * Stage 1: find the contract files, parse them strictly and check them
 * against the meta-schema. Produces parsed documents; meaning comes later.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { ErrorObject, ValidateFunction } from "ajv/dist/2020.js";
import { createAjv } from "../src/core/validation.js";
import metaSchema from "./service.schema.json" with { type: "json" };
import { CodegenError, ErrorSink, pointerJoin, type Locator, type Position } from "./errors.js";
import { parseJsonDocument } from "./json.js";
import { checkSchema } from "./strict.js";
import { didYouMean } from "./suggest.js";

/** A parsed contract file. */
export interface LoadedFile {
  /** Path shown to the user: relative to the working directory, posix separators. */
  readonly display: string;
  /** Path relative to the schemas directory, posix separators; the key `$ref`s resolve to. */
  readonly key: string;
  /** The parsed JSON. */
  readonly doc: Record<string, unknown>;
  /** Where each JSON pointer of the file starts, for messages. */
  readonly positions: ReadonlyMap<string, Position>;
}

/** Every contract file under a schemas directory. */
export interface Loaded {
  /** `*.service.json` files, sorted by path. */
  readonly services: LoadedFile[];
  /** Every other `*.json` file (shared types, e.g. `common/geometry.json`), by key. */
  readonly shared: ReadonlyMap<string, LoadedFile>;
  /** Line and column of a pointer in a loaded file (by its display path). */
  readonly locate: Locator;
}

const SERVICE_SUFFIX = ".service.json";
const MAX_ERRORS_PER_FILE = 10;

/** Converts a native path to posix separators, for messages and import specifiers. */
export function toPosix(p: string): string {
  return p.split(path.sep).join("/");
}

/**
 * Loads and checks every contract under `schemasDir`: strict JSON, the
 * meta-schema, then the strict schema checks (codegen/strict.ts); throws
 * `CodegenErrors` listing every problem of every bad file.
 */
export async function loadSchemas(schemasDir: string, cwd: string): Promise<Loaded> {
  const root = path.resolve(cwd, schemasDir);
  const files = await listJsonFiles(root).catch((cause: NodeJS.ErrnoException) => {
    const why = cause.code === "ENOENT" ? "no such directory" : cause.code === "ENOTDIR" ? "not a directory" : (cause.code ?? cause.message);
    throw new CodegenError(toPosix(path.relative(cwd, root)) || ".", "", `cannot read the schemas directory (${why}); create it, or name it with --schemas or "schemas" in warren.config.json`);
  });
  const positions = new Map<string, ReadonlyMap<string, Position>>();
  const locate: Locator = (file, pointer) => positions.get(file)?.get(pointer);
  const sink = new ErrorSink(locate);
  const services: LoadedFile[] = [];
  const shared = new Map<string, LoadedFile>();
  const validators = getValidators();
  for (const abs of files) {
    const key = toPosix(path.relative(root, abs));
    const display = toPosix(path.relative(cwd, abs));
    const isService = key.endsWith(SERVICE_SUFFIX);
    let parsed;
    try {
      parsed = parseJsonDocument(await readFile(abs, "utf8"), display);
    } catch (error) {
      if (!(error instanceof CodegenError)) throw error;
      sink.push(error);
      continue;
    }
    const doc = parsed.value;
    positions.set(display, parsed.positions);
    if (isService && !/^[A-Za-z0-9._-]+$/.test(path.basename(key))) {
      sink.add(display, "", "service file names may only contain letters, digits, '.', '_' and '-'");
      continue;
    }
    if (!isService && looksLikeService(doc)) {
      const base = path.basename(key).replace(/(\.services?)?\.json$/i, "");
      sink.add(display, "", `this looks like a service contract, but only files ending in ${SERVICE_SUFFIX} are read as services (other .json files hold shared types); rename it to ${base}${SERVICE_SUFFIX}`);
      continue;
    }
    const validate = isService ? validators.service : validators.shared;
    if (!validate(doc)) {
      for (const e of describeAjvErrors(validate.errors ?? []).slice(0, MAX_ERRORS_PER_FILE)) sink.add(display, e.pointer, e.message);
      continue;
    }
    const file = { display, key, doc: doc as Record<string, unknown>, positions: parsed.positions };
    const before = sink.errors.length;
    for (const [pointer, schema] of contractSchemas(file.doc)) checkSchema(schema, display, pointer, sink);
    if (sink.errors.length - before > MAX_ERRORS_PER_FILE) sink.errors.splice(before + MAX_ERRORS_PER_FILE);
    if (isService) services.push(file);
    else shared.set(key, file);
  }
  sink.throwIfAny();
  return { services, shared, locate };
}

/** A shared-types file carries only `$defs`; one with `service`, `methods` or `events` was meant as a service. */
function looksLikeService(doc: unknown): boolean {
  return typeof doc === "object" && doc !== null && ["service", "methods", "events"].some((k) => Object.hasOwn(doc, k));
}

/** Every schema a contract file holds, with its pointer: `$defs`, and a service's requests, responses, error data and event payloads. */
export function contractSchemas(doc: Record<string, unknown>): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  const entries = (value: unknown) => (typeof value === "object" && value !== null ? Object.entries(value as Record<string, Record<string, unknown>>) : []);
  for (const [name, schema] of entries(doc.$defs)) out.push([pointerJoin("/$defs", name), schema]);
  for (const [name, m] of entries(doc.methods)) {
    const at = pointerJoin("/methods", name);
    out.push([`${at}/request`, m.request], [`${at}/response`, m.response]);
    for (const [code, e] of entries(m.errors)) if (e.data !== undefined) out.push([`${pointerJoin(`${at}/errors`, code)}/data`, e.data]);
  }
  for (const [name, e] of entries(doc.events)) out.push([`${pointerJoin("/events", name)}/payload`, e.payload]);
  return out;
}

async function listJsonFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const abs = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listJsonFiles(abs)));
    else if (entry.isFile() && entry.name.endsWith(".json")) out.push(abs);
  }
  return out;
}

let validators: { service: ValidateFunction; shared: ValidateFunction } | undefined;

function getValidators(): { service: ValidateFunction; shared: ValidateFunction } {
  if (validators) return validators;
  // The meta-schema is ours and checked by the tests; Ajv's own check of it (validateSchema) costs ~0.45 s per run.
  const ajv = createAjv({ verbose: true, validateSchema: false });
  const service = ajv.compile(metaSchema);
  const shared = ajv.compile({ $ref: `${metaSchema.$id}#/$defs/sharedFile` });
  validators = { service, shared };
  return validators;
}

/** Turns Ajv's errors into pointer + reason, dropping umbrella errors when a specific one exists. */
function describeAjvErrors(errors: readonly ErrorObject[]): Array<{ pointer: string; message: string }> {
  const specific = errors.filter((e) => !["anyOf", "oneOf", "propertyNames", "if"].includes(e.keyword));
  const chosen = specific.length > 0 ? specific : errors;
  const seen = new Set<string>();
  const out: Array<{ pointer: string; message: string }> = [];
  for (const e of chosen) {
    const d = describeAjvError(e);
    const id = `${d.pointer}\0${d.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(d);
  }
  return out;
}

function describeAjvError(e: ErrorObject): { pointer: string; message: string } {
  const params = e.params as Record<string, unknown>;
  const hint = (e.parentSchema as { description?: unknown } | undefined)?.description;
  const withHint = (m: string) => (typeof hint === "string" && ["pattern", "not", "maxLength"].includes(e.keyword) ? `${m}: ${hint}` : m);
  if (e.propertyName !== undefined) {
    return { pointer: pointerJoin(e.instancePath, e.propertyName), message: withHint(`name "${e.propertyName}" ${e.message ?? "is invalid"}`) };
  }
  switch (e.keyword) {
    case "additionalProperties": {
      const name = String(params.additionalProperty);
      const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return { pointer: pointerJoin(e.instancePath, name), message: `unknown property "${name}" (not allowed here)${didYouMean(name, known)}` };
    }
    case "required":
      return { pointer: e.instancePath, message: `missing required property "${String(params.missingProperty)}"` };
    case "enum":
      return { pointer: e.instancePath, message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}` };
    default:
      return { pointer: e.instancePath, message: withHint(e.message ?? `fails ${e.keyword}`) };
  }
}
