/**
 * Watch mode against the disk, in temp dirs: a save regenerates only the
 * service it changed, a broken contract prints its problems and the watcher
 * carries on, a deleted service loses its generated directory, and editors'
 * write-then-rename saves and a replaced schemas directory are followed.
 * No timing assertions: every wait is "until this is true", with a generous limit.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, expect, test } from "vitest";
import { watch, type Watcher } from "../../codegen/watch.js";
import { TMP, listFiles, runtimeFor } from "./helpers.js";

const WORK = path.join(TMP, "watch");
const schemas = path.join(WORK, "schemas");
const out = path.join(WORK, "generated");

function contract(service: string, description: string): string {
  return JSON.stringify(
    {
      service,
      version: "1.0.0",
      description,
      methods: {
        get_point: {
          description: "Returns a point.",
          request: { type: "object", required: ["id"], additionalProperties: false, properties: { id: { type: "string" } } },
          response: { $ref: "common/geo.json#/$defs/Point" },
        },
      },
    },
    null,
    2,
  );
}

const POINT = { $defs: { Point: { type: "object", required: ["x", "y"], additionalProperties: false, properties: { x: { type: "number" }, y: { type: "number" } } } } };

let watcher: Watcher | undefined;
let outLines: string[];
let errLines: string[];

function start(): Watcher {
  outLines = [];
  errLines = [];
  watcher = watch({ schemasDir: schemas, outDir: out, runtime: runtimeFor(out), cwd: WORK, debounceMs: 20 }, { out: (l) => outLines.push(l), err: (l) => errLines.push(l) });
  return watcher;
}

/** Resolves once `check` returns true; fails with `what` and the watcher's output after `timeoutMs`. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}\nout:\n${outLines.join("\n")}\nerr:\n${errLines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Replaces a contract in one step (written beside the schemas, renamed in), so no run can see it half-written. */
async function save(file: string, text: string): Promise<void> {
  const temp = path.join(WORK, `save-${path.basename(file)}`);
  await writeFile(temp, text);
  await rename(temp, path.join(schemas, file));
}

const read = (rel: string) => readFile(path.join(out, rel), "utf8").catch(() => "");
const exists = (rel: string) => stat(path.join(out, rel)).then(() => true, () => false);

/** Identity of every generated file: a rewrite (temp file renamed over it) gives a new inode. */
async function identities(): Promise<Map<string, string>> {
  const files = await listFiles(out);
  return new Map(await Promise.all(files.map(async (f) => [f, `${(await stat(path.join(out, f))).ino}`] as const)));
}

beforeEach(async () => {
  await rm(WORK, { recursive: true, force: true });
  await mkdir(path.join(schemas, "common"), { recursive: true });
  await writeFile(path.join(schemas, "common/geo.json"), JSON.stringify(POINT));
  await writeFile(path.join(schemas, "alpha.service.json"), contract("Alpha", "First service."));
  await writeFile(path.join(schemas, "beta.service.json"), contract("Beta", "Second service."));
});

afterEach(async () => {
  await watcher?.close();
  watcher = undefined;
  await rm(WORK, { recursive: true, force: true });
});

test("generates on start, then a changed contract rewrites only its own service's files", async () => {
  await start().ready;
  expect(errLines).toEqual([]);
  expect(outLines).toEqual([expect.stringMatching(/^watch: generated 2 services into generated\/ in \d+ ms \(\d+ files written, 0 removed\)$/)]);
  const before = await identities();
  expect([...before.keys()]).toContain("beta/client.ts");

  await save("alpha.service.json", contract("Alpha", "First service, edited."));
  await until("alpha/client.ts shows the edit", async () => (await read("alpha/client.ts")).includes("First service, edited."));
  await until("the run is reported", () => outLines.length === 2);
  expect(outLines[1]).toMatch(/^watch: regenerated Alpha in \d+ ms \(3 files written, 0 removed\)$/);

  const after = await identities();
  const rewritten = [...after].filter(([f, id]) => before.get(f) !== id).map(([f]) => f).sort();
  // The description is in the client, server and descriptor docs; types.ts and index.ts do not carry it.
  expect(rewritten).toEqual(["alpha/client.ts", "alpha/descriptor.ts", "alpha/server.ts"]);
  expect(errLines).toEqual([]);
});

