/**
 * `warren-codegen breaking` as a command: against a directory, against a git
 * ref of a scratch repository (the temp copy is removed), exit statuses in a
 * real process, and usage errors as one line without a stack.
 */
import { execFile, execFileSync } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ROOT, cli } from "./helpers.js";

const CASES = path.join(ROOT, "test/codegen/breaking");
/** Outside this repository, so that its warren.config.json is not found upward from the scratch repository. */
const REPO = path.join(os.tmpdir(), `warren-git-scratch-${process.pid}`);
const OUTSIDE: string[] = [];
/** An empty directory (made before the cases run). */
const OUTSIDE_EMPTY = path.join(os.tmpdir(), `warren-breaking-empty-${process.pid}`);

afterAll(async () => {
  await rm(REPO, { recursive: true, force: true });
  for (const dir of OUTSIDE) await rm(dir, { recursive: true, force: true });
});

function git(...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=warren", "-c", "user.email=warren@example.com", "-c", "commit.gpgsign=false", ...args], { cwd: REPO, encoding: "utf8" });
}

/** Temp copies the command made and did not remove. */
async function leftovers(): Promise<string[]> {
  return (await readdir(os.tmpdir())).filter((n) => n.startsWith("warren-breaking-")).sort();
}

async function edit(file: string, change: (doc: any) => void): Promise<void> {
  const doc = JSON.parse(await readFile(file, "utf8"));
  change(doc);
  await writeFile(file, `${JSON.stringify(doc, null, 2)}\n`);
}

