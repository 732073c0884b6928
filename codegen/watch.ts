/**
 * Watch mode: generate once, then again on every change under the schemas
 * directory — debounced, re-emitting only the services whose inputs changed
 * (an {@link EmitCache} kept across runs) and writing only the files whose
 * content changed. A bad contract prints its problems and the watcher keeps
 * going; the next save that fixes it regenerates.
 */
import { statSync, watch as watchFs, type FSWatcher } from "node:fs";
import path from "node:path";
import { createEmitCache, type Plan } from "./emit.js";
import { CodegenError, CodegenErrors } from "./errors.js";
import { DEFAULT_RUNTIME } from "./config.js";
import { generate } from "./generate.js";
import { toPosix } from "./load.js";
import { applyPlan, diffPlan, diffSince, type Diff } from "./write.js";

/** What to watch and where to write; relative paths resolve against `cwd`. */
export interface WatchOptions {
  /** @default "schemas" */
  readonly schemasDir?: string;
  /** @default "generated" */
  readonly outDir?: string;
  /** Runtime module specifier as seen from `<out>/<service>/`. @default "warren" */
  readonly runtime?: string;
  /** @default process.cwd() */
  readonly cwd?: string;
  /** The command generated files name for regenerating them. @default "npx warren-codegen" */
  readonly regenerate?: string;
  /** Quiet time after the last change before regenerating. @default 50 */
  readonly debounceMs?: number;
}

/** Where the watcher prints: `out` a line per regeneration, `err` a line per problem. */
export interface WatchIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** The command an unexpected failure's line starts with (`warren codegen` when run from the `warren` bin). @default "warren-codegen" */
  readonly command?: string;
}

/** A running watcher. */
export interface Watcher {
  /** Settles after the first generation (whether or not the contracts were valid). */
  readonly ready: Promise<void>;
  /** Stops watching; resolves once a run in progress has finished. Idempotent. */
  close(): Promise<void>;
}

/** How long to wait before watching the schemas directory again after it vanished. */
const REARM_MS = 250;

/**
 * Generates `schemasDir` into `outDir`, then regenerates on every change to
 * it until `close()`. The CLI's `--watch`:
 *
 * ```ts
 * const watcher = watch({ schemasDir: settings.schemas, outDir: settings.out, runtime: settings.runtime, cwd: io.cwd }, io);
 * process.once("SIGINT", () => void watcher.close());
 * ```
 *
 * What it prints:
 * 1. after each run that changed something, one line on `out`:
 *    `watch: regenerated Calculator in 41 ms (2 files written, 0 removed)`;
 *    the first run that succeeds says `watch: generated 5 services into generated/ in …`;
 * 2. for a bad contract, one line per problem on `err`, exactly as the CLI
 *    prints them (`file:line:column #pointer: reason`), then
 *    `watch: N problems; generated/ left as it was, waiting for changes` on `out`;
 * 3. a run that changes nothing prints nothing.
 *
 * Runs never overlap: changes during a run start one more run after it. The
 * schemas directory may be deleted, renamed or replaced (the watcher re-arms
 * once it is back); editors' write-to-temp-then-rename saves are just changes.
 */
