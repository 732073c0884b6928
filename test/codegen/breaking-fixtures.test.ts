/**
 * `warren-codegen breaking` over every case in test/codegen/breaking/<case>/:
 * `old/` and `new/` schema directories, optional `args.txt` (extra flags), and
 * `expected.txt`: the exact lines printed to stdout, then those printed to
 * stderr prefixed `2> `, then `exit <status>`.
 */
import { existsSync, readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { expect, test } from "vitest";
import { ROOT, cli } from "./helpers.js";

const CASES = path.join(ROOT, "test/codegen/breaking");
const names = readdirSync(CASES, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();

/** Runs the command in a case directory and renders what it printed like expected.txt. */
async function runCase(dir: string): Promise<string> {
  const argsFile = path.join(dir, "args.txt");
  const extra = existsSync(argsFile) ? (await readFile(argsFile, "utf8")).trim().split(/\s+/) : [];
  const r = await cli(["breaking", "--against", "old", "--schemas", "new", ...extra], dir);
  return [...r.out, ...r.err.map((l) => `2> ${l}`), `exit ${r.code}`].join("\n") + "\n";
}

test("there are at least 40 cases", () => {
  expect(names.length).toBeGreaterThanOrEqual(40);
});

test.each(names)("%s", async (name) => {
  const dir = path.join(CASES, name);
  expect(await runCase(dir)).toBe(await readFile(path.join(dir, "expected.txt"), "utf8"));
});
