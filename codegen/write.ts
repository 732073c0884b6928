/**
 * Stage 4: compare a plan with the output directory, or apply it. Only files
 * that start with the generated header are ever replaced or removed; the
 * directories removed are those left empty by removing such files.
 */
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Plan } from "./emit.js";
import { CodegenError } from "./errors.js";
import { isGeneratedText } from "./text.js";

/** How the output directory differs from the plan; paths relative to the output directory. */
export interface Diff {
  /** Generated files whose contents differ. */
  readonly stale: string[];
  /** Planned files that do not exist. */
  readonly missing: string[];
  /** Generated files (by header) that the plan no longer contains. */
  readonly extra: string[];
  /** Planned paths occupied by files warren did not generate. */
  readonly foreign: string[];
}

/** Compares `plan` with `outDir` without changing anything. */
export async function diffPlan(outDir: string, plan: Plan): Promise<Diff> {
  const diff: Diff = { stale: [], missing: [], extra: [], foreign: [] };
  for (const [rel, content] of plan) {
    const current = await readIfExists(path.join(outDir, rel));
    if (current === undefined) diff.missing.push(rel);
    else if (!isGeneratedText(current)) diff.foreign.push(rel);
    else if (current !== content) diff.stale.push(rel);
  }
  for (const rel of await generatedFiles(outDir)) if (!plan.has(rel)) diff.extra.push(rel);
  return diff;
}

/**
 * {@link diffPlan} for a plan that follows `previous`, which was applied to
 * `outDir` and left it clean: only the paths whose planned content changed are
 * read. (Watch mode: a run touches what changed, not every generated file.)
 */
export async function diffSince(outDir: string, previous: Plan, plan: Plan): Promise<Diff> {
  const diff: Diff = { stale: [], missing: [], extra: [], foreign: [] };
  for (const [rel, content] of plan) {
    if (previous.get(rel) === content) continue;
    const current = await readIfExists(path.join(outDir, rel));
    if (current === undefined) diff.missing.push(rel);
    else if (!isGeneratedText(current)) diff.foreign.push(rel);
    else if (current !== content) diff.stale.push(rel);
  }
  for (const rel of previous.keys()) {
    if (plan.has(rel)) continue;
    const current = await readIfExists(path.join(outDir, rel));
    // Gone already, or replaced by a file of the user's: nothing to remove.
    if (current !== undefined && isGeneratedText(current)) diff.extra.push(rel);
  }
  return diff;
}

/** True when the output directory already matches the plan. */
export function isClean(diff: Diff): boolean {
  return diff.stale.length + diff.missing.length + diff.extra.length + diff.foreign.length === 0;
}

/**
 * Writes changed files and removes generated files the plan no longer has.
 * Every new file is first written beside its target and then renamed over it,
 * so a failure while writing leaves the old generation in place.
 */
export async function applyPlan(outDir: string, plan: Plan, diff: Diff): Promise<void> {
  if (diff.foreign.length > 0) {
    throw new CodegenError(path.join(outDir, diff.foreign[0] ?? ""), "", "refusing to overwrite a file warren did not generate (it has no @generated header)");
  }
  const changed = [...diff.missing, ...diff.stale];
  const temps: Array<[string, string]> = [];
  try {
    for (const rel of changed) {
      const target = path.join(outDir, rel);
      await mkdir(path.dirname(target), { recursive: true });
      const temp = `${target}.${process.pid}.warren-tmp`;
      await writeFile(temp, plan.get(rel) ?? "");
      temps.push([temp, target]);
    }
  } catch (error) {
    await Promise.all(temps.map(([temp]) => rm(temp, { force: true })));
    throw error;
  }
  for (const [temp, target] of temps) await rename(temp, target);
  for (const rel of diff.extra) await rm(path.join(outDir, rel));
  for (const dir of new Set(diff.extra.map((rel) => path.dirname(path.join(outDir, rel))))) {
    if (path.resolve(dir) !== path.resolve(outDir)) await rmdir(dir).catch(() => undefined);
  }
}

/** Paths (relative, posix) of `.ts` files under `outDir` that carry the generated header. */
async function generatedFiles(outDir: string, rel = ""): Promise<string[]> {
  const entries = await readdir(path.join(outDir, rel), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const entry of entries) {
    const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await generatedFiles(outDir, child)));
    else if (entry.isFile() && entry.name.endsWith(".ts") && isGeneratedText((await readIfExists(path.join(outDir, child))) ?? "")) out.push(child);
  }
  return out.sort();
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
