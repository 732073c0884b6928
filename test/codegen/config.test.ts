/**
 * The generator's settings: warren.config.json found upward from the working
 * directory (paths relative to it), flags over the file, the runtime import
 * "warren" by default, a bad config named by file, line and pointer, hints
 * that name a command the project has, and --version / --help.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, test } from "vitest";
import codegenPackage from "../../codegen/package.json" with { type: "json" };
import { loadContracts } from "../../codegen/cli/contracts.js";
import { resolveSettings } from "../../codegen/config.js";
import { runCli } from "../../codegen/run.js";
import { FIXTURES, cli, listFiles } from "./helpers.js";

/** Waits until `check` holds (polling), failing after 10 s. */
async function until(check: () => Promise<boolean>): Promise<void> {
  for (const end = Date.now() + 10_000; !(await check()); ) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Outside the repository: its own warren.config.json and package.json must not be found upward. */
const DIR = path.join(os.tmpdir(), `warren-config-${randomBytes(4).toString("hex")}`);
const CONTRACT = path.join(FIXTURES, "keyword-method-names/schemas/words.service.json");

afterAll(() => rm(DIR, { recursive: true, force: true }));
beforeEach(async () => {
  await rm(DIR, { recursive: true, force: true });
  await mkdir(path.join(DIR, "contracts"), { recursive: true });
  await mkdir(path.join(DIR, "app/src"), { recursive: true });
  await writeFile(path.join(DIR, "contracts/words.service.json"), await readFile(CONTRACT));
});

const generatedImport = async (file: string) => /from "([^"]+)";/.exec(await readFile(file, "utf8"))![1];

describe("warren.config.json", () => {
  test("is found from a subdirectory; its paths are relative to it; generated code imports what it says", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "contracts", out: "app/gen", runtime: "@acme/warren" }));
    const r = await cli([], path.join(DIR, "app/src"));
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(await listFiles(path.join(DIR, "app/gen"))).toContain("words/descriptor.ts");
    expect(await generatedImport(path.join(DIR, "app/gen/words/descriptor.ts"))).toBe("@acme/warren");
  });

  test("flags override it, relative to the working directory", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "contracts", out: "app/gen", runtime: "@acme/warren" }));
    const r = await cli(["--out", "elsewhere", "--runtime", "warren"], DIR);
    expect(r.code).toBe(0);
    expect(await generatedImport(path.join(DIR, "elsewhere/words/descriptor.ts"))).toBe("warren");
    expect(await listFiles(path.join(DIR, "app/gen"))).toEqual([]);
  });

  test("without one, the runtime import is the installed package \"warren\"", async () => {
    const r = await cli(["--schemas", "contracts"], DIR);
    expect(r.code).toBe(0);
    expect(await generatedImport(path.join(DIR, "generated/words/descriptor.ts"))).toBe("warren");
  });

  test("a config file with an unknown setting is refused with its line, pointer and a did-you-mean; nothing is written", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), '{\n  "schemas": "contracts",\n  "runtme": "warren"\n}\n');
    const r = await cli([], DIR);
    expect(r.code).toBe(1);
    expect(r.err).toEqual(['warren.config.json:3:3 #/runtme: unknown setting "runtme"; did you mean "runtime"?']);
    expect(await listFiles(path.join(DIR, "generated"))).toEqual([]);
  });

  test("scaffold: the config's directory, one named service", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "contracts", scaffold: "app/src/services" }));
    const r = await cli(["--scaffold", "Words"], path.join(DIR, "app"));
    expect(r.err).toEqual([]);
    expect(r.out.at(-1)).toBe("scaffold  src/services/words.ts");
    expect(await listFiles(path.join(DIR, "app/src/services"))).toEqual(["words.ts"]);
  });
});

