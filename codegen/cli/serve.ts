/**
 * `warren serve --mock Service`: an RpcServer whose handlers answer every
 * method with sample data (the response schema's `examples`, else generated,
 * codegen/cli/sample.ts). Requests and responses are validated by the runtime
 * exactly as for a real server; runs until SIGINT or SIGTERM, then stops
 * consuming, lets in-flight requests finish and closes.
 */
import { isRpcError, type HandlerContext } from "../../src/index.js";
import { compile } from "../../src/core/validation.js";
import { openConnection, type BrokerFlags } from "./broker.js";
import { defsOf, descriptorOf, findService, loadContracts, type ContractFlags } from "./contracts.js";
import { CliError, Exit, oneLine, statusOf } from "./exit.js";
import type { Io } from "./io.js";
import { sampleOf } from "./sample.js";

/** Flags of `warren serve`. */
export interface ServeFlags extends ContractFlags, BrokerFlags {
  readonly mock?: string | boolean | undefined;
  readonly queue?: string | undefined;
  readonly quiet?: boolean | undefined;
}

/** Runs `warren serve --mock`; resolves to the exit status once stopped. */
export async function runServe(positional: string | undefined, flags: ServeFlags, io: Io): Promise<number> {
  if (flags.mock === undefined) throw new CliError(Exit.usage, `serve runs mocks only: write warren serve --mock ${positional ?? "Service"}`);
  const named = typeof flags.mock === "string" ? flags.mock : undefined;
  if (named !== undefined && positional !== undefined && named !== positional) throw new CliError(Exit.usage, `two services named: --mock ${named} and ${positional}; serve one per process`);
  const name = named ?? positional;
  if (name === undefined) throw new CliError(Exit.usage, "which service? write: warren serve --mock Service");
  const contracts = await loadContracts(flags, io.cwd);
  const model = findService(contracts, name);
  if (model.methods.length === 0) throw new CliError(Exit.usage, `${model.name} has no methods to serve`);
  const descriptor = descriptorOf(model, contracts.model);
  const defs = defsOf(model, contracts.model);
  const handlers: Record<string, (request: unknown, ctx: HandlerContext) => unknown> = {};
  let answered = 0;
  for (const m of model.methods) {
    const response = sampleOf(m.response, defs);
    const issues = compile(m.response, defs)(response);
    if (issues !== undefined) {
      const list = issues.map((i) => `${i.path || "(root)"} ${i.message}`).join("; ");
      io.err(`warren: warning: ${model.name}.${m.wireName}: no sample fits its response schema (${list}); add "examples" to it; callers get invalid_response`);
    }
    handlers[m.tsName] = (request) => {
      answered++;
      if (!flags.quiet) io.out(`${model.name}.${m.wireName} ${JSON.stringify(request)} -> ${JSON.stringify(response)}`);
      return structuredClone(response);
    };
  }
  const conn = await openConnection(flags, io, `warren-mock-${model.name}`);
  try {
    const server = conn.server();
    let registration;
    try {
      registration = await server.register(descriptor, handlers as never, flags.queue === undefined ? {} : { queue: flags.queue });
    } catch (err) {
      throw new CliError(statusOf(err), `cannot serve ${model.name}: ${oneLine(isRpcError(err) || err instanceof Error ? err.message : String(err))}`);
    }
    io.out(`serving a mock of ${model.name} ${model.version} on queue ${registration.queue}: ${model.methods.map((m) => m.wireName).join(", ")} (Ctrl-C stops)`);
    const signal = await io.interrupted();
    await server.close();
    io.out(`stopped on ${signal} after ${answered} request${answered === 1 ? "" : "s"}`);
    return Exit.ok;
  } finally {
    await conn.close().catch(() => {});
  }
}
