/**
 * The command line: `warren-codegen [--schemas DIR] [--out DIR] [--runtime
 * PATH] [--config FILE] [--check | --watch] [--scaffold SERVICE …]`, and
 * `warren-codegen breaking --against REF` (codegen/breaking.ts). Settings come
 * from the flags, else `warren.config.json` (codegen/config.ts), else the
 * defaults. Returns an exit code; prints problems as
 * `file:line:column #pointer: reason` lines, never a stack.
 */
import path from "node:path";
import packageJson from "./package.json" with { type: "json" };
import { runBreaking } from "./breaking.js";
import { commandName, parseFlags, type FlagSpec, type Program } from "./command-line.js";
import { CONFIG_FILE, DEFAULT_RUNTIME, regenerateCommand, resolveSettings, type Settings } from "./config.js";
import { CodegenError, CodegenErrors } from "./errors.js";
import { generate } from "./generate.js";
import { toPosix } from "./load.js";
import type { ServiceModel } from "./model.js";
import { writeScaffolds } from "./scaffold.js";
import { didYouMean } from "./suggest.js";
import { watch } from "./watch.js";
import { applyPlan, diffPlan, isClean } from "./write.js";

/** Where the CLI reads and prints. */
export interface CliIo {
  readonly cwd: string;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** The bin the user ran, named in every message: `warren-codegen` (the default), or `warren` for its `codegen` and `breaking` commands. */
  readonly program?: Program;
  /** Settles to stop a long-running command (`--watch`) as SIGINT would; for tests and embedding. */
  readonly stop?: Promise<unknown>;
}

/** The generator's version, from its package.json. */
export const VERSION: string = packageJson.version;

const USAGE = `usage: warren-codegen [--schemas DIR] [--out DIR] [--runtime PATH] [--config FILE] [--check | --watch] [--scaffold SERVICE]...
       warren-codegen breaking --against REF [--schemas DIR] [--check-version]   (see: warren-codegen breaking --help)

Generates typed clients, server skeletons, publishers and subscribers from JSON Schema
service contracts (<schemas>/*.service.json) into <out>/. Settings come from the flags, else
from ${CONFIG_FILE} (searched from the working directory upward), else the defaults.

  --schemas DIR       contracts to read (default: schemas)
  --out DIR           where generated code goes (default: generated)
  --runtime PATH      how generated code imports the runtime, as seen from <out>/<service>/
                      (default: ${DEFAULT_RUNTIME})
  --config FILE       read this config file instead of searching for ${CONFIG_FILE}
  --check             exit 1 if <out> differs from what the contracts produce; write nothing
  --watch             regenerate on every change to the contracts until Ctrl-C
  --scaffold SERVICE  also write a starting implementation of SERVICE (repeatable) into the
                      config's "scaffold" directory or --scaffold-dir (never overwrites)
  --scaffold-dir DIR  where --scaffold writes (default: the config's "scaffold", else src/services)
  --version           print the version
  -h, --help          print this help

examples:
  warren-codegen                                   generate schemas/ -> generated/
  warren-codegen --check                           in CI: fail when generated/ is stale
  warren-codegen --watch                           regenerate on save while you edit contracts
  warren-codegen --scaffold Greeter                write src/services/greeter.ts once
  warren-codegen --schemas contracts --out src/generated --runtime warren
  warren-codegen breaking --against origin/main    classify every contract change since main`;

