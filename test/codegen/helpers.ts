/** Shared paths and a CLI runner for the codegen tests. */
import path from "node:path";
import { readdir, readFile } from "node:fs/promises";
import { runCli } from "../../codegen/run.js";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const FIXTURES = path.join(ROOT, "test/codegen/fixtures");
/** Scratch space; ignored by tsconfig and removed by the tests that use it. */
export const TMP = path.join(ROOT, "test/codegen/.tmp");

/** Runs the codegen CLI in-process and captures what it prints. */
export async function cli(argv: string[], cwd = ROOT): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { cwd, out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

/** The `--runtime` specifier that reaches this repo's src/ from `<outDir>/<service>/`. */
export function runtimeFor(outDir: string): string {
  return path.relative(path.join(outDir, "service"), path.join(ROOT, "src/index.js")).split(path.sep).join("/");
}

/** Every file under `dir`, relative with posix separators, sorted. */
export async function listFiles(dir: string, rel = ""): Promise<string[]> {
  const entries = await readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    const child = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, child)));
    else out.push(child);
  }
  return out.sort();
}

/** Reads every file under `dir` into a map. */
export async function readTree(dir: string): Promise<Map<string, string>> {
  const files = await listFiles(dir);
  return new Map(await Promise.all(files.map(async (f) => [f, await readFile(path.join(dir, f), "utf8")] as const)));
}
