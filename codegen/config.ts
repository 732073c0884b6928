/**
 * `warren.config.json`: where the generator finds contracts, where it writes,
 * how generated code imports the runtime and where scaffolds go. Found by
 * walking up from the working directory, unless a nearer directory has a
 * `schemas/` of contracts of its own (a sub-project); paths in it are relative
 * to the file. Command-line flags override it. Checked against
 * `warren.config.schema.json` (shipped for editors' `$schema`).
 */
import { readdir, readFile, stat } from "node:fs/promises";
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

/**
 * Resolves the settings of a run: flags (relative to `cwd`), else the config
 * file, else the defaults (both relative to the project directory, see
 * {@link findProject}). Throws `CodegenError(s)` for a bad config file.
 */
export async function resolveSettings(flags: Flags, cwd: string): Promise<Settings> {
  const explicit = flags.config === undefined ? undefined : path.resolve(cwd, flags.config);
  const project = explicit === undefined ? await findProject(cwd) : { dir: path.dirname(explicit), config: explicit, doc: await readConfig(explicit, cwd, true) };
  const file = project.config;
  const doc = project.doc ?? {};
  const base = project.dir;
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

/** Where a run's settings come from: the project directory, and its config file (read) if it has one. */
interface Project {
  /** Absolute directory the config's paths and the defaults are relative to. */
  readonly dir: string;
  /** Absolute path of the config file, if any. */
  readonly config: string | undefined;
  readonly doc: ConfigDoc | undefined;
}

/**
 * The project of `cwd`: the nearest directory, from `cwd` upward, that has a
 * warren.config.json or a `schemas/` directory holding contracts
 * (`*.service.json`); at one level the config file wins. A config file further
 * up than a `schemas/` of contracts (a sub-project inside another warren
 * project) applies only when its `schemas` is that directory or contains it;
 * otherwise the sub-project stands alone, with the defaults. With neither,
 * the project is `cwd` itself.
 */
async function findProject(cwd: string): Promise<Project> {
  let own: string | undefined; // the nearest directory with a schemas/ of contracts, below any config found so far
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const config = path.join(dir, CONFIG_FILE);
    if (await isFile(config)) {
      const doc = await readConfig(config, cwd, false);
      if (own === undefined || isWithin(path.join(own, "schemas"), path.resolve(dir, doc.schemas ?? "schemas"))) return { dir, config, doc };
      return { dir: own, config: undefined, doc: undefined };
    }
    if (own === undefined && (await holdsContracts(path.join(dir, "schemas")))) own = dir;
    if (path.dirname(dir) === dir) return { dir: own ?? path.resolve(cwd), config: undefined, doc: undefined };
  }
}

/** True when `inner` is `outer` or inside it. */
function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

async function isFile(file: string): Promise<boolean> {
  return stat(file).then((s) => s.isFile(), () => false);
}

/** True when `dir` holds a `*.service.json` file, at any depth. */
async function holdsContracts(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  if (entries.some((e) => e.isFile() && e.name.endsWith(".service.json"))) return true;
  for (const e of entries) if (e.isDirectory() && (await holdsContracts(path.join(dir, e.name)))) return true;
  return false;
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
