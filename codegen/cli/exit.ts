/**
 * Exit statuses of the `warren` command and the one error type its commands
 * throw. Every failure reaches the user as one line on stderr and one of these
 * statuses, never as a stack. The table is documented in docs/CLI.md.
 */
import { isRpcError } from "../../src/index.js";

/** Statuses that do not come from an error code. */
export const Exit = {
  ok: 0,
  /** Something unexpected (a bug in warren): the message says what. */
  failure: 1,
  /** The command line is wrong: unknown command, flag, service, method or event; bad JSON input; a missing argument. */
  usage: 2,
  /** The contracts cannot be read: no schemas directory, a refused contract, a bad config file. */
  contracts: 3,
  /** The broker cannot be reached or refused the user. */
  broker: 4,
  /** A queue the command needs does not exist (e.g. a dead-letter queue). */
  noQueue: 5,
  /** The service answered with an error its contract declares for the method. */
  declaredError: 10,
} as const;

/** The status of each framework error code a call can end with (docs/PROTOCOL.md#error-codes). */
export const CODE_EXIT: Readonly<Record<string, number>> = {
  invalid_request: 11,
  invalid_response: 12,
  bad_message: 13,
  unknown_method: 14,
  internal: 15,
  unimplemented: 16,
  incompatible_version: 17,
  timeout: 20,
  no_server: 21,
  connection_lost: 22,
  canceled: 23,
  access_refused: 24,
  setup_failed: 25,
  rejected: 26,
  invalid_event: 27,
  unauthenticated: 28,
  permission_denied: 29,
  idempotency_conflict: 30,
};

/**
 * The status of an error code that is neither a framework code nor declared by
 * the caller's contract for the method: most likely an error a newer version
 * of the contract added, sent by a server already running it.
 */
export const UNDECLARED_EXIT = 19;

/** A failure to report as `warren: <message>` with `exit`. */
export class CliError extends Error {
  constructor(
    readonly exit: number,
    message: string,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** One line: newlines of multi-line messages (the runtime's connect errors list every address) joined with "; ". */
export function oneLine(text: string): string {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .join("; ");
}

/**
 * A failed `connect()` as the CLI reports it: status 4, the runtime's message
 * (it names the redacted address and what to do); an address that is not
 * `amqp://` or `amqps://` is a usage mistake (status 2) of `source`, where the
 * address came from (`--url` or `AMQP_URL`).
 */
export function brokerError(err: unknown, source = "--url"): CliError {
  const message = (err instanceof Error ? err.message : String(err)).replace(/^warren: /, "");
  // connect() throws a TypeError, before dialing anything, for an address that is not amqp:// or amqps://: a bad argument.
  if (err instanceof TypeError) return new CliError(Exit.usage, `${source}: ${oneLine(message)}`);
  return new CliError(Exit.broker, `cannot connect to the broker: ${oneLine(message)}`);
}

/** The status of an error a broker operation (not a call) ended with. */
export function statusOf(err: unknown): number {
  if (err instanceof CliError) return err.exit;
  if (isRpcError(err)) return CODE_EXIT[err.code] ?? UNDECLARED_EXIT;
  return Exit.failure;
}
