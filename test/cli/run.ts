/**
 * Runs the `warren` bin as a user would: the built bin (`tsc -p
 * codegen/tsconfig.build.json`, once per test run, into codegen/dist/) as a
 * child process of plain `node` in the repository root, against the real
 * broker. Helpers to write a temporary contract with unique queue and
 * exchange names (deleted after the test).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { access, mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll } from "vitest";
import { deleteAfter, deleteExchangeAfter, onTeardown, uniqueName } from "../helpers/broker.js";

/** The repository root (the bin runs there). */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = path.join(ROOT, "codegen/dist/codegen/warren.js");
/** Marks codegen/dist/ as built by this test run (the run's tag is set by the integration global setup). */
const BUILT = path.join(ROOT, "codegen/dist", `.built-by-test-run-${process.env.WARREN_TEST_RUN ?? "norun"}`);
let building: Promise<void> | undefined;

// Every test file that runs the bin builds it first (once per run), outside the tests' own timeouts.
beforeAll(() => ensureBuilt(), 180_000);

/** Builds the generator package once per test run; later test files of the run reuse the build. */
export function ensureBuilt(): Promise<void> {
  building ??= access(BUILT).catch(async () => {
    await promisify(execFile)(process.execPath, [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", path.join(ROOT, "codegen/tsconfig.build.json")], { cwd: ROOT });
    await writeFile(BUILT, "");
  });
  return building;
}

/** How a run ended. */
export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `warren args…` to its end; `stdin` is written and closed (absent: stdin is closed at once). */
export async function warren(args: readonly string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  await ensureBuilt();
  const child = spawnWarren(args, options.env);
  child.stdin!.end(options.stdin ?? "");
  return finished(child);
}

function spawnWarren(args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  onTeardown(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
  return child;
}

function finished(child: ChildProcess, out = { stdout: "", stderr: "" }): Promise<Run> {
  child.stdout!.on("data", (d: Buffer) => (out.stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out.stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`warren did not exit within 20 s: ${out.stdout}${out.stderr}`)), 20_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: out.stdout, stderr: out.stderr });
    });
  });
}

/** A long-running `warren` (serve): resolves once stdout contains `ready`; `stop(signal)` resolves with how it ended. */
export async function startWarren(args: readonly string[], ready: string): Promise<{ output: () => string; stop: (signal?: NodeJS.Signals) => Promise<Run> }> {
  await ensureBuilt();
  const child = spawnWarren(args);
  child.stdin!.end();
  const out = { stdout: "", stderr: "" };
  const done = finished(child, out);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`warren did not print "${ready}" within 20 s: ${out.stdout}${out.stderr}`)), 20_000);
    const check = () => {
      if (out.stdout.includes(ready)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    void done.then((r) => {
      clearTimeout(timer);
      reject(new Error(`warren exited with ${r.code} before "${ready}": ${r.stdout}${r.stderr}`));
    });
  });
  return {
    output: () => out.stdout,
    stop: (signal = "SIGTERM") => {
      child.kill(signal);
      return done;
    },
  };
}

/** The one line a failed command must print: exactly one line on stderr, and no stack frame. */
export function oneLine(run: Run): string {
  const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
  if (lines.length !== 1 || /^\s+at /m.test(run.stderr)) throw new Error(`expected one line on stderr, got:\n${run.stderr}`);
  return lines[0]!;
}

/** A temporary schemas directory holding `files` (name -> JSON), removed after the test. */
export async function tempSchemas(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "warren-cli-"));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, doc] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), JSON.stringify(doc, null, 2));
  }
  return dir;
}

/** Unique names of one test's Greeter contract: its queue and exchange, deleted after the test. */
export function greeterNames(): { queue: string; exchange: string } {
  return { queue: deleteAfter(uniqueName("greeter")), exchange: deleteExchangeAfter(uniqueName("greetings")) };
}

/**
 * The test contract: `greet` (examples, a declared error with data, timeout,
 * idempotent), `stamp` (no examples: the mock generates its answer), `strict`
 * (a response pattern the mock's generator cannot meet) and an event `greeted`.
 */
export function greeterContract(names: { queue: string; exchange: string }): Record<string, unknown> {
  return {
    service: "Greeter",
    version: "1.2.0",
    description: "Says hello.",
    queue: names.queue,
    methods: {
      greet: {
        description: "Greets someone by name.",
        request: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: { name: { type: "string", minLength: 1 }, times: { type: "integer", minimum: 1 } },
          examples: [{ name: "Ada" }],
        },
        response: { $ref: "#/$defs/Greeting" },
        errors: {
          banned: {
            description: "That name is not greeted.",
            data: { type: "object", required: ["name"], additionalProperties: false, properties: { name: { type: "string" } } },
          },
        },
        timeoutMs: 2000,
        idempotent: true,
      },
      stamp: {
        description: "Stamps a request.",
        request: { type: "object", properties: {}, additionalProperties: false },
        response: {
          type: "object",
          required: ["n", "at", "tags", "kind"],
          additionalProperties: false,
          properties: {
            n: { type: "integer", minimum: 3, multipleOf: 2 },
            at: { type: "string", format: "date-time" },
            tags: { type: "array", minItems: 2, items: { type: "string", minLength: 2 } },
            kind: { enum: ["a", "b"] },
            note: { type: "string" },
          },
        },
      },
      strict: {
        description: "Answers with digits only.",
        request: { type: "object" },
        response: { type: "string", pattern: "^[0-9]+$" },
      },
    },
    exchange: { name: names.exchange, type: "topic" },
    events: {
      greeted: {
        description: "Someone was greeted.",
        routingKey: "greetings.{lang}",
        payload: {
          type: "object",
          required: ["name", "lang"],
          additionalProperties: false,
          properties: { name: { type: "string" }, lang: { enum: ["en", "fr"] } },
          examples: [{ name: "Ada", lang: "en" }],
        },
      },
    },
    $defs: {
      Greeting: {
        type: "object",
        required: ["greeting"],
        additionalProperties: false,
        properties: { greeting: { type: "string" } },
        examples: [{ greeting: "Hello, Ada" }],
      },
    },
  };
}

/** Runs many `warren` invocations, a few at a time (each is a Node process; the machine has 2 cores). */
export async function warrenAll(runs: ReadonlyArray<{ args: readonly string[]; stdin?: string }>, concurrency = 3): Promise<Run[]> {
  const results: Run[] = new Array(runs.length);
  let next = 0;
  const worker = async () => {
    while (next < runs.length) {
      const i = next++;
      const { args, stdin } = runs[i]!;
      results[i] = await warren(args, stdin === undefined ? {} : { stdin });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, runs.length) }, worker));
  return results;
}

/**
 * Runs the command line in this process (codegen/cli/main.ts's `runWarren`,
 * what the bin calls) with captured output: for the long table of prompt
 * mistakes, where a Node process per case would cost a second each. The bin
 * itself is spawned for a sample of them.
 */
export async function warrenHere(args: readonly string[], stdin?: string): Promise<Run> {
  const { runWarren } = await import("../../codegen/cli/main.js");
  let stdout = "";
  let stderr = "";
  const code = await runWarren(args, {
    cwd: ROOT,
    out: (t) => (stdout += `${t}\n`),
    err: (t) => (stderr += `${t}\n`),
    stdin: async () => stdin,
    interrupted: () => new Promise<string>(() => {}),
  });
  return { code, stdout, stderr };
}
