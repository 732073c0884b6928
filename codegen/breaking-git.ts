/**
 * `breaking --against <git ref>`: copies the schemas directory as it was at a
 * commit into a temporary directory, from the git repository around the
 * working directory. Reads blobs with `git ls-tree` and `git cat-file`, so no
 * worktree or index is touched.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { toPosix } from "./load.js";

const run = promisify(execFile);

/** A problem with the command line (exit 2), e.g. an unknown git ref. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The old schemas, exported. */
export interface Exported {
  /** Absolute path of the exported schemas directory. */
  readonly dir: string;
  /** How its files are shown: `HEAD:schemas` (git's `<ref>:<path>` syntax). */
  readonly label: string;
  /** Removes the temporary directory. */
  readonly cleanup: () => Promise<void>;
}

async function git(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run("git", args, { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Exports `schemasDir` (absolute, in the working tree) as it was at `ref`. Throws {@link UsageError} for what the user can fix. */
export async function exportSchemasAt(ref: string, schemasDir: string, cwd: string): Promise<Exported> {
  if (ref.startsWith("-")) throw new UsageError(`--against "${ref}" is not a directory or a git ref`);
  let top: string;
  try {
    top = (await git(["rev-parse", "--show-toplevel"], cwd)).trim();
  } catch {
    throw new UsageError(`--against "${ref}" is not a directory, and ${toPosix(cwd)} is not inside a git repository`);
  }
  let commit: string;
  try {
    commit = (await git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], cwd)).trim();
  } catch {
    throw new UsageError(`--against "${ref}" is neither a directory nor a git ref of the repository at ${toPosix(top)}`);
  }
  const rel = toPosix(path.relative(await realpath(top), await realpath(schemasDir)));
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw new UsageError(`the schemas directory ${toPosix(schemasDir)} is outside the git repository at ${toPosix(top)}`);
  const spec = rel === "" ? "." : rel;
  const listing = await git(["ls-tree", "-r", "-z", "--full-tree", "--name-only", commit, "--", spec], top);
  const files = listing.split("\0").filter((f) => f.endsWith(".json"));
  if (files.length === 0) throw new UsageError(`${spec}/ has no .json files at ${ref}`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "warren-breaking-"));
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    for (const file of files) {
      const { stdout } = await run("git", ["cat-file", "blob", `${commit}:${file}`], { cwd: top, encoding: "buffer", maxBuffer: 64 * 1024 * 1024 });
      const target = path.join(tmp, ...file.split("/"));
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, stdout);
    }
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { dir: path.join(tmp, ...(rel === "" ? [] : rel.split("/"))), label: `${ref}:${spec}`, cleanup };
}
