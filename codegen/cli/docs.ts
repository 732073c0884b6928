/** `warren docs [--out DIR]`: the AsyncAPI 3.0.0 document and the Markdown reference of every contract. */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_URL, redactUrl } from "../../src/index.js";
import { toPosix } from "../load.js";
import { asyncApiDocument, serverOf } from "./asyncapi.js";
import { loadContracts, type ContractFlags } from "./contracts.js";
import { CliError, Exit } from "./exit.js";
import type { Io } from "./io.js";
import { markdownReference } from "./reference.js";

/** Flags of `warren docs`. */
export interface DocsFlags extends ContractFlags {
  readonly out?: string | undefined;
  readonly format?: string | undefined;
  readonly server?: string | undefined;
}

/** Runs `warren docs`; resolves to the exit status. */
export async function runDocs(flags: DocsFlags, io: Io): Promise<number> {
  const contracts = await loadContracts(flags, io.cwd);
  const url = flags.server ?? process.env.AMQP_URL ?? DEFAULT_URL;
  let server;
  try {
    server = serverOf(url);
  } catch {
    const source = flags.server === undefined ? "AMQP_URL" : "--server";
    throw new CliError(Exit.usage, `${source} must be an amqp:// or amqps:// URL, got "${redactUrl(url)}"`);
  }
  const asyncapi = `${JSON.stringify(asyncApiDocument(contracts.model, server), null, 2)}\n`;
  const markdown = markdownReference(contracts.model, contracts.dir);
  if (flags.out === undefined) {
    io.out((flags.format === "markdown" ? markdown : asyncapi).replace(/\n$/, ""));
    return Exit.ok;
  }
  const dir = path.resolve(io.cwd, flags.out);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "asyncapi.json"), asyncapi);
    await writeFile(path.join(dir, "reference.md"), markdown);
  } catch (err) {
    throw new CliError(Exit.failure, `cannot write to ${flags.out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const relative = toPosix(path.relative(io.cwd, dir)) || ".";
  const shown = relative.startsWith("..") ? toPosix(dir) : relative;
  io.out(`${shown}/asyncapi.json  AsyncAPI 3.0.0, ${contracts.model.services.length} service${contracts.model.services.length === 1 ? "" : "s"}`);
  io.out(`${shown}/reference.md   Markdown reference`);
  return Exit.ok;
}