test("a broken contract prints one line per problem and keeps watching; fixing it regenerates", async () => {
  await start().ready;
  const generated = await read("alpha/client.ts");

  // (writeFile truncates, then writes: a run may also catch the empty file in between; each run prints its own lines.)
  await writeFile(path.join(schemas, "alpha.service.json"), '{ "service": "Alpha", ');
  await until("the syntax error is printed", () => errLines.some((l) => /^schemas\/alpha\.service\.json:1:\d+: invalid JSON: expected a property name/.test(l)));
  await until("the watcher says it waits", () => outLines.some((l) => l === "watch: 1 problem; generated/ left as it was, waiting for changes"));
  expect(await read("alpha/client.ts")).toBe(generated);

  // A contract that parses but breaks a rule: reported with its position and pointer, still running.
  await writeFile(path.join(schemas, "alpha.service.json"), contract("Alpha", "First service.").replace('"type": "string"', '"type": "strin"'));
  await until("the rule is printed", () => errLines.some((l) => /^schemas\/alpha\.service\.json:\d+:\d+ #\/methods\/get_point\/request\/properties\/id\/type: /.test(l)));
  // One line per problem, in the CLI's format.
  for (const line of errLines) expect(line).toMatch(/^schemas\/alpha\.service\.json:\d+:\d+( #\/[^:]*)?: /);
  expect(await read("alpha/client.ts")).toBe(generated);

  await writeFile(path.join(schemas, "alpha.service.json"), contract("Alpha", "Fixed."));
  await until("alpha/client.ts is regenerated", async () => (await read("alpha/client.ts")).includes("Fixed."));
  await until("the run is reported", () => outLines.some((l) => /^watch: regenerated Alpha in /.test(l)));
});

test("deleting a contract removes its generated directory and its exports", async () => {
  await start().ready;
  expect(await exists("beta/index.ts")).toBe(true);

  await rm(path.join(schemas, "beta.service.json"));
  await until("beta/ is gone", async () => !(await exists("beta")));
  expect(await read("index.ts")).not.toContain("Beta");
  expect(await read("alpha/client.ts")).toContain("First service.");
  expect(outLines.at(-1)).toMatch(/^watch: updated generated\/ in \d+ ms \(1 file written, \d+ removed\)$/);
  expect(errLines).toEqual([]);
});

test("follows write-then-rename saves, renamed contracts and a replaced schemas directory", async () => {
  await start().ready;

  // How many editors save: write a temp file beside the contract, then rename it over the contract.
  await writeFile(path.join(schemas, ".alpha.service.json.tmp"), contract("Alpha", "Saved by rename."));
  await rename(path.join(schemas, ".alpha.service.json.tmp"), path.join(schemas, "alpha.service.json"));
  await until("the renamed-over save is picked up", async () => (await read("alpha/client.ts")).includes("Saved by rename."));

  await rename(path.join(schemas, "beta.service.json"), path.join(schemas, "gamma.service.json"));
  await writeFile(path.join(schemas, "gamma.service.json"), contract("Gamma", "Renamed from beta."));
  await until("gamma/ replaces beta/", async () => (await exists("gamma/client.ts")) && !(await exists("beta")));

  // The whole directory moved away (a branch switch, a `git stash`) and a new one put in its place.
  await rename(schemas, `${schemas}.old`);
  await until("the missing directory is reported", () => errLines.some((l) => l.includes("cannot read the schemas directory")));
  await mkdir(path.join(schemas, "common"), { recursive: true });
  await writeFile(path.join(schemas, "common/geo.json"), JSON.stringify(POINT));
  await writeFile(path.join(schemas, "delta.service.json"), contract("Delta", "In the new directory."));
  await until("the new directory is generated", async () => (await exists("delta/client.ts")) && !(await exists("alpha")) && !(await exists("gamma")));
  // And it is watched: a later save is followed.
  await writeFile(path.join(schemas, "delta.service.json"), contract("Delta", "Edited in the new directory."));
  await until("a save in the new directory is picked up", async () => (await read("delta/client.ts")).includes("Edited in the new directory."));
  await rm(`${schemas}.old`, { recursive: true, force: true });
});

test("close() stops watching and lets the process exit", async () => {
  const handles = () => process.getActiveResourcesInfo().filter((r) => r === "FSEventWrap").length;
  const before = handles();
  const w = start();
  await w.ready;
  expect(handles()).toBeGreaterThan(before);
  await w.close();
  // Node closes the watchers of a recursive fs.watch (one per file on Linux) a tick later.
  await until("every watcher handle is closed", () => handles() === before);
  await writeFile(path.join(schemas, "alpha.service.json"), contract("Alpha", "After close."));
  await new Promise((r) => setTimeout(r, 300));
  expect(await read("alpha/client.ts")).not.toContain("After close.");
  expect(outLines).toHaveLength(1);
});