describe("a sub-project with a schemas/ of its own inside another warren project", () => {
  const SUB = path.join(DIR, "sub");
  beforeEach(async () => {
    await mkdir(path.join(SUB, "schemas"), { recursive: true });
    await mkdir(path.join(SUB, "src"), { recursive: true });
    await writeFile(path.join(SUB, "schemas/words.service.json"), await readFile(CONTRACT));
  });

  test("uses its own contracts and defaults, not the outer config's, from its directory and below", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "contracts", out: "app/gen" }));
    const r = await cli([], SUB);
    expect(r).toMatchObject({ code: 0, err: [] });
    expect(r.out).toEqual([expect.stringMatching(/^Words {2}schemas\/words\.service\.json -> generated\/words\/ /)]);
    expect(await listFiles(path.join(DIR, "app/gen"))).toEqual([]);
    expect(await cli(["--check"], path.join(SUB, "src"))).toMatchObject({ code: 0, out: ["../generated/ is up to date (6 files)"] });
    const { dir } = await loadContracts({}, path.join(SUB, "src"));
    expect(dir).toBe("../schemas");
  });

  test("unless the outer config's schemas are those very contracts (or hold them)", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "sub/schemas", out: "app/gen" }));
    expect(await cli([], SUB)).toMatchObject({ code: 0, out: [expect.stringMatching(/-> \.\.\/app\/gen\/words\//)] });
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: ".", out: "app/gen" }));
    expect(await resolveSettings({}, SUB)).toMatchObject({ schemas: DIR, out: path.join(DIR, "app/gen"), configFile: "../warren.config.json" });
  });

  test("a schemas/ directory without contracts is not a project; --config names the outer one", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "contracts", out: "app/gen" }));
    await mkdir(path.join(DIR, "app/schemas"), { recursive: true });
    await writeFile(path.join(DIR, "app/schemas/notes.json"), "{}");
    expect(await cli([], path.join(DIR, "app"))).toMatchObject({ code: 0, out: [expect.stringMatching(/^Words {2}\.\.\/contracts\/words\.service\.json -> gen\/words\//)] });
    expect(await cli(["--config", "../warren.config.json", "--check"], SUB)).toMatchObject({ code: 0, out: ["../app/gen/ is up to date (6 files)"] });
  });
});

describe("hints name a command the project has", () => {
  test("--check on a stale output says `npm run <the script that runs the generator>`, else npx", async () => {
    await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "contracts" }));
    expect((await cli([], DIR)).code).toBe(0);
    await writeFile(path.join(DIR, "contracts/words.service.json"), (await readFile(CONTRACT, "utf8")).replace('"version": "1.0.0"', '"version": "1.0.1"'));
    const bare = await cli(["--check"], DIR);
    expect(bare.code).toBe(1);
    expect(bare.err.at(-1)).toBe("generated/ is out of date; run: npx warren-codegen");
    expect(await readFile(path.join(DIR, "generated/words/descriptor.ts"), "utf8")).toContain("// Regenerate with: npx warren-codegen\n");
    await writeFile(path.join(DIR, "package.json"), JSON.stringify({ scripts: { gen: "warren-codegen", "gen:check": "warren-codegen --check" } }));
    expect((await cli(["--check"], DIR)).err.at(-1)).toBe("generated/ is out of date; run: npm run gen");
    // Generated files name the same command.
    expect((await cli([], DIR)).code).toBe(0);
    expect(await readFile(path.join(DIR, "generated/words/descriptor.ts"), "utf8")).toContain("// Regenerate with: npm run gen\n");
  });
});

test("--watch regenerates on save until stopped, then exits 0", async () => {
  await writeFile(path.join(DIR, "warren.config.json"), JSON.stringify({ schemas: "contracts" }));
  const lines: string[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const running = runCli(["--watch"], { cwd: DIR, out: (l) => lines.push(l), err: (l) => lines.push(l), stop: stopped });
  const descriptor = path.join(DIR, "generated/words/descriptor.ts");
  await until(async () => (await readFile(descriptor, "utf8").catch(() => "")).includes('version: "1.0.0"'));
  await writeFile(path.join(DIR, "contracts/words.service.json"), (await readFile(CONTRACT, "utf8")).replace('"version": "1.0.0"', '"version": "1.0.7"'));
  await until(async () => (await readFile(descriptor, "utf8")).includes('version: "1.0.7"'));
  stop();
  expect(await running).toBe(0);
  expect(lines.some((l) => l.startsWith("watching contracts/"))).toBe(true);
});

test("--version prints the generator's version; --help shows examples", async () => {
  expect((await cli(["--version"])).out).toEqual([`warren-codegen ${codegenPackage.version}`]);
  const help = (await cli(["--help"])).out.join("\n");
  expect(help).toMatch(/^usage: warren-codegen/);
  expect(help).toContain("examples:");
  expect(help).toContain("warren-codegen breaking --against origin/main");
});
