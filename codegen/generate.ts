/**
 * The whole pipeline in memory: load + check -> model -> emitted files. The CLI,
 * the tests and the benchmark all go through here.
 */
import path from "node:path";
import { emitAll, type Plan } from "./emit.js";
import { loadSchemas } from "./load.js";
import { buildModel, type Model } from "./model.js";

/** Inputs of one run; relative paths resolve against `cwd`. */
export interface GenerateOptions {
  /** @default "schemas" */
  readonly schemasDir?: string;
  /** Runtime module specifier as seen from `<out>/<service>/`. @default "../../src/index.js" */
  readonly runtime?: string;
  /** @default process.cwd() */
  readonly cwd?: string;
}

/** Default runtime import inside the warren repository. */
export const DEFAULT_RUNTIME = "../../src/index.js";

/** Runs load, model and emit; throws `CodegenError(s)` for a bad contract, and writes nothing. */
export async function generate(options: GenerateOptions = {}): Promise<{ model: Model; plan: Plan }> {
  const cwd = options.cwd ?? process.cwd();
  const schemasDir = options.schemasDir ?? "schemas";
  const loaded = await loadSchemas(schemasDir, cwd);
  const model = buildModel(loaded);
  const plan = await emitAll(model, {
    runtime: options.runtime ?? DEFAULT_RUNTIME,
    schemasLabel: path.basename(path.resolve(cwd, schemasDir)),
  });
  return { model, plan };
}