export function watch(options: WatchOptions, io: WatchIo): Watcher {
  const cwd = options.cwd ?? process.cwd();
  const schemasDir = path.resolve(cwd, options.schemasDir ?? "schemas");
  const outDir = path.resolve(cwd, options.outDir ?? "generated");
  const shownOut = toPosix(path.relative(cwd, outDir)) || ".";
  const debounceMs = options.debounceMs ?? 50;
  const cache = createEmitCache();
  /** The plan last applied, when the output directory is known to match it. */
  let applied: Plan | undefined;
  /** False until a run succeeds: that run reports every service ("generated"), later ones what changed. */
  let generatedOnce = false;
  let closed = false;
  let running: Promise<void> | undefined;
  let again = false;
  let debounce: NodeJS.Timeout | undefined;
  let rearm: NodeJS.Timeout | undefined;
  let fsWatcher: FSWatcher | undefined;
  /** Inode of the directory `fsWatcher` watches: a directory renamed away and replaced is a new one. */
  let watchedIno: number | undefined;

  async function runOnce(): Promise<void> {
    const started = performance.now();
    checkWatched();
    try {
      const { model, plan, emitted } = await generate({ schemasDir, runtime: options.runtime ?? DEFAULT_RUNTIME, cwd, ...(options.regenerate === undefined ? {} : { regenerate: options.regenerate }) }, cache);
      let diff: Diff;
      try {
        diff = applied === undefined ? await diffPlan(outDir, plan) : await diffSince(outDir, applied, plan);
        await applyPlan(outDir, plan, diff);
      } catch (error) {
        applied = undefined; // the output directory is in an unknown state: compare every file next time
        throw error;
      }
      applied = plan;
      const first = !generatedOnce;
      generatedOnce = true;
      const written = diff.missing.length + diff.stale.length;
      if (!first && written + diff.extra.length === 0) return;
      const ms = Math.round(performance.now() - started);
      const counts = `(${plural(written, "file")} written, ${diff.extra.length} removed)`;
      if (first) io.out(`watch: generated ${plural(model.services.length, "service")} into ${shownOut}/ in ${ms} ms ${counts}`);
      else if (emitted.length > 0) io.out(`watch: regenerated ${emitted.join(", ")} in ${ms} ms ${counts}`);
      else io.out(`watch: updated ${shownOut}/ in ${ms} ms ${counts}`);
    } catch (error) {
      const problems = error instanceof CodegenErrors ? error.errors : error instanceof CodegenError ? [error] : undefined;
      if (problems === undefined) io.err(`${io.command ?? "warren-codegen"}: ${(error as Error).message ?? String(error)}`);
      else for (const e of problems) io.err(e.format());
      io.out(`watch: ${plural(problems?.length ?? 1, "problem")}; ${shownOut}/ left as it was, waiting for changes`);
    }
  }

  /** Runs now, or once more after the run in progress. */
  function trigger(): Promise<void> {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await runOnce();
      } while (again && !closed);
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void trigger(), debounceMs);
  }

  function arm(): void {
    if (closed) return;
    try {
      watchedIno = statSync(schemasDir).ino;
      fsWatcher = watchFs(schemasDir, { recursive: true }, (_event, filename) => {
        // Swap files, backups and the like are not contracts; a null name or a directory may hide any change.
        const name = filename === null ? "" : String(filename);
        if (name === "" || name.endsWith(".json") || !path.basename(name).includes(".")) schedule();
      });
    } catch {
      // The directory is missing (deleted, or being replaced): look again soon.
      rearmSoon();
      return;
    }
    fsWatcher.on("error", () => {
      // Emitted when the watched directory itself goes away.
      fsWatcher?.close();
      fsWatcher = undefined;
      schedule();
      rearmSoon();
    });
  }

  /** Watches the schemas directory that is there now: re-arms when it was replaced, polls while it is missing. */
  function checkWatched(): void {
    if (closed) return;
    let ino: number | undefined;
    try {
      ino = statSync(schemasDir).ino;
    } catch {
      ino = undefined;
    }
    if (fsWatcher !== undefined && ino === watchedIno) return;
    fsWatcher?.close();
    fsWatcher = undefined;
    if (ino === undefined) rearmSoon();
    else {
      arm();
      // Changes made before the new directory was watched are read by the run about to start.
    }
  }

  function rearmSoon(): void {
    if (closed) return;
    clearTimeout(rearm);
    rearm = setTimeout(() => {
      arm();
      // Whatever happened while nothing was watching is picked up by one run.
      if (fsWatcher !== undefined) schedule();
    }, REARM_MS);
  }

  arm();
  const ready = trigger();

  return {
    ready,
    async close() {
      closed = true;
      clearTimeout(debounce);
      clearTimeout(rearm);
      fsWatcher?.close();
      fsWatcher = undefined;
      await running;
    },
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