/** The options of `warren-codegen` (also declared, for `warren codegen`, in codegen/cli/main.ts). */
const OPTIONS = {
  schemas: { type: "string", value: "dir" },
  out: { type: "string", value: "dir" },
  runtime: { type: "string", value: "path" },
  config: { type: "string", value: "file" },
  check: { type: "boolean" },
  watch: { type: "boolean" },
  scaffold: { type: "string", multiple: true, value: "Service" },
  "scaffold-dir": { type: "string", value: "dir" },
  version: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies Record<string, FlagSpec>;

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv[0] === "breaking") return runBreaking(argv.slice(1), io);
  const self = commandName(io.program, "codegen");
  const parsed = parseFlags(argv, OPTIONS, ["breaking"]);
  if (parsed.problem !== undefined) {
    io.err(`${self}: ${parsed.problem} (see: ${self} --help)`);
    return 2;
  }
  const { values } = parsed;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (values.version) {
    io.out(`warren-codegen ${VERSION}`);
    return 0;
  }
  const scaffold = values.scaffold ?? [];
  if (values.check && scaffold.length > 0) {
    io.err(`${self}: --check and --scaffold cannot be combined (--check writes nothing)`);
    return 2;
  }
  if (values.watch && (values.check || scaffold.length > 0)) {
    io.err(`${self}: --watch cannot be combined with ${values.check ? "--check" : "--scaffold"}`);
    return 2;
  }
  try {
    const settings = await resolveSettings({ schemas: values.schemas, out: values.out, runtime: values.runtime, config: values.config, scaffold: values["scaffold-dir"] }, io.cwd);
    if (values.watch) return await watchUntilStopped(settings, io);
    const regenerate = await regenerateCommand(io.cwd);
    const { model, plan } = await generate({ schemasDir: settings.schemas, runtime: settings.runtime, cwd: io.cwd, regenerate });
    const shownOut = toPosix(path.relative(io.cwd, settings.out)) || ".";
    const diff = await diffPlan(settings.out, plan);
    if (values.check) {
      if (isClean(diff)) {
        io.out(`${shownOut}/ is up to date (${plan.size} files)`);
        return 0;
      }
      for (const [kind, files] of [["stale", diff.stale], ["missing", diff.missing], ["extra", diff.extra], ["not generated by warren", diff.foreign]] as const) {
        for (const rel of files) io.err(`${kind}: ${shownOut}/${rel}`);
      }
      io.err(`${shownOut}/ is out of date; run: ${regenerate}`);
      return 1;
    }
    const chosen = scaffoldTargets(scaffold, model.services);
    if (typeof chosen === "string") {
      io.err(`${self}: ${chosen}`);
      return 2;
    }
    await applyPlan(settings.out, plan, diff);
    const width = Math.max(0, ...model.services.map((s) => s.name.length));
    for (const s of model.services) io.out(summary(s, width, shownOut));
    if (chosen.length > 0) await scaffoldServices(chosen, settings, io);
    return 0;
  } catch (error) {
    if (error instanceof CodegenErrors) for (const e of error.errors) io.err(e.format());
    else if (error instanceof CodegenError) io.err(error.format());
    else io.err(`${self}: ${(error as Error).message ?? String(error)}`);
    return 1;
  }
}

/** `--watch`: regenerates on every change until SIGINT or SIGTERM (or `io.stop`), then exits 0. */
async function watchUntilStopped(settings: Settings, io: CliIo): Promise<number> {
  const watcher = watch({ schemasDir: settings.schemas, outDir: settings.out, runtime: settings.runtime, cwd: io.cwd, regenerate: await regenerateCommand(io.cwd) }, { out: io.out, err: io.err, command: commandName(io.program, "codegen") });
  await watcher.ready;
  io.out(`watching ${toPosix(path.relative(io.cwd, settings.schemas)) || "."}/ (Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    io.stop?.then(stop, stop);
  });
  await watcher.close();
  return 0;
}

/** The services `--scaffold` names (by contract name, or its file name), or why one is not there. */
function scaffoldTargets(names: readonly string[], services: readonly ServiceModel[]): ServiceModel[] | string {
  const out: ServiceModel[] = [];
  for (const name of names) {
    const service = services.find((s) => s.name === name || s.names.dir === name.toLowerCase());
    if (service === undefined) {
      const known = services.map((s) => s.name);
      const hint = /[\\/]/.test(name) ? "; --scaffold takes a service name, the directory comes from --scaffold-dir or the config's \"scaffold\"" : didYouMean(name, known) || `; services: ${known.join(", ") || "none"}`;
      return `--scaffold: no service named "${name}"${hint}`;
    }
    if (service.methods.length === 0) return `--scaffold: ${service.name} declares no methods, so there is no handler to implement${service.events.length > 0 ? ` (its events are handled with ${service.names.subscriber})` : ""}`;
    if (!out.includes(service)) out.push(service);
  }
  return out;
}

async function scaffoldServices(services: readonly ServiceModel[], settings: Settings, io: CliIo): Promise<void> {
  const dir = settings.scaffold ?? path.resolve(io.cwd, "src/services");
  const written = await writeScaffolds(services, { cwd: io.cwd, scaffoldDir: dir, outDir: settings.out, runtime: settings.runtime });
  for (const s of services) {
    const file = written.find((w) => path.basename(w) === `${s.names.dir}.ts`);
    io.out(file === undefined ? `scaffold  ${toPosix(path.relative(io.cwd, path.join(dir, `${s.names.dir}.ts`)))} exists; left as it is` : `scaffold  ${file}`);
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `Calculator  schemas/calculator.service.json -> generated/calculator/  4 methods, 1 shared type` */
function summary(s: ServiceModel, width: number, out: string): string {
  const counts = [plural(s.methods.length, "method")];
  if (s.events.length > 0) counts.push(plural(s.events.length, "event"));
  if (s.ownDefs.length > 0) counts.push(plural(s.ownDefs.length, "type"));
  if (s.sharedTypes.length > 0) counts.push(plural(s.sharedTypes.length, "shared type"));
  return `${s.name.padEnd(width)}  ${s.file} -> ${out}/${s.names.dir}/  ${counts.join(", ")}`;
}
