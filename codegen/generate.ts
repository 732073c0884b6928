/**
 * The whole pipeline in memory: load + check -> model -> emitted files. The CLI,
 * the tests and the benchmark all go through here.
 */
import path from "node:path";
import { DEFAULT_RUNTIME } from "./config.js";
import { createEmitCache, emitModel, type EmitCache, type Plan } from "./emit.js";
import { loadSchemas } from "./load.js";
import { buildModel, type Model } from "./model.js";

/** Inputs of one run; relative paths resolve against `cwd`. */
export interface GenerateOptions {
  /** @default "schemas" */
  readonly schemasDir?: string;
  /** Runtime module specifier as seen from `<out>/<service>/`. @default "warren" */
  readonly runtime?: string;
  /** @default process.cwd() */
  readonly cwd?: string;
  /** The command generated files name for regenerating them (the CLI finds the project's own). @default "npx warren-codegen" */
  readonly regenerate?: string;
}

/** The runtime import when none is given: the installed package. */
export { DEFAULT_RUNTIME };

/** What one run produced. */
export interface Generated {
  readonly model: Model;
  readonly plan: Plan;
  /** Services whose files were printed anew rather than taken from the cache (all of them without one). */
  readonly emitted: readonly string[];
}

/**
 * Runs load, model and emit; throws `CodegenError(s)` for a bad contract, and
 * writes nothing. Pass the same `cache` to successive runs (watch mode) to
 * re-emit only the services whose contract or shared types changed.
 */
export async function generate(options: GenerateOptions = {}, cache: EmitCache = createEmitCache()): Promise<Generated> {
  const cwd = options.cwd ?? process.cwd();
  const schemasDir = options.schemasDir ?? "schemas";
  const loaded = await loadSchemas(schemasDir, cwd);
  const model = buildModel(loaded);
  const { plan, emitted } = await emitModel(
    model,
    {
      runtime: options.runtime ?? DEFAULT_RUNTIME,
      schemasLabel: path.basename(path.resolve(cwd, schemasDir)),
      ...(options.regenerate === undefined ? {} : { regenerate: options.regenerate }),
    },
    cache,
  );
  return { model, plan, emitted };
}
