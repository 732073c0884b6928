/**
 * Stage 3: print the model as TypeScript files, in memory. Each file is
 * assembled as text (codegen/emit-*.ts); only the declarations that
 * json-schema-to-typescript prints pass through TypeScript's formatter, one
 * at a time. An
 * {@link EmitCache} kept between runs (watch mode) re-emits only the services
 * whose inputs changed. Nothing here touches the disk.
 */
import { createHash } from "node:crypto";
import { emitClient } from "./emit-client.js";
import { emitDescriptor } from "./emit-descriptor.js";
import { emitEvents } from "./emit-events.js";
import { emitRootIndex, emitServer, emitServiceIndex } from "./emit-server.js";
import { importLine, tidy } from "./emit-text.js";
import { declareTypes, errorUnions, mentionedNames, serviceTypeSchemas, type TypeCache } from "./emit-types.js";
import type { Model, ServiceModel } from "./model.js";
import { header } from "./text.js";

export { FORMAT } from "./emit-text.js";

/** Generated files by path relative to the output directory (posix separators), in a stable order. */
export type Plan = Map<string, string>;

/** Options of the emit stage. */
export interface EmitOptions {
  /** Module specifier of the warren runtime as seen from `<out>/<service>/`. */
  readonly runtime: string;
  /** Name of the schemas directory as shown in headers (`schemas`). */
  readonly schemasLabel: string;
  /** The command the headers name for regenerating (`npm run codegen`). @default "npx warren-codegen" */
  readonly regenerate?: string;
}

/**
 * What one run leaves for the next: each service's files under a hash of
 * everything they are printed from (its model, the shared schemas it uses,
 * the emit options), the shared types module likewise, and the memo of
 * json-schema-to-typescript's output. Make one with {@link createEmitCache}.
 */
export interface EmitCache {
  readonly types: TypeCache;
  /** By contract file key (`calculator.service.json`). */
  readonly services: Map<string, { readonly hash: string; readonly files: ReadonlyArray<readonly [string, string]> }>;
  shared: { readonly hash: string; readonly text: string } | undefined;
}

/** An empty {@link EmitCache}. */
export function createEmitCache(): EmitCache {
  return { types: new Map(), services: new Map(), shared: undefined };
}

/** What {@link emitModel} printed. */
export interface EmitResult {
  readonly plan: Plan;
  /** Names of the services whose files were printed anew (the others came from the cache), in model order. */
  readonly emitted: readonly string[];
}

/** Prints every file of `model`. */
export async function emitAll(model: Model, options: EmitOptions, cache: EmitCache = createEmitCache()): Promise<Plan> {
  return (await emitModel(model, options, cache)).plan;
}

/** Prints every file of `model`, reusing from `cache` the services whose inputs are unchanged, and updates `cache`. */
export async function emitModel(model: Model, options: EmitOptions, cache: EmitCache): Promise<EmitResult> {
  const label = (file: string) => `${options.schemasLabel}/${file}`;
  const sharedSchemas = new Map(model.shared.map((d) => [d.name, d.schema]));
  const hashes = model.services.map((s) => hashOf([s, s.sharedTypes.map((n) => sharedSchemas.get(n)), options]));
  const stale = model.services.filter((s, i) => cache.services.get(s.key)?.hash !== hashes[i]);
  const sharedHash = hashOf([model.shared, model.sharedFiles, options.schemasLabel, options.regenerate]);
  const sharedStale = model.shared.length > 0 && cache.shared?.hash !== sharedHash;

  const [sharedCode, ...serviceCode] = await Promise.all([
    sharedStale ? declareTypes(model.shared, cache.types) : [],
    // Without methods there are no error unions, and types.ts ends with the last declaration.
    ...stale.map((s) => declareTypes(serviceTypeSchemas(s), cache.types, s.methods.length === 0)),
  ]);
  if (sharedStale) {
    const source = model.sharedFiles.map(label).join(", ");
    cache.shared = { hash: sharedHash, text: `${header(source, options.regenerate)}${tidy((sharedCode ?? []).join("\n"))}` };
  }
  stale.forEach((s, i) => {
    cache.services.set(s.key, { hash: hashes[model.services.indexOf(s)] ?? "", files: emitService(s, serviceCode[i] ?? [], model, options, label(s.key)) });
  });
  const keys = new Set(model.services.map((s) => s.key));
  for (const key of cache.services.keys()) if (!keys.has(key)) cache.services.delete(key);
  if (model.shared.length === 0) cache.shared = undefined;

  const plan: Plan = new Map();
  if (cache.shared !== undefined) plan.set("common/types.ts", cache.shared.text);
  for (const s of model.services) for (const [rel, text] of cache.services.get(s.key)?.files ?? []) plan.set(rel, text);
  plan.set("index.ts", `${header(`${options.schemasLabel}/`, options.regenerate)}${emitRootIndex(model)}`);
  return { plan, emitted: stale.map((s) => s.name) };
}

function hashOf(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("base64url");
}

/** Every file of one service, in plan order. */
function emitService(s: ServiceModel, types: readonly string[], model: Model, options: EmitOptions, source: string): Array<[string, string]> {
  const dir = s.names.dir;
  const file = (rel: string, body: string): [string, string] => [`${dir}/${rel}`, `${header(source, options.regenerate)}${tidy(body)}`];
  const files = [file("types.ts", typesModule(s, types)), file("descriptor.ts", emitDescriptor(s, model, options.runtime))];
  // Only what the contract declares: a contract without methods gets no client, handlers or serve function (nothing would declare its queue).
  if (s.methods.length > 0) files.push(file("client.ts", emitClient(s, options.runtime)), file("server.ts", emitServer(s, options.runtime)));
  if (s.events.length > 0) files.push(file("events.ts", emitEvents(s, options.runtime)));
  files.push(file("index.ts", emitServiceIndex(s)));
  return files;
}

/** types.ts: the shared types it mentions, the declarations of its named schemas, then the error unions. */
function typesModule(s: ServiceModel, types: readonly string[]): string {
  const code = types.join("\n");
  const shared = mentionedNames(code, s.sharedTypes);
  const unions = errorUnions(s);
  if (shared.length === 0 && code === "" && unions === "") return "export { };\n\n";
  const imports = shared.length > 0 ? importLine(shared, "../common/types.js", true) : "";
  return `${imports}\n${code}\n${unions}`;
}
