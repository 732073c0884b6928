/**
 * `warren.config.json`: where the generator finds contracts, where it writes,
 * how generated code imports the runtime and where scaffolds go. Found by
 * walking up from the working directory; paths in it are relative to the
 * file. Command-line flags override it. Checked against
 * `warren.config.schema.json` (shipped for editors' `$schema`).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createAjv } from "../src/core/validation.js";
import configSchema from "./warren.config.schema.json" with { type: "json" };
import { CodegenError, CodegenErrors } from "./errors.js";
import { parseJsonDocument } from "./json.js";
import { toPosix } from "./load.js";
import { didYouMean } from "./suggest.js";

/** The config file's name. */
export const CONFIG_FILE = "warren.config.json";

/** The runtime import generated code uses when nothing says otherwise: the installed `warren` package. */
export const DEFAULT_RUNTIME = "warren";

/** Settings of one run, paths resolved against the working directory or the config file. */
export interface Settings {
  /** Absolute schemas directory. */
  readonly schemas: string;
  /** Absolute output directory. */
  readonly out: string;
  /** Runtime module specifier as seen from `<out>/<service>/`. */
  readonly runtime: string;
  /** Absolute scaffold directory, when one is configured. */
  readonly scaffold: string | undefined;
  /** The config file used, as shown to the user, if any. */
  readonly configFile: string | undefined;
}

/** What the command line says; each field overrides the config file. Paths are relative to `cwd`. */
export interface Flags {
  readonly schemas?: string | undefined;
  readonly out?: string | undefined;
  readonly runtime?: string | undefined;
  readonly scaffold?: string | undefined;
  /** An explicit config file (relative to `cwd`); otherwise one is searched upward. */
  readonly config?: string | undefined;
}

interface ConfigDoc {
  schemas?: string;
  out?: string;
  runtime?: string;
  scaffold?: string;
}

/** Resolves the settings of a run: flags, else the config file, else the defaults. Throws `CodegenError(s)` for a bad config file. */
export async function resolveSettings(flags: Flags, cwd: string): Promise<Settings> {
  const file = flags.config !== undefined ? path.resolve(cwd, flags.config) : await findUp(cwd, CONFIG_FILE);
  const doc = file === undefined ? {} : await readConfig(file, cwd, flags.config !== undefined);
  const base = file === undefined ? cwd : path.dirname(file);
  const pick = (flag: string | undefined, configured: string | undefined, fallback: string) =>
    flag !== undefined ? path.resolve(cwd, flag) : path.resolve(base, configured ?? fallback);
  const scaffold = flags.scaffold ?? (doc.scaffold === undefined ? undefined : path.relative(cwd, path.resolve(base, doc.scaffold)) || ".");
  return {
    schemas: pick(flags.schemas, doc.schemas, "schemas"),
    out: pick(flags.out, doc.out, "generated"),
    runtime: flags.runtime ?? doc.runtime ?? DEFAULT_RUNTIME,
    scaffold: scaffold === undefined ? undefined : path.resolve(cwd, scaffold),
    configFile: file === undefined ? undefined : toPosix(path.relative(cwd, file)) || CONFIG_FILE,
  };
}

/** The nearest `name` in `dir` or one of its parents. */
export async function findUp(dir: string, name: string): Promise<string | undefined> {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const candidate = path.join(current, name);
    if (await readFile(candidate).then(() => true, () => false)) return candidate;
    if (path.dirname(current) === current) return undefined;
  }
}

async function readConfig(file: string, cwd: string, explicit: boolean): Promise<ConfigDoc> {
  const display = toPosix(path.relative(cwd, file)) || CONFIG_FILE;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CodegenError(display, "", `cannot read the config file${explicit ? "" : " found here"} (${code === "ENOENT" ? "no such file" : (code ?? (error as Error).message)})`);
  }
  const { value, positions } = parseJsonDocument(text, display);
  const validate = (validator ??= createAjv().compile(configSchema));
  if (validate(value)) return value as ConfigDoc;
  const known = Object.keys(configSchema.properties);
  throw new CodegenErrors(
    (validate.errors ?? []).map((e) => {
      const extra = (e.params as { additionalProperty?: string }).additionalProperty;
      const pointer = extra === undefined ? e.instancePath : `${e.instancePath}/${extra}`;
      const message = extra === undefined ? `${e.message ?? e.keyword}` : `unknown setting "${extra}"${didYouMean(extra, known) || `; known: ${known.join(", ")}`}`;
      return new CodegenError(display, pointer, message, positions.get(pointer) ?? positions.get(e.instancePath));
    }),
  );
}

let validator: ReturnType<ReturnType<typeof createAjv>["compile"]> | undefined;

/**
 * The command a user of this project runs to regenerate: `npm run <script>`
 * when the nearest package.json has a script that runs the generator, else
 * `npx warren-codegen`.
 */
export async function regenerateCommand(cwd: string): Promise<string> {
  const file = await findUp(cwd, "package.json");
  if (file !== undefined) {
    try {
      const scripts = (JSON.parse(await readFile(file, "utf8")) as { scripts?: Record<string, unknown> }).scripts ?? {};
      const names = Object.keys(scripts).filter((name) => typeof scripts[name] === "string" && /warren-codegen|codegen\/cli\.ts/.test(scripts[name] as string) && !/--check|breaking/.test(scripts[name] as string));
      const name = names.includes("codegen") ? "codegen" : names[0];
      if (name !== undefined) return `npm run ${name}`;
    } catch {
      // An unreadable package.json: fall through to the bin.
    }
  }
  return "npx warren-codegen";
}
