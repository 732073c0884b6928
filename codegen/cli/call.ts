/**
 * `warren call Service.method '<json>'`: one request/reply round trip through
 * the runtime's RpcClient, which validates the request against the contract
 * before anything is sent and the response when it comes back. The response is
 * printed as JSON on stdout; a failure is one line on stderr and the exit
 * status of its code (codegen/cli/exit.ts).
 */
import { isDeclaredError, isRpcError, ValidationError, type RpcError } from "../../src/index.js";
import { checksFor } from "../../src/core/validation.js";
import { CodegenError } from "../errors.js";
import { parseJson } from "../json.js";
import { openConnection, type BrokerFlags } from "./broker.js";
import { descriptorOf, findMethod, findService, loadContracts, splitTarget, type ContractFlags } from "./contracts.js";
import { UNDECLARED_EXIT, CliError, CODE_EXIT, Exit, oneLine } from "./exit.js";
import type { Io } from "./io.js";

/** Flags of `warren call`. */
export interface CallFlags extends ContractFlags, BrokerFlags {
  readonly timeout?: string | undefined;
  readonly header?: readonly string[] | undefined;
  readonly compact?: boolean | undefined;
  readonly waitForServer?: boolean | undefined;
}

/** Runs `warren call`; resolves to the exit status. */
export async function runCall(target: string, json: string | undefined, flags: CallFlags, io: Io): Promise<number> {
  const timeoutMs = flags.timeout === undefined ? undefined : parseTimeout(flags.timeout);
  const headers = parseHeaders(flags.header ?? []);
  const { service: serviceName, member } = splitTarget(target);
  if (member === undefined || member === "") throw new CliError(Exit.usage, `"${target}" names no method; write Service.method, e.g. Calculator.add`);
  const contracts = await loadContracts(flags, io.cwd);
  const serviceModel = findService(contracts, serviceName);
  const methodModel = findMethod(serviceModel, member);
  const descriptor = descriptorOf(serviceModel, contracts.model);
  const method = descriptor.methods[methodModel.tsName]!;
  const request = await readRequest(json, io);
  // The runtime's own request check, before even connecting: an invalid request never needs the broker.
  const issues = checksFor(method).request(request);
  if (issues !== undefined) return report(new ValidationError("invalid_request", "client", issues, { service: descriptor.name, method: method.name }), io);

  const conn = await openConnection(flags, io);
  try {
    const client = await conn.client();
    const response = await client.call(method, request, {
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(headers === undefined ? {} : { headers }),
      ...(flags.waitForServer === true ? { waitForServer: true } : {}),
    });
    io.out(flags.compact ? JSON.stringify(response ?? null) : JSON.stringify(response ?? null, null, 2));
    return Exit.ok;
  } catch (err) {
    if (isRpcError(err)) return report(err, io, isDeclaredError(method, err));
    throw err;
  } finally {
    await conn.close().catch(() => {});
  }
}

/** One line for a failed call, and its status: a declared error's code, message and data; a validation error with every issue's JSON pointer. */
function report(err: RpcError, io: Io, declared = false): number {
  const target = err.service !== undefined && err.method !== undefined ? `${err.service}.${err.method}` : "call";
  if (err instanceof ValidationError) {
    const where = err.side === "client" ? "checked before sending, nothing was sent" : "refused by the server";
    const what = err.code === "invalid_request" ? "invalid request" : "invalid response";
    const list = err.issues.map((i) => `${i.path === "" ? "(root)" : i.path} ${i.message}`).join("; ");
    io.err(`warren: ${target}: ${err.code} (${what}, ${where}): ${list}`);
  } else if (declared) {
    const data = err.data === undefined ? "" : ` data: ${JSON.stringify(err.data)}`;
    io.err(`warren: ${target}: ${err.code} (declared error): ${oneLine(err.message)}${data}`);
    return Exit.declaredError;
  } else if (CODE_EXIT[err.code] === undefined) {
    const data = err.data === undefined ? "" : ` data: ${JSON.stringify(err.data)}`;
    const message = err.message.startsWith(`${target}: `) ? err.message.slice(target.length + 2) : err.message;
    io.err(`warren: ${target}: ${err.code} (a code your contract does not declare for this method: a newer server's?): ${oneLine(message)}${data}`);
    return UNDECLARED_EXIT;
  } else {
    io.err(`warren: ${oneLine(err.message.startsWith(target) ? err.message : `${target}: ${err.message}`)} [${err.code}]`);
  }
  return CODE_EXIT[err.code]!;
}

/** The request from the argument, else from stdin; bad JSON is a usage error with its line and column. */
async function readRequest(arg: string | undefined, io: Io): Promise<unknown> {
  const source = arg !== undefined ? "request" : "stdin";
  const text = arg ?? (await io.stdin());
  if (text === undefined) throw new CliError(Exit.usage, "no request: give it as JSON after the method, or pipe it on stdin");
  if (text.trim() === "") throw new CliError(Exit.usage, `the request on ${source} is empty; write {} for an empty object`);
  try {
    return parseJson(text, source);
  } catch (error) {
    if (error instanceof CodegenError) throw new CliError(Exit.usage, error.format());
    throw error;
  }
}

function parseTimeout(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value <= 0 || value > 2_147_483_647) {
    throw new CliError(Exit.usage, `--timeout must be a whole number of milliseconds between 1 and 2147483647, got "${text}"`);
  }
  return value;
}

function parseHeaders(pairs: readonly string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const headers: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CliError(Exit.usage, `--header takes name=value, got "${pair}"`);
    const name = pair.slice(0, eq);
    if (name.toLowerCase().startsWith("x-warren-")) throw new CliError(Exit.usage, `--header ${name}: names starting with x-warren- are reserved for the protocol`);
    headers[name] = pair.slice(eq + 1);
  }
  return headers;
}