describe("against a directory", () => {
  test("prints the changes and exits 1 for a wire-breaking change on the same line", async () => {
    const r = await cli(["breaking", "--against", "old", "--schemas", "new"], path.join(CASES, "request-new-required-field"));
    expect(r.out).toEqual([
      'wire+code  new/calc.service.json#/methods/add/request/properties/c: new required request field "c": callers on 1.2.0 do not send it; callers that do not pass it stop compiling',
    ]);
    expect(r.err).toEqual(["Calc: wire-breaking changes, but 1.2.0 -> 1.3.0 stays on compatibility line 1, so peers on both versions still talk; raise the major version (2.0.0)"]);
    expect(r.code).toBe(1);
  });

  test("--schemas defaults to schemas/", async () => {
    const r = await cli(["breaking", "--against", "schemas"]);
    expect(r).toEqual({ code: 0, out: ["no contract changes"], err: [] });
  });

  test("paths outside the working directory are shown relative to it", async () => {
    const dir = path.join(CASES, "method-added");
    const r = await cli(["breaking", "--against", path.join(dir, "old"), "--schemas", path.join(dir, "new")]);
    expect(r.out).toEqual([expect.stringMatching(/^safe {2}test\/codegen\/breaking\/method-added\/new\/calc\.service\.json#\/methods\/sub: new method "sub"/)]);
    expect(r.code).toBe(0);
  });
});

describe("against a git ref", () => {
  const schemas = path.join(REPO, "schemas");
  beforeAll(async () => {
    await rm(REPO, { recursive: true, force: true });
    await cp(path.join(ROOT, "schemas"), schemas, { recursive: true });
    git("init", "-q", "-b", "main");
    git("add", "-A");
    git("commit", "-q", "-m", "contracts 1.0.0");
    git("tag", "v1");
  });

  test("an unchanged tree has no changes", async () => {
    const before = await leftovers();
    expect(await cli(["breaking", "--against", "HEAD"], REPO)).toEqual({ code: 0, out: ["no contract changes"], err: [] });
    expect(await leftovers()).toEqual(before);
  });

  test("reports changes with <ref>:<path> for old files, from a subdirectory too, and removes its temp copy", async () => {
    await edit(path.join(schemas, "calculator.service.json"), (doc) => {
      doc.$defs.Statistic.enum = ["mean", "median", "max"];
      doc.methods.add.errors.gone = { description: "Gone." };
    });
    await edit(path.join(schemas, "common/geometry.json"), (doc) => {
      doc.$defs.Point.properties.label = { type: "string" };
    });
    const before = await leftovers();
    const r = await cli(["breaking", "--against", "HEAD"], REPO);
    expect(r.out).toEqual([
      'safe  schemas/calculator.service.json#/methods/add/errors/gone: new error code "gone": callers on 1.0.0 receive it as an untyped RpcError with that code',
      'wire+code  schemas/calculator.service.json#/$defs/Statistic/enum: enum narrowed (removes "min"): callers on 1.0.0 may send values the server on 1.0.0 refuses; callers using "min" stop compiling (via Calculator.summarize request)',
      'code  schemas/calculator.service.json#/$defs/Statistic/enum: enum narrowed (removes "min"): callers on 1.0.0 accept everything the server on 1.0.0 may send; handlers using "min" stop compiling (via Calculator.summarize response)',
      'safe  schemas/common/geometry.json#/$defs/Point/properties/label: new optional request field "label": callers on 1.0.0 do not send it, which is allowed (via Calculator.centroid request)',
      'safe  schemas/common/geometry.json#/$defs/Point/properties/label: new optional response field "label": callers on 1.0.0 drop it as an unknown property (via Calculator.centroid response)',
      'safe  schemas/common/geometry.json#/$defs/Point/properties/label: new optional response field "label": callers on 1.0.0 drop it as an unknown property (via Points.add_point response)',
    ]);
    expect(r.err).toEqual(["Calculator: wire-breaking changes, but 1.0.0 -> 1.0.0 stays on compatibility line 1, so peers on both versions still talk; raise the major version (2.0.0)"]);
    expect(r.code).toBe(1);
    expect(await leftovers()).toEqual(before);

    // A removal points into the old file, shown as <ref>:<path>; run from a subdirectory, with --schemas relative to it.
    await edit(path.join(schemas, "calculator.service.json"), (doc) => {
      delete doc.methods.divide;
      doc.version = "2.0.0";
    });
    const sub = await cli(["breaking", "--against", "v1", "--schemas", "."], schemas);
    expect(sub.out).toContain('wire+code  v1:schemas/calculator.service.json#/methods/divide: method "divide" removed: callers on 1.0.0 still call it; code calling or implementing it stops compiling');
    expect(sub.out).toContain("Calculator: 1.0.0 -> 2.0.0 starts compatibility line 2; peers on 1.0.0 and 2.0.0 refuse each other, so the wire-breaking changes are allowed");
    expect(sub.err).toEqual([]);
    expect(sub.code).toBe(0);
    expect(await leftovers()).toEqual(before);
  });

  test("an old side that does not load is reported under its ref", async () => {
    await writeFile(path.join(schemas, "broken.service.json"), '{ "service": "Broken" }\n');
    git("add", "-A");
    git("commit", "-q", "-m", "broken");
    await rm(path.join(schemas, "broken.service.json"));
    const r = await cli(["breaking", "--against", "HEAD"], REPO);
    expect(r.code).toBe(1);
    expect(r.err[0]).toBe("warren-codegen breaking: the old (HEAD) contracts do not load:");
    expect(r.err.slice(1).every((l) => l.startsWith("HEAD:schemas/broken.service.json"))).toBe(true);
    expect(r.err.length).toBeGreaterThan(1);
  });
});

describe("usage errors: exit 2, one line, no stack", () => {
  const cases: Array<[string, string[], RegExp, () => string]> = [
    ["an unknown flag", ["breaking", "--against", "HEAD", "--nope"], /: unknown option '--nope' \(/, () => ROOT],
    ["a misspelt flag", ["breaking", "--againts", "HEAD"], /: unknown option '--againts'; did you mean --against\? \(/, () => ROOT],
    ["--against without its value", ["breaking", "--against"], /: option '--against <ref>' argument missing \(/, () => ROOT],
    ["a ref given without --against", ["breaking", "main"], /: unexpected argument 'main' \(/, () => ROOT],
    ["no --against", ["breaking"], /--against is required/, () => ROOT],
    ["a missing --schemas directory", ["breaking", "--against", "schemas", "--schemas", "nowhere"], /--schemas "nowhere" is not a directory/, () => ROOT],
    ["an unknown git ref", ["breaking", "--against", "no-such-ref~3"], /--against "no-such-ref~3" is neither a directory nor a git ref of the repository at /, () => ROOT],
    ["a ref that looks like a flag", ["breaking", "--against=--output=x"], /is not a directory or a git ref/, () => ROOT],
    ["no git repository around", ["breaking", "--against", "HEAD", "--schemas", "."], /is not a directory, and .* is not inside a git repository/, () => OUTSIDE[0]!],
    ["an empty --against directory (a mistyped path would otherwise pass as every service new)", ["breaking", "--against", OUTSIDE_EMPTY, "--schemas", path.join(ROOT, "schemas")], /--against ".*" holds no contracts/, () => ROOT],
  ];
  beforeAll(async () => {
    OUTSIDE.push(await mkdtemp(path.join(os.tmpdir(), "warren-breaking-test-")));
    await mkdir(OUTSIDE_EMPTY, { recursive: true });
    OUTSIDE.push(OUTSIDE_EMPTY);
  });
  test.each(cases)("%s", async (_name, argv, message, cwd) => {
    const r = await cli(argv, cwd());
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(message);
    expect(r.err[0]).toMatch(/^warren-codegen breaking: .*\(see: warren-codegen breaking --help\)$/);
  });

  test("--help prints the usage; the main usage names the subcommand", async () => {
    const help = await cli(["breaking", "--help"]);
    expect(help.code).toBe(0);
    expect(help.out.join("\n")).toMatch(/^usage: warren-codegen breaking --against REF \[--schemas DIR\] \[--check-version\]/);
    const main = await cli(["--help"]);
    expect(main.out.join("\n")).toContain("warren-codegen breaking --against REF [--schemas DIR] [--check-version]");
  });
});

describe("in a real process", () => {
  const run = promisify(execFile);
  const tsx = path.join(ROOT, "node_modules/.bin/tsx");
  const spawnCli = async (args: string[], cwd: string) =>
    run(tsx, [path.join(ROOT, "codegen/cli.ts"), ...args], { cwd }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  test("exit 0, 1 and 2", async () => {
    const safe = await spawnCli(["breaking", "--against", "old", "--schemas", "new"], path.join(CASES, "request-enum-widened"));
    expect(safe).toMatchObject({ code: 0, stderr: "" });
    expect(safe.stdout).toMatch(/^safe {2}new\/calc\.service\.json#\/methods\/add\/request\/properties\/kind\/enum: enum widened/);
    const wire = await spawnCli(["breaking", "--against", "old", "--schemas", "new"], path.join(CASES, "response-enum-widened"));
    expect(wire.code).toBe(1);
    expect(wire.stderr).toMatch(/^Calc: wire-breaking changes, but 1\.2\.0 -> 1\.3\.0 stays on compatibility line 1/);
    const usage = await spawnCli(["breaking", "--against", "nowhere-at-all"], ROOT);
    expect(usage.code).toBe(2);
    expect(usage.stdout).toBe("");
    expect(usage.stderr.trim().split("\n")).toHaveLength(1);
  });
});
